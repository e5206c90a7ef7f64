"""Train a segmentation (mmseg) or detection (mmdet) model from a config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--zero N]
                          [--trust-checkpoint] [--cfg-options KEY=VALUE ...]
                          [--launcher pytorch|slurm|mpi]

A thin convenience over what the config itself says: mmseg's and mmdet's own
``tools/train.py`` run our configs the same way. The library comes from the config's
``default_scope`` and the runner from its ``runner_type`` (``InternViTRunner``, which
becomes ``InternViTFlexibleRunner`` for a config with a DeepSpeed ``strategy``): safe
and strict checkpoint
loading, CPU-only distributed runs and the DeepSpeed ``load_from`` handling live there.
Checkpoints are written every ``default_hooks.checkpoint.interval`` iterations;
``--resume`` continues the latest one in the work dir (or the given file) with its
iteration counter, learning-rate schedule and optimizer state.

``--zero N`` turns any training config into a DeepSpeed ZeRO stage-N run
(``InternViTFlexibleRunner`` + ``InternViTDeepSpeedStrategy``); its checkpoints are
DeepSpeed directories, turned into one plain file by
``tools/model_converters/consolidate_zero_checkpoint.py``.
"""
import argparse
import os.path as osp

from common import add_run_args, build_runner, load_run_config, quiet_known_warnings


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a segmentor or detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--resume', nargs='?', const='auto', metavar='CKPT',
                        help='resume from CKPT, or from the latest checkpoint in the '
                        'work dir when no file is given')
    parser.add_argument('--amp', action='store_true',
                        help='bf16 mixed precision (AmpOptimWrapper; DeepSpeed bf16 '
                        'under --zero)')
    parser.add_argument('--zero', type=int, choices=[0, 1, 2, 3], metavar='STAGE',
                        help='train with DeepSpeed ZeRO stage 0-3 (FlexibleRunner + '
                        'InternViTDeepSpeedStrategy); overrides the config\'s stage')
    add_run_args(parser)
    return parser.parse_args(argv)


def apply_zero_switch(cfg, stage: int) -> None:
    """``--zero N``: the config's strategy with ZeRO stage N, or a new one."""
    strategy = cfg.get('strategy') or dict()
    strategy.setdefault('type', 'InternViTDeepSpeedStrategy')
    zero = dict(strategy.get('zero_optimization') or {})
    zero['stage'] = stage
    strategy['zero_optimization'] = zero
    cfg.strategy = strategy


def main(argv=None):
    quiet_known_warnings()
    args = parse_args(argv)
    cfg = load_run_config(args)
    if args.zero is not None:
        apply_zero_switch(cfg, args.zero)
    flexible = bool(cfg.get('strategy'))
    if args.amp:
        if flexible:
            cfg.strategy.setdefault('bf16', dict(enabled=True))
        else:
            wrapper = cfg.optim_wrapper
            if wrapper.get('type', 'OptimWrapper') != 'AmpOptimWrapper':
                wrapper.type = 'AmpOptimWrapper'
                wrapper.setdefault('dtype', 'bfloat16')
    if args.resume and args.resume != 'auto' and osp.isdir(args.resume) and not flexible:
        raise ValueError(f'--resume {args.resume} is a DeepSpeed checkpoint directory; '
                         'resume it with the same --zero N (or strategy config) as the '
                         'run that wrote it')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        if not osp.exists(args.resume):
            raise FileNotFoundError(f'--resume checkpoint not found: {args.resume}')
        cfg.resume, cfg.load_from = True, args.resume
    runner = build_runner(cfg)
    runner.train()
    return runner


if __name__ == '__main__':
    main()
