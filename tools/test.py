"""Evaluate a checkpoint on a config's test set (mmseg or mmdet, from the config).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--show-dir DIR] [--out FILE]
                         [--tta] [--trust-checkpoint] [--cfg-options KEY=VALUE ...]
                         [--launcher pytorch|slurm|mpi]

``--tta`` (segmentation) evaluates with mmseg's ``SegTTAModel``: the config's
``tta_pipeline`` (6 scales x 2 flips in ours) and the class probabilities averaged over
the views. ``--show-dir`` saves every prediction drawn over its image (segmentation overlays, or
boxes and masks). A DeepSpeed run's checkpoint (a directory) is first turned into one
plain file by ``tools/model_converters/consolidate_zero_checkpoint.py``; a config's
``strategy`` is ignored here, evaluation runs on the plain runner (``InternViTRunner``).
The checkpoint is read with ``weights_only=True`` and loaded strictly: a file that needs
other globals, or whose keys do not fit the model, is an error naming it.
"""
import argparse
import os.path as osp

from common import add_run_args, build_runner, load_run_config, quiet_known_warnings


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--show-dir', help='save prediction overlays into this folder')
    parser.add_argument('--out', help='dump raw predictions to this pickle file')
    parser.add_argument('--tta', action='store_true',
                        help="test-time augmentation (mmseg's SegTTAModel over the "
                        "config's tta_pipeline)")
    add_run_args(parser)
    return parser.parse_args(argv)


def enable_drawing(cfg, show_dir: str) -> None:
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise KeyError('--show-dir needs default_hooks.visualization in the config')
    hook['draw'] = True
    if cfg.default_scope == 'mmdet':
        hook['test_out_dir'] = osp.abspath(show_dir)
    else:  # mmseg's hook saves through the visualizer's save_dir
        hook['interval'] = 1
        cfg.visualizer['save_dir'] = show_dir


def enable_tta(cfg) -> None:
    """What mmseg's own tools/test.py does for --tta."""
    missing = [k for k in ('tta_model', 'tta_pipeline') if k not in cfg]
    if cfg.default_scope != 'mmseg' or missing:
        raise KeyError(f'--tta needs a segmentation config with tta_model and '
                       f'tta_pipeline (missing: {missing or "mmseg scope"})')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model


def main(argv=None):
    quiet_known_warnings()
    args = parse_args(argv)
    if osp.isdir(args.checkpoint):
        raise IsADirectoryError(
            f'{args.checkpoint} is a directory (a DeepSpeed checkpoint?): consolidate it '
            'first: python tools/model_converters/consolidate_zero_checkpoint.py '
            f'{args.checkpoint} plain.pth')
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    cfg = load_run_config(args)
    cfg.load_from = args.checkpoint
    cfg.pop('strategy', None)  # training-time sharding; evaluation is plain
    cfg.resume = False
    if args.tta:
        enable_tta(cfg)
    if args.show_dir:
        enable_drawing(cfg, args.show_dir)
    if args.out:
        cfg.test_evaluator = [cfg.test_evaluator] if isinstance(
            cfg.test_evaluator, dict) else list(cfg.test_evaluator)
        cfg.test_evaluator.append(dict(type='DumpResults', out_file_path=args.out))
    return build_runner(cfg).test()


if __name__ == '__main__':
    main()
