# ADE20K at crop 504 (36 x 36 patches of 14 px), the InternVL authors' recipe
# (InternVL segmentation/configs/_base_/datasets/ade20k_504x504.py; InternVL-MMDetSeg's
# is the same file): train with a random resize of (2016, 504) x 0.5-2.0, a 504 crop
# (cat_max_ratio 0.75), flip and photometric distortion; test with the short side
# exactly 504 whatever the aspect ratio (their SETR_Resize), then resized to a multiple
# of 14. mmseg's own ADE20K settings otherwise; the label loader checks values.
# Their few-shot subsets (ade20k_504x504_1of{2,4,8,16}.py) test with a plain
# Resize((2016, 504), keep_ratio) instead, the long side at most 2016:
# `capped_test_pipeline`, which those leaves use.
# Test-time augmentation (tools/test.py --tta, not part of the published recipe):
# mmseg's SegTTAModel over 6 scales (0.5-1.75 of the test size) x 2 flips.
_base_ = 'mmseg::_base_/datasets/ade20k.py'
from mmseg_internvit.datasets.pipelines import seg_pipelines  # noqa: E402

crop_size = (504, 504)
num_classes = 150
train_pipeline, test_pipeline, tta_pipeline = seg_pipelines(
    crop_size, num_classes, reduce_zero_label=True, size_divisor=14,
    test_long_side='unbounded')
_, capped_test_pipeline, _ = seg_pipelines(
    crop_size, num_classes, reduce_zero_label=True, size_divisor=14,
    test_long_side='max4x')
train_dataloader = dict(batch_size=2, num_workers=4,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=4, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
