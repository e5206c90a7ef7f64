"""Run a trained model on images and save the predictions drawn over them.

    python tools/infer.py CONFIG CHECKPOINT IMAGE [IMAGE ...] [--out-dir DIR]
                          [--trust-checkpoint]

Segmentation configs (mmseg) get a colour overlay of the predicted classes; detection
configs (mmdet) get boxes, labels and instance masks. One PNG per input image. The
checkpoint is read with ``weights_only=True`` and loaded strictly (every key must fit),
unlike mmseg's ``init_model`` / mmdet's ``init_detector``, which warn and go on.
"""
import argparse
import os
import os.path as osp

from mmengine.config import DictAction

from common import load_config, quiet_known_warnings


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Draw predictions over images')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument('--out-dir', default='outputs', help='where the PNGs go')
    parser.add_argument('--device', default='cpu', help="e.g. 'cuda:0'")
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='overlay opacity (segmentation)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='minimum score of drawn detections')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load a checkpoint that needs more than tensors and '
                        "mmengine's run-state types (it can run code): trusted files only")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        metavar='KEY=VALUE')
    return parser.parse_args(argv)


def load_strictly(model, checkpoint: str, trust: bool) -> None:
    """Load ``checkpoint`` with the allow-list, every key fitting the model, and take
    the class names and palette from its meta (what init_model does, strictly)."""
    from internvit_dense.engine import load_plain_checkpoint
    ckpt = load_plain_checkpoint(model, checkpoint, trust=trust)
    meta = ckpt.get('meta', {}).get('dataset_meta')
    if meta:
        model.dataset_meta = dict(meta)
    model.cfg.load_from = checkpoint


def main(argv=None):
    quiet_known_warnings()
    args = parse_args(argv)
    for path in [args.checkpoint] + args.images:
        if not osp.isfile(path):
            raise FileNotFoundError(f'file not found: {path}')
    cfg = load_config(args.config, args.cfg_options)
    os.makedirs(args.out_dir, exist_ok=True)
    import mmcv
    trust = args.trust_checkpoint or bool(cfg.get('trust_checkpoint', False))
    written = []
    if cfg.default_scope == 'mmseg':
        from mmseg.apis import inference_model, init_model, show_result_pyplot
        # Images alone have no label maps. mmseg's inference_model drops only
        # transforms named exactly 'LoadAnnotations' from cfg.test_pipeline.
        cfg.test_pipeline = [t for t in cfg.test_pipeline
                             if 'Annotations' not in t['type']]
        model = init_model(cfg, None, device='cpu')
        load_strictly(model, args.checkpoint, trust)
        model.to(args.device)
        for path in args.images:
            out = osp.join(args.out_dir, osp.splitext(osp.basename(path))[0] + '.png')
            result = inference_model(model, path)
            show_result_pyplot(model, path, result, opacity=args.opacity, show=False,
                               out_file=out)
            written.append(out)
    else:
        from mmdet.apis import inference_detector, init_detector
        from mmdet.registry import VISUALIZERS
        model = init_detector(cfg, None, device='cpu')
        load_strictly(model, args.checkpoint, trust)
        model.to(args.device)
        visualizer = VISUALIZERS.build(model.cfg.visualizer)
        visualizer.dataset_meta = model.dataset_meta
        for path in args.images:
            out = osp.join(args.out_dir, osp.splitext(osp.basename(path))[0] + '.png')
            result = inference_detector(model, path)
            img = mmcv.imread(path, channel_order='rgb')
            visualizer.add_datasample('result', img, data_sample=result, draw_gt=False,
                                      show=False, pred_score_thr=args.score_thr,
                                      out_file=out)
            written.append(out)
    for out in written:
        print(f'wrote {out}')
    return written


if __name__ == '__main__':
    main()
