"""Export one head of a probing sweep as an ordinary single-head model.

    python tools/model_converters/export_sweep_head.py SWEEP_CONFIG SWEEP_CKPT OUT_DIR \\
        [--head NAME]

Writes ``OUT_DIR/<head>.py`` (the sweep's config as a plain ``BatchedSlideEncoderDecoder``
with that head on its blocks, mmseg's ``IoUMetric`` and loops, the training set without
the held-out split's wrapper, the head's lr and weight decay) and ``OUT_DIR/<head>.pth``
(the backbone and that head as ``decode_head``, the checkpoint's meta kept), which
``tools/test.py``, ``--tta``, ``tools/infer.py`` and ``MMSegInferencer`` use as they are.

The head: ``--head NAME``, else the selected head of the sweep's last table
(``results.json`` of ``<work_dir>/sweep/`` beside the checkpoint, selected on the
held-out split), else the head the checkpoint records.
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/: common.py
from common import quiet_known_warnings  # noqa: E402
from converter_io import save_checkpoint  # noqa: E402


def _choose_head(names, state, ckpt_path, head):
    if head is not None:
        if head not in names:
            raise ValueError(f'--head {head!r} is not a head of this sweep: {names}')
        return names.index(head), f'--head {head}'
    table = osp.join(osp.dirname(osp.abspath(ckpt_path)), 'sweep', 'results.json')
    if osp.isfile(table):
        with open(table) as f:
            rows = json.load(f)['heads']
        chosen = [r['head'] for r in rows if r['selected']]
        if chosen and chosen[0] in names:
            return names.index(chosen[0]), f'the selected head of {table}'
    if 'selected_head' not in state:
        raise KeyError(f'{ckpt_path} records no selected_head: is it a sweep checkpoint? '
                       'Name the head with --head')
    return int(state['selected_head']), f'the head {ckpt_path} records'


def single_head_config(cfg, entry):
    """The sweep config ``cfg`` (an mmengine Config) as the single-head config of
    ``entry`` (one of ``SweepEncoderDecoder.sweep_entries``)."""
    cfg = copy.deepcopy(cfg)
    model = cfg.model
    for key in ('sweep', 'heads', 'init_seed'):
        model.pop(key, None)
    model.type = 'BatchedSlideEncoderDecoder'
    order = sorted(entry['blocks'])  # the backbone returns its blocks in order
    model.backbone.out_indices = order
    head = copy.deepcopy(entry['head'])
    if len(order) > 1:
        head.update(in_index=[order.index(b) for b in entry['blocks']],
                    input_transform='resize_concat')
    else:
        head['in_index'] = 0
    model.decode_head = head
    train = cfg.train_dataloader.dataset
    if train.get('type') == 'HeldOutSplit':  # the selection split is not needed any more
        cfg.train_dataloader.dataset = train.dataset
    cfg.val_cfg = dict(type='ValLoop')
    cfg.test_cfg = dict(type='TestLoop')
    cfg.val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
    cfg.test_evaluator = cfg.val_evaluator
    optim = cfg.optim_wrapper
    optim.pop('constructor', None)
    if entry['lr'] is not None:
        optim.optimizer.lr = entry['lr']
    if entry['weight_decay'] is not None:
        optim.optimizer.weight_decay = entry['weight_decay']
    for key in ('select_dataloader', 'held_out', 'held_out_size'):
        cfg.pop(key, None)
    return cfg


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='the sweep config')
    parser.add_argument('checkpoint', help='a checkpoint of the sweep run')
    parser.add_argument('out_dir', help='folder for <head>.py and <head>.pth')
    parser.add_argument('--head', help='the head to export (default: the selected one)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='read a checkpoint that needs more than tensors and '
                        "mmengine's run-state types (it can run code)")
    args = parser.parse_args(argv)
    quiet_known_warnings()
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from internvit_dense.models import resolve_preset
    from internvit_dense.safe_load import load_run_checkpoint
    from mmseg_internvit.models.segmentors.sweep import expand_sweep

    cfg = Config.fromfile(args.config)
    if cfg.model.get('type') != 'SweepEncoderDecoder':
        raise ValueError(f'{args.config} is not a sweep config (model.type is '
                         f"{cfg.model.get('type')!r}, not 'SweepEncoderDecoder')")
    init_default_scope('mmseg')
    backbone = cfg.model.backbone
    num_layers = backbone.get('num_layers') or resolve_preset(
        backbone.get('arch', 'internvit-6b-224px'))['num_layers']
    entries = expand_sweep(cfg.model.get('sweep'), cfg.model.get('heads'),
                           cfg.model.get('decode_head'), num_layers)
    names = [e['name'] for e in entries]
    ckpt = load_run_checkpoint(args.checkpoint, map_location='cpu',
                               trust=args.trust_checkpoint)
    state = ckpt.get('state_dict', ckpt)
    index, why = _choose_head(names, state, args.checkpoint, args.head)
    prefix = f'heads.{index}.'
    head_keys = [k for k in state if k.startswith(prefix)]
    if not head_keys:
        raise KeyError(f'{args.checkpoint} has no {prefix}* keys: not a checkpoint of '
                       f'{args.config}?')
    out_state = {k: v for k, v in state.items()
                 if not k.startswith('heads.') and k != 'selected_head'}
    out_state.update({'decode_head.' + k[len(prefix):]: state[k] for k in head_keys})
    meta = dict(ckpt.get('meta', {}))
    meta.update(exported_from=osp.basename(args.checkpoint), sweep_head=names[index])
    name = names[index]
    os.makedirs(args.out_dir, exist_ok=True)
    cfg_path = osp.join(args.out_dir, f'{name}.py')
    ckpt_path = osp.join(args.out_dir, f'{name}.pth')
    single_head_config(cfg, entries[index]).dump(cfg_path)
    save_checkpoint(ckpt_path, meta, out_state)  # atomic: renamed when complete
    print(f'exported head {name} ({why}) -> {cfg_path}, {ckpt_path}')
    return cfg_path, ckpt_path


if __name__ == '__main__':
    main()
