# ADE20K at crop 512 (32 x 32 patches of 16 px): the data of the PIIP UperNet baseline
# and of the InternVL adapter recipe (both their _base_/datasets/ade20k.py): train with
# a random resize of (2048, 512) x 0.5-2.0 and a 512 crop (cat_max_ratio 0.75), flip
# and photometric distortion; test with the short side exactly 512 whatever the aspect
# ratio (their SETR_Resize), and no resize to a multiple (it is commented out there).
_base_ = './ade20k_504x504.py'
from mmseg_internvit.datasets.pipelines import seg_pipelines  # noqa: E402

crop_size = (512, 512)
train_pipeline, test_pipeline, tta_pipeline = seg_pipelines(
    crop_size, _base_.num_classes, reduce_zero_label=True, test_long_side='unbounded')
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
