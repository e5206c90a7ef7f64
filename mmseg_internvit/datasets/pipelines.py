# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""The data pipelines every segmentation dataset base shares, as one function.

mmengine configs cannot parametrise a base file: a base's values are computed when
it is read, so a dataset base at another crop size would have to repeat its three
pipelines with new numbers. The dataset bases (``configs/_base_/datasets/``) and the
demos call this instead, with their sizes and label settings::

    from mmseg_internvit.datasets.pipelines import seg_pipelines
    crop_size, num_classes = (504, 504), 150
    train_pipeline, test_pipeline, tta_pipeline = seg_pipelines(
        crop_size, num_classes, reduce_zero_label=True)

The result is plain dicts of mmseg's own transforms, as if written in the file
(``cfg.pretty_text`` shows them).
"""
from typing import List, Optional, Sequence, Tuple

# mmseg's test-time augmentation convention: six scales x two flips
TTA_RATIOS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


# The long side of a short-side-exact test resize: no image reaches it, so mmcv's
# imrescale scales by short side alone, as the InternVL authors' SETR_Resize does.
UNBOUNDED_SIDE = 1_000_000


def seg_pipelines(crop_size: Sequence[int], num_classes: int, reduce_zero_label: bool,
                  train_side: Optional[int] = None, test_side: Optional[int] = None,
                  tta_ratios: Sequence[float] = TTA_RATIOS,
                  size_divisor: Optional[int] = None, test_long_side: str = 'max4x'
                  ) -> Tuple[List[dict], List[dict], List[dict]]:
    """Train, test and test-time-augmentation pipelines of the InternViT recipes.

    Args:
        crop_size: training crop ``(h, w)``.
        num_classes: classes of the dataset; a label value outside them (and
            outside the ignore index 255) is an error naming the file
            (``LoadCheckedAnnotations``).
        reduce_zero_label: ADE20K's label 0 is "other", mapped to 255.
        train_side: short side the random resize is centred on (ratio 0.5-2.0, long
            side at most 4x). Default: the crop's height.
        test_side: short side of the single-scale test resize, and the 1.0 scale of
            the test-time augmentation. Default: as train.
        size_divisor: after the test resize, resize (bilinearly, rounding up) to a
            multiple of this, mmseg's ``ResizeToMultiple``, as the InternVL recipes do
            with the patch size 14. None: no such step.
        test_long_side: ``'max4x'``: the long side is at most 4x ``test_side`` (mmseg's
            ``Resize(scale=(4 * side, side), keep_ratio=True)``, the InternVL few-shot
            subsets' test); ``'unbounded'``: the short side is exactly ``test_side``
            whatever the aspect ratio (the InternVL recipes' ``SETR_Resize``, ADE20K
            and COCO-Stuff). The test-time augmentation resizes each scale the same way.
    """
    if test_long_side not in ('max4x', 'unbounded'):
        raise ValueError("test_long_side must be 'max4x' or 'unbounded', got "
                         f'{test_long_side!r}')
    train_side = crop_size[0] if train_side is None else train_side
    test_side = train_side if test_side is None else test_side
    labels = dict(type='LoadCheckedAnnotations', num_classes=num_classes,
                  reduce_zero_label=reduce_zero_label)
    train = [
        dict(type='LoadImageFromFile'),
        labels,
        dict(type='RandomResize', scale=(4 * train_side, train_side),
             ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='RandomCrop', crop_size=tuple(crop_size), cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackSegInputs'),
    ]
    def resize(side: int) -> dict:
        long_side = 4 * side if test_long_side == 'max4x' else UNBOUNDED_SIDE
        return dict(type='Resize', scale=(long_side, side), keep_ratio=True)

    to_multiple = ([dict(type='ResizeToMultiple', size_divisor=size_divisor)]
                   if size_divisor else [])
    test = [
        dict(type='LoadImageFromFile'),
        resize(test_side),
        *to_multiple,
        dict(labels),
        dict(type='PackSegInputs'),
    ]
    # each scale resized as the single-scale test is (the 1.0 scale is that test)
    tta = [
        dict(type='LoadImageFromFile'),
        dict(type='TestTimeAug', transforms=[
            [resize(int(test_side * r)) for r in tta_ratios],
            *([to_multiple] if to_multiple else []),
            [dict(type='RandomFlip', prob=0., direction='horizontal'),
             dict(type='RandomFlip', prob=1., direction='horizontal')],
            [dict(labels)],
            [dict(type='PackSegInputs')],
        ]),
    ]
    return train, test, tta
