"""Convert an InternVL segmentation checkpoint (mmseg 0.x) to this package's layout.

The InternVL authors trained their ADE20K / COCO-Stuff models with mmseg 0.x
(InternVL ``segmentation/``; InternVL-MMDetSeg ``mmsegmentation/`` with DeepSpeed) and
released eight of them at the root of the Hugging Face repo ``OpenGVLab/InternVL``
(``linear_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5_frozen.pth``, ...). Their layout
(``backbone.blocks.{i}.ls1.gamma``, ``backbone.patch_embed.proj``, the UperNet pyramid as
``backbone.up1..up4``, the linear probe's ``decode_head.norm``) is mapped onto ours
(:func:`internvit_dense.models.layouts.convert_internvl_segmentor`), and the result is
written as an mmengine checkpoint ``{'meta': {'dataset_meta': ...}, 'state_dict': ...}``
that the matching config loads strictly and mmseg's inferencers label with the dataset's
class names and palette::

    python tools/model_converters/internvl2mmseg.py SRC DST

An adapter segmentor (InternVL-MMDetSeg's adapter-tuning config: ``backbone.spm``,
``backbone.interactions``, ``backbone.level_embed``, ``backbone.norm1..4`` next to the
ViT's keys) is recognised by its keys and mapped onto ``InternViTAdapter``
(:func:`internvit_dense.models.layouts.convert_internvl_adapter_segmentor`), for
``configs/internvit_adapter/upernet_internvit-6b-224px-adapter-frozen_8xb2-80k_ade20k-512x512.py``.

``SRC`` may hold any container the upstream tools write: a bare state dict (what their
``segmentation/release.py`` saves), mmcv 1.x's ``{meta, state_dict, optimizer}``,
``{'module': state_dict}``, or a DeepSpeed ``mp_rank_00_model_states.pt`` (or the
DeepSpeed checkpoint directory holding it). It is read with ``weights_only=True``: a file
that needs other pickled objects is refused unless ``--trust-checkpoint`` is given.

Which copy of the upstream code: the head-tuning, full-tuning and few-shot files come
from InternVL-MMDetSeg's DeepSpeed runs (InternVL ``segmentation/`` has no DeepSpeed, so
its README says it cannot full-tune), the linear probe from a run without DeepSpeed (its
configs say ``deepspeed = False`` in both copies); the backbones were bf16 in all of them.
The two copies name every module alike (they differ in casts and in a forward
signature, not in the state dict), so one mapping serves both; tensors keep their stored
dtype and the model casts them when it loads.
"""
import argparse
import os.path as osp
import sys
from collections import Counter

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/: common.py
from common import quiet_known_warnings  # noqa: E402  (and the repository on sys.path)
from converter_io import read_state_dict, save_checkpoint  # noqa: E402

DATASETS = {150: 'ade20k', 171: 'coco-stuff164k'}


def dataset_meta(name: str) -> dict:
    from mmseg.datasets import ADE20KDataset, COCOStuffDataset
    cls = {'ade20k': ADE20KDataset, 'coco-stuff164k': COCOStuffDataset}[name]
    return dict(classes=list(cls.METAINFO['classes']),
                palette=[list(p) for p in cls.METAINFO['palette']])


def convert_file(src: str, dst: str, dataset: str = 'auto', trust: bool = False) -> dict:
    """Convert ``src`` into ``dst``; returns a summary (container, form, classes)."""
    from internvit_dense.models.layouts import (
        convert_internvl_adapter_segmentor,
        convert_internvl_segmentor,
        is_internvl_adapter_segmentor,
    )
    state, container, upstream_meta = read_state_dict(src, trust=trust)
    adapter = is_internvl_adapter_segmentor(state)
    if adapter:
        converted, unknown = convert_internvl_adapter_segmentor(state)
        if unknown:
            raise ValueError(
                f'{src}: keys outside the InternVL adapter segmentor layout '
                f'({len(unknown)}): {unknown[:8]}')
    else:
        converted, unknown = convert_internvl_segmentor(state)
        if unknown:
            raise ValueError(
                f'{src}: keys outside the InternVL segmentor layout ({len(unknown)}): '
                f'{unknown[:8]}. A pyramid with final norms (with_final_norm=True: up1.4, '
                "up2.1, ...) has no counterpart in mmseg's Feature2Pyramid")
    pos = 'backbone.vit.pos_embed' if adapter else 'backbone.pos_embed'
    if pos not in converted or 'decode_head.conv_seg.weight' not in converted:
        raise ValueError(f'{src} is not an InternVL segmentor: it lacks '
                         'backbone.pos_embed or decode_head.conv_seg.weight '
                         f'(first keys: {list(state)[:5]})')
    num_classes = converted['decode_head.conv_seg.weight'].shape[0]
    if dataset == 'auto':
        if num_classes not in DATASETS:
            raise ValueError(f'{src} predicts {num_classes} classes, neither ADE20K (150) '
                             'nor COCO-Stuff-164K (171): pass --dataset')
        dataset = DATASETS[num_classes]
    meta_info = dataset_meta(dataset)
    if len(meta_info['classes']) != num_classes:
        raise ValueError(f'{src} predicts {num_classes} classes but {dataset} has '
                         f"{len(meta_info['classes'])}")
    form = ('upernet' if any(k.startswith('decode_head.psp_modules.') for k in converted)
            else 'linear')
    if adapter:
        form = f'adapter-{form}'
    blocks = 'backbone.vit.blocks.' if adapter else 'backbone.blocks.'
    depth = 1 + max(int(k[len(blocks):].split('.')[0]) for k in converted
                    if k.startswith(blocks))
    meta = dict(dataset_meta=meta_info, converted_from=osp.basename(src),
                converter='tools/model_converters/internvl2mmseg.py',
                source_container=container, source_form=form, source_blocks=depth)
    if 'config' in upstream_meta and isinstance(upstream_meta['config'], str):
        meta['source_config'] = upstream_meta['config']
    save_checkpoint(dst, meta, converted)  # atomic: renamed when complete
    dtypes = Counter(str(v.dtype).replace('torch.', '') for v in converted.values())
    return dict(container=container, form=form, blocks=depth, dataset=dataset,
                num_classes=num_classes, tensors=len(converted), dtypes=dict(dtypes))


def main(argv=None) -> None:
    quiet_known_warnings()
    parser = argparse.ArgumentParser(
        description='Convert an InternVL (mmseg 0.x) segmentation checkpoint to the '
        "layout of internvit-dense's mmseg 1.x configs")
    parser.add_argument('src', help='upstream checkpoint (.pth / .pt, or a DeepSpeed '
                        'checkpoint directory)')
    parser.add_argument('dst', help='converted checkpoint to write')
    parser.add_argument('--dataset', choices=['auto', *DATASETS.values()], default='auto',
                        help='class names and palette to store (default: from the number '
                        'of classes, 150 ADE20K, 171 COCO-Stuff-164K)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='read a source that needs pickled objects beyond tensors '
                        '(it can run code when loaded: only for files you trust)')
    args = parser.parse_args(argv)
    summary = convert_file(args.src, args.dst, args.dataset, args.trust_checkpoint)
    print(f"converted {args.src} ({summary['container']} container, {summary['form']} "
          f"head, {summary['blocks']} blocks, {summary['num_classes']} classes: "
          f"{summary['dataset']}) -> {args.dst}: {summary['tensors']} tensors "
          f"{summary['dtypes']}")


if __name__ == '__main__':
    main()
