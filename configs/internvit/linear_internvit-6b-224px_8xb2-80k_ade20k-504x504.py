# Few-shot family, full training set (1/1): linear head on the last block with the
# backbone trained (layer decay 0.95, drop path 0.4). Published: 57.2 mIoU.
# The 1/2 ... 1/16 configs inherit this one and pick a seeded subset of the images.
_base_ = [
    '../_base_/models/internvit_linear.py', '../_base_/datasets/ade20k_504x504.py',
    'mmseg::_base_/default_runtime.py', '../_base_/schedules/internvit_adamw_80k.py'
]
model = dict(backbone=dict(drop_path_rate=0.4))
train_dataloader = dict(
    dataset=dict(type='ADE20KSubsetDataset', subset_fraction=1.0, subset_seed=0))
custom_hooks = [dict(type='RecordSubsetHook')]
