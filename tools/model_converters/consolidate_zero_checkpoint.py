"""Turn a DeepSpeed (ZeRO stage 0-3) checkpoint of a training run into one plain
mmengine checkpoint that ``tools/test.py``, ``load_from`` and the plain runner read.

    python tools/model_converters/consolidate_zero_checkpoint.py \\
        work_dirs/<run>/iter_80000.pth out.pth [--config CONFIG]

The input is the directory DeepSpeed wrote (``iter_N.pth/`` with ``*model_states.pt``
and, under ZeRO, one ``*optim_states.pt`` per rank). Trainable weights are rebuilt in
fp32 from ZeRO's master partitions (``deepspeed.utils.zero_to_fp32``), so a bf16 run
gives its fp32 master weights, not the bf16 copies; frozen weights and buffers come from
the model states. The output is ``{'state_dict', 'meta'}`` with the run's iteration,
epoch and dataset meta, written to a temporary file and renamed, so an interrupted
write never leaves a half file under the output name. Runs on CPU, no process group.

A run with ``strategy.exclude_frozen_parameters=True`` saved no frozen weights;
``--config`` rebuilds the model of that config (loading its pretrained ``init_cfg``)
and takes the missing frozen weights from it.
"""
import argparse
import contextlib
import glob
import io
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/: common.py
from common import quiet_known_warnings  # noqa: E402


def read_zero_checkpoint(ckpt_dir: str, trust: bool = False):
    """``(state_dict, meta)`` of a DeepSpeed checkpoint directory."""
    import torch
    if not osp.isdir(ckpt_dir):
        raise FileNotFoundError(f'not a DeepSpeed checkpoint directory: {ckpt_dir}')
    model_files = sorted(glob.glob(osp.join(ckpt_dir, '*model_states.pt')))
    if not model_files:
        raise FileNotFoundError(f'{ckpt_dir}: no *model_states.pt (not a DeepSpeed '
                                'checkpoint, or an interrupted save)')
    # DeepSpeed's files hold a few of its own types, and zero_to_fp32 unpickles them
    # with weights_only=False: every file is checked for other globals first.
    from internvit_dense.engine.deepspeed import check_deepspeed_checkpoint
    check_deepspeed_checkpoint(ckpt_dir, trust=trust)
    states = torch.load(model_files[0], map_location='cpu', weights_only=False)
    meta = states.get('meta', {})
    optim_files = glob.glob(osp.join(ckpt_dir, '*optim_states.pt'))
    if optim_files:
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
        parent, tag = osp.split(osp.abspath(ckpt_dir.rstrip('/')))
        with contextlib.redirect_stdout(io.StringIO()):  # it prints every buffer name
            state = get_fp32_state_dict_from_zero_checkpoint(parent, tag=tag)
        # zero_to_fp32 returns buffers in fp32; integer buffers (BatchNorm's
        # num_batches_tracked) go back to their saved dtype
        module = states.get('module') or {}
        for key, value in module.items():
            if key in state and not value.is_floating_point():
                state[key] = state[key].to(value.dtype)
    else:  # ZeRO stage 0 without bf16: the model states hold the whole module
        state = states['module']
    return dict(state), meta


def fill_frozen_weights(state: dict, config: str) -> None:
    """Add the weights ``state`` lacks from the config's freshly initialised model;
    only frozen parameters may be missing (trained ones would be silently lost)."""
    from mmengine.registry import MODELS, DefaultScope

    from common import load_config
    cfg = load_config(config)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    model.init_weights()
    params = dict(model.named_parameters())
    trained_missing = [k for k, p in params.items() if k not in state and p.requires_grad]
    if trained_missing:
        raise KeyError(f'the checkpoint lacks trainable weights {trained_missing[:5]} '
                       f'({len(trained_missing)} in all): not the run of {config}?')
    own = model.state_dict()
    filled = [k for k in own if k not in state]
    state.update({k: own[k] for k in filled})
    print(f'took {len(filled)} frozen tensors from the initialised model of {config}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('checkpoint', help='DeepSpeed checkpoint directory (iter_N.pth)')
    parser.add_argument('out', help='output plain checkpoint (.pth)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='read files that need globals beyond DeepSpeed\'s own and '
                        "mmengine's run-state types (they can run code)")
    parser.add_argument('--config', help='the run\'s config, to restore frozen weights '
                        'that the run excluded from its checkpoints')
    args = parser.parse_args(argv)
    quiet_known_warnings()
    import torch
    state, meta = read_zero_checkpoint(args.checkpoint, trust=args.trust_checkpoint)
    if args.config:
        fill_frozen_weights(state, args.config)
    out = osp.abspath(args.out)
    os.makedirs(osp.dirname(out), exist_ok=True)
    tmp = out + '.tmp'
    torch.save({'state_dict': state, 'meta': meta}, tmp)
    os.replace(tmp, out)
    n = sum(v.numel() for v in state.values())
    print(f'wrote {len(state)} tensors ({n:,} values) from {args.checkpoint} '
          f'(iter {meta.get("iter")}) to {out}')
    return out


if __name__ == '__main__':
    main()
