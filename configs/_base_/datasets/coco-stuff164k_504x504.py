# COCO-Stuff-164K (171 classes) at crop 504, the InternVL 2.5 report's setting (Table
# 15), as InternVL-MMDetSeg's mmsegmentation/configs/_base_/datasets/
# coco-stuff164k_504x504.py: the training pipeline of the ADE20K base (labels are train
# ids 0-170 already, so no zero-label reduction); the test resize makes the short side
# exactly 504 whatever the aspect ratio (their SETR_Resize), then a multiple of 14.
_base_ = 'mmseg::_base_/datasets/coco-stuff164k.py'
from mmseg_internvit.datasets.pipelines import seg_pipelines  # noqa: E402

crop_size = (504, 504)
num_classes = 171
train_pipeline, test_pipeline, tta_pipeline = seg_pipelines(
    crop_size, num_classes, reduce_zero_label=False, size_divisor=14,
    test_long_side='unbounded')
train_dataloader = dict(batch_size=2, num_workers=4,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=4, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
