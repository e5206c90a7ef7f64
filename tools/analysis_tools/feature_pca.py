"""The patch features of chosen InternViT blocks as RGB (their first three principal
components), next to the image, in one PNG: what a frozen backbone sees before probing.

    python tools/analysis_tools/feature_pca.py IMAGE OUT.png --config CONFIG \\
        [--checkpoint RUN_CKPT] [--blocks -1 -4 ...] [--side 448]
    python tools/analysis_tools/feature_pca.py IMAGE OUT.png --arch internvit-300m-448px \\
        --pretrained pretrained/InternViT-300M-448px

The backbone is the config's ``model.backbone`` (its ``init_cfg`` weights, or the
``backbone.*`` weights of a run checkpoint given with ``--checkpoint``, loaded
strictly), or a preset with released weights (``--arch`` + ``--pretrained``). The image
is resized to ``--side`` on its short side (a multiple of the patch), normalised with
the ImageNet mean and std as the configs do, and passed once; for each block, PCA over
its patches (the block's own components, fitted on this image), the components mapped
to [0, 1] between their 1st and 99th percentiles.
"""
import argparse
import os.path as osp
import sys
from typing import List, Sequence

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/: common.py
from common import quiet_known_warnings  # noqa: E402

MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


def pca_rgb(features, components: int = 3):
    """(C, h, w) features -> (h, w, 3) floats in [0, 1]: the projections on the first
    three principal components of the h*w patch vectors, each scaled between its 1st
    and 99th percentile. The sign of a component is fixed so that its largest loading
    is positive (the colours do not flip between runs)."""
    import torch
    c, h, w = features.shape
    x = features.reshape(c, h * w).T.double()
    x = x - x.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    v = v[:components]  # (3, C)
    sign = torch.sign(v.gather(1, v.abs().argmax(1, keepdim=True)))
    proj = x @ (v * sign).T  # (hw, 3)
    lo = torch.quantile(proj, 0.01, dim=0)
    hi = torch.quantile(proj, 0.99, dim=0)
    rgb = ((proj - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)
    if rgb.shape[1] < 3:
        rgb = torch.cat([rgb, rgb.new_zeros(rgb.shape[0], 3 - rgb.shape[1])], 1)
    return rgb.reshape(h, w, 3).float()


def build_backbone(args):
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import mmseg_internvit  # noqa: F401  (registers InternViT)
    from internvit_dense.models import InternViT, load_pretrained_into
    from internvit_dense.safe_load import load_run_checkpoint
    if args.config:
        cfg = Config.fromfile(args.config).model.backbone
        if str(cfg.get('type', '')).split('.')[-1] != 'InternViT':
            raise ValueError(f'{args.config}: model.backbone is {cfg.get("type")!r}, not '
                             'InternViT')
        cfg.update(out_indices=-1, frozen=True, param_dtype=None)  # blocks: set below
        if args.checkpoint:
            cfg.init_cfg = None
        init_default_scope('mmseg')
        model = MODELS.build(cfg)
        model.init_weights()
        if args.checkpoint:
            ckpt = load_run_checkpoint(args.checkpoint, map_location='cpu')
            state = ckpt.get('state_dict', ckpt)
            backbone = {k[len('backbone.'):]: v for k, v in state.items()
                        if k.startswith('backbone.')}
            if not backbone:
                raise KeyError(f'{args.checkpoint} has no backbone.* keys; for released '
                               'weights use --arch and --pretrained')
            missing, unexpected = model.load_state_dict(backbone, strict=False)
            if missing or unexpected:
                raise KeyError(f'{args.checkpoint} does not fit {args.config}: missing '
                               f'{missing[:5]}, unexpected {unexpected[:5]}')
    else:
        model = InternViT(arch=args.arch, out_indices=-1, frozen=True,
                          init_cfg=None)
        if args.pretrained:
            load_pretrained_into(model, args.pretrained)
    return model.eval().to(torch.float32)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('image')
    parser.add_argument('out', help='PNG to write')
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument('--config', help='a config whose model.backbone is an InternViT')
    src.add_argument('--arch', help='an InternViT preset (with --pretrained)')
    parser.add_argument('--checkpoint', help='a run checkpoint (with --config)')
    parser.add_argument('--pretrained', help='released weights (with --arch)')
    parser.add_argument('--blocks', type=int, nargs='+', default=[-1],
                        help='blocks to show, negatives from the end (default: the last)')
    parser.add_argument('--side', type=int, default=448,
                        help='short side of the input, rounded to a multiple of the patch')
    args = parser.parse_args(argv)
    if args.checkpoint and not args.config:
        parser.error('--checkpoint goes with --config')
    if args.pretrained and not args.arch:
        parser.error('--pretrained goes with --arch')
    quiet_known_warnings()
    import numpy as np
    import torch
    from PIL import Image

    if not osp.isfile(args.image):
        raise FileNotFoundError(f'image not found: {args.image}')
    model = build_backbone(args)
    blocks = []
    for b in args.blocks:
        if not -model.num_layers <= b < model.num_layers:
            raise ValueError(f'--blocks {b} is out of range for {model.num_layers} blocks')
        blocks.append(b % model.num_layers)
    model.out_indices = sorted(set(blocks))  # the backbone returns them in order
    image = Image.open(args.image).convert('RGB')
    p = model.patch_size
    scale = args.side / min(image.size)
    w, h = (max(p, round(s * scale / p) * p) for s in image.size)
    resized = np.asarray(image.resize((w, h), Image.BICUBIC), dtype=np.float32)
    x = (torch.from_numpy(resized) - torch.tensor(MEAN)) / torch.tensor(STD)
    with torch.no_grad():
        maps = model(x.permute(2, 0, 1)[None])
    by_block = dict(zip(model.out_indices, maps))
    panels = [(b, by_block[b][0]) for b in blocks]
    write_panels(resized / 255.0, panels, args.out, title=args.config or args.arch)
    print(f'wrote {args.out}: blocks {[b for b, _ in panels]} at {w}x{h}')
    return args.out


def write_panels(image, panels: Sequence, out: str, title: str = '') -> List:
    """The image and one PCA panel per (block, (C, h, w) features), side by side."""
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    import torch.nn.functional as F
    h, w = image.shape[:2]
    fig, axes = plt.subplots(1, 1 + len(panels),
                             figsize=(3.2 * (1 + len(panels)), 3.2 * h / w + 0.5))
    axes[0].imshow(image)
    axes[0].set_title('image')
    rgbs = []
    for ax, (block, feats) in zip(axes[1:], panels):
        rgb = pca_rgb(feats)
        rgbs.append(rgb)
        big = F.interpolate(rgb.permute(2, 0, 1)[None], size=(h, w), mode='nearest')[0]
        ax.imshow(big.permute(1, 2, 0).numpy())
        ax.set_title(f'block {block}: PCA 1-3')
    for ax in axes:
        ax.axis('off')
    fig.suptitle(osp.basename(str(title)), fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return rgbs


if __name__ == '__main__':
    main()
