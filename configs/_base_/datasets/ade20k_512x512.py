# ADE20K at crop 512 (32 x 32 patches of 16 px): the adapter-tuning and PIIP recipes.
_base_ = './ade20k_504x504.py'
from mmseg_internvit.datasets.pipelines import seg_pipelines  # noqa: E402

crop_size = (512, 512)
train_pipeline, test_pipeline, tta_pipeline = seg_pipelines(
    crop_size, _base_.num_classes, reduce_zero_label=True)
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
