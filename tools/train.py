"""Train a segmentation (mmseg) or detection (mmdet) model from a config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                          [--cfg-options KEY=VALUE ...] [--launcher pytorch|slurm|mpi]

The library is taken from the config's ``default_scope``. Checkpoints are written every
``default_hooks.checkpoint.interval`` iterations; ``--resume`` continues the latest one
in the work dir (or the given file) with its iteration counter, learning-rate schedule
and optimizer state.
"""
import argparse
import os.path as osp

from common import add_run_args, load_run_config, quiet_known_warnings


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a segmentor or detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--resume', nargs='?', const='auto', metavar='CKPT',
                        help='resume from CKPT, or from the latest checkpoint in the '
                        'work dir when no file is given')
    parser.add_argument('--amp', action='store_true',
                        help='bf16 automatic mixed precision (AmpOptimWrapper)')
    add_run_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    quiet_known_warnings()
    args = parse_args(argv)
    cfg = load_run_config(args)
    if args.amp:
        wrapper = cfg.optim_wrapper
        if wrapper.get('type', 'OptimWrapper') != 'AmpOptimWrapper':
            wrapper.type = 'AmpOptimWrapper'
            wrapper.setdefault('dtype', 'bfloat16')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f'--resume checkpoint not found: {args.resume}')
        cfg.resume, cfg.load_from = True, args.resume

    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    main()
