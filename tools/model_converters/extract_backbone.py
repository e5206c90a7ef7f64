"""Save the InternViT backbone of a trained model as a plain safetensors file.

    python tools/model_converters/extract_backbone.py work_dirs/<run>/iter_80000.pth \\
        backbone.safetensors

The result loads anywhere with ``init_cfg=dict(type='Pretrained',
checkpoint='backbone.safetensors')``, through the same strict loader as the released
weights (including patch 14 -> 16 and position-grid resizing). The input is a checkpoint
of your own run, read with ``weights_only=True`` like every checkpoint here; the output
holds tensors only, so it can be shared and loaded safely.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/: common.py
from common import quiet_known_warnings  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('checkpoint', help='mmengine checkpoint of a trained model')
    parser.add_argument('out', help='output .safetensors file')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='read a checkpoint that needs more than tensors and '
                        "mmengine's run-state types (it can run code)")
    parser.add_argument('--prefix', default='backbone.',
                        help='key prefix of the backbone in the model')
    args = parser.parse_args(argv)
    quiet_known_warnings()
    from safetensors.torch import save_file

    from internvit_dense.safe_load import load_run_checkpoint
    ckpt = load_run_checkpoint(args.checkpoint, map_location='cpu',
                               trust=args.trust_checkpoint)
    state = ckpt.get('state_dict', ckpt)
    weights = {k[len(args.prefix):]: v.contiguous() for k, v in state.items()
               if k.startswith(args.prefix)}
    if not weights:
        raise KeyError(f'no keys with prefix {args.prefix!r} in {args.checkpoint}; '
                       f'first keys: {list(state)[:5]}')
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    save_file(weights, args.out)
    print(f'wrote {len(weights)} tensors to {args.out}')
    return args.out


if __name__ == '__main__':
    main()
