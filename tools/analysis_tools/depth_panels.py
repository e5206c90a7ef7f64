"""Predicted next to true depth, one PNG per image of a depth config's test set:
image | true depth | predicted depth | absolute error, on one colour scale (metres),
pixels without a measured depth in black.

    python tools/analysis_tools/depth_panels.py CONFIG CHECKPOINT OUT_DIR \\
        [--max-images 8] [--trust-checkpoint]

The checkpoint is loaded strictly with the allow-list, as tools/infer.py does; the
images and depths are the config's ``test_dataloader`` (its test pipeline). Each
panel's title gives that image's RMSE over the pixels the metric counts (valid depth
within the model's range).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/: common.py
from common import load_config, quiet_known_warnings  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('out_dir')
    parser.add_argument('--max-images', type=int, default=8)
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load a checkpoint that needs more than tensors and '
                        "mmengine's run-state types (it can run code)")
    return parser.parse_args(argv)


def draw(path, image, true, pred, lo, hi, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    cmap = matplotlib.colormaps['turbo'].copy()
    cmap.set_bad('black')
    valid = np.isfinite(true) & (true > 0)
    shown = np.where(valid, true, np.nan)
    error = np.where(valid, np.abs(pred - true), np.nan)
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4), constrained_layout=True)
    axes[0].imshow(image)
    axes[0].set_title('image')
    for ax, data, name in ((axes[1], shown, 'true depth'), (axes[2], pred, 'predicted'),
                           (axes[3], error, '|error|')):
        im = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=0 if ax is axes[3]
                       else lo, vmax=hi - lo if ax is axes[3] else hi)
        ax.set_title(name)
        fig.colorbar(im, ax=ax, shrink=0.8, label='m')
    for ax in axes:
        ax.axis('off')
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    quiet_known_warnings()
    args = parse_args(argv)
    import numpy as np
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS, MODELS
    from PIL import Image

    from internvit_dense.engine import load_plain_checkpoint
    cfg = load_config(args.config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    load_plain_checkpoint(model, args.checkpoint, trust=args.trust_checkpoint)
    model.eval()
    head = model.decode_head
    lo, hi = float(head.min_depth), float(head.max_depth)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    os.makedirs(args.out_dir, exist_ok=True)
    written = []
    for i in range(min(len(dataset), args.max_images)):
        with torch.no_grad():
            out = model.test_step(pseudo_collate([dataset[i]]))[0]
        pred = out.pred_depth_map.data[0].float().cpu().numpy()
        true = out.gt_depth_map.data[0].float().cpu().numpy()
        image = np.asarray(Image.open(out.img_path).convert('RGB'))
        keep = np.isfinite(true) & (true >= lo) & (true <= hi)
        rmse = float(np.sqrt(np.mean((pred[keep] - true[keep]) ** 2))) if keep.any() \
            else float('nan')
        vmax = float(np.nanmax(np.where(keep, true, np.nan))) if keep.any() else hi
        vmin = float(np.nanmin(np.where(keep, true, np.nan))) if keep.any() else lo
        name = osp.splitext(osp.basename(out.img_path))[0]
        path = osp.join(args.out_dir, f'{name}.png')
        draw(path, image, np.where(keep, true, np.nan), pred, vmin, vmax,
             f'{name}: RMSE {rmse:.3f} m over {int(keep.sum())} measured pixels')
        written.append((path, rmse))
        print(f'{path}: RMSE {rmse:.4f} m')
    return written


if __name__ == '__main__':
    main()
