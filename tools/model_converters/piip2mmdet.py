"""Convert a PIIP / InternVL detection checkpoint (mmdet 2.x) to this package's layout.

PIIP (``OpenGVLab/PIIP`` ``mmdetection/``) trained its InternViT-6B Mask R-CNN baseline
with mmdet 2.x under DeepSpeed and released it on the Hugging Face repo
``OpenGVLab/PIIP`` (``detection/mask_rcnn_internvit_6b_fpn_1x_coco_bs16_ms.pth``); the
InternVL authors' detection code (InternVL-MMDetSeg ``mmdetection/``) writes the same
layout. Their backbone holds the simple pyramid (``backbone.up1`` / ``backbone.up2``), names
the patch projection ``patch_embed.proj`` and the layer scales ``ls1.gamma``; here the
pyramid and mmdet's FPN form the ``SimpleFeaturePyramid`` neck
(:func:`mmdet_internvit.layouts.convert_upstream_detector`). The result is written as an
mmengine checkpoint ``{'meta': {'dataset_meta': ...}, 'state_dict': ...}`` that the
matching config (``configs/internvit_det/mask-rcnn_internvit-6b_simplefpn_8xb2-ms-1x_coco.py``
for PIIP's file) loads strictly and mmdet's inferencers label with the COCO class names::

    python tools/model_converters/piip2mmdet.py SRC DST

``SRC`` may hold any container the upstream tools write: a bare state dict, mmcv 1.x's
``{meta, state_dict, optimizer}``, ``{'module': state_dict}``, or a DeepSpeed
``mp_rank_00_model_states.pt`` (or the DeepSpeed checkpoint directory holding it). It is
read with ``weights_only=True``: a file that needs other pickled objects is refused unless
``--trust-checkpoint`` is given. Tensors keep their stored dtype (bf16 from a DeepSpeed
bf16 run); the model casts them when it loads.
"""
import argparse
import os.path as osp
import sys
from collections import Counter

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/: common.py
from common import quiet_known_warnings  # noqa: E402  (and the repository on sys.path)
from converter_io import read_state_dict, save_checkpoint  # noqa: E402

CONVERTER = 'tools/model_converters/piip2mmdet.py'


def coco_meta() -> dict:
    from mmdet.datasets import CocoDataset
    return dict(classes=list(CocoDataset.METAINFO['classes']),
                palette=[list(p) for p in CocoDataset.METAINFO['palette']])


def convert_file(src: str, dst: str, trust: bool = False) -> dict:
    """Convert ``src`` into ``dst``; returns a summary (container, heads, classes)."""
    from mmdet_internvit.layouts import convert_upstream_detector
    state, container, upstream_meta = read_state_dict(src, trust=trust)
    converted, unknown = convert_upstream_detector(state)
    if unknown:
        raise ValueError(
            f'{src}: keys outside the PIIP / InternVL detector layout ({len(unknown)}): '
            f'{unknown[:8]}. A pyramid with final norms (with_final_norm=True: up1.4, '
            'up2.1, ...) has no counterpart in SimpleFeaturePyramid')
    cls_key = 'roi_head.bbox_head.fc_cls.weight'
    if 'backbone.pos_embed' not in converted or cls_key not in converted:
        raise ValueError(f'{src} is not a PIIP / InternVL Mask R-CNN: it lacks '
                         f'backbone.pos_embed or {cls_key} (first keys: {list(state)[:5]})')
    num_classes = converted[cls_key].shape[0] - 1  # + background
    meta_info = coco_meta()
    if len(meta_info['classes']) != num_classes:
        raise ValueError(f'{src} predicts {num_classes} classes, not the 80 of COCO')
    upstream_classes = upstream_meta.get('CLASSES')  # mmdet 2.x's CheckpointHook meta
    if upstream_classes is not None and list(upstream_classes) != meta_info['classes']:
        raise ValueError(f'{src}: its meta CLASSES are not the COCO classes in COCO order')
    depth = 1 + max(int(k.split('.')[2]) for k in converted
                    if k.startswith('backbone.blocks.'))
    rows = converted['backbone.pos_embed'].shape[1] - 1  # + the unused class row
    side = int(round(rows ** 0.5))
    grid = f'{side} x {side}' if side * side == rows else f'{rows}-row'
    meta = dict(dataset_meta=meta_info, converted_from=osp.basename(src),
                converter=CONVERTER, source_container=container, source_blocks=depth,
                source_position_grid=grid)
    if 'config' in upstream_meta and isinstance(upstream_meta['config'], str):
        meta['source_config'] = upstream_meta['config']
    save_checkpoint(dst, meta, converted)  # atomic: renamed when complete
    dtypes = Counter(str(v.dtype).replace('torch.', '') for v in converted.values())
    return dict(container=container, blocks=depth, grid=grid,
                cls_token='backbone.cls_token' in converted, num_classes=num_classes,
                tensors=len(converted), dtypes=dict(dtypes))


def main(argv=None) -> None:
    quiet_known_warnings()
    parser = argparse.ArgumentParser(
        description='Convert a PIIP / InternVL (mmdet 2.x) InternViT detection checkpoint '
        "to the layout of internvit-dense's mmdet 3.x configs")
    parser.add_argument('src', help='upstream checkpoint (.pth / .pt, or a DeepSpeed '
                        'checkpoint directory)')
    parser.add_argument('dst', help='converted checkpoint to write')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='read a source that needs pickled objects beyond tensors '
                        '(it can run code when loaded: only for files you trust)')
    args = parser.parse_args(argv)
    summary = convert_file(args.src, args.dst, args.trust_checkpoint)
    print(f"converted {args.src} ({summary['container']} container, {summary['blocks']} "
          f"blocks, a {summary['grid']} position grid, "
          f"{'a' if summary['cls_token'] else 'no'} class token, "
          f"{summary['num_classes']} classes: COCO) -> {args.dst}: "
          f"{summary['tensors']} tensors {summary['dtypes']}")


if __name__ == '__main__':
    main()
