# The upstream InternVL detection setting on mmdet 3.x: Mask R-CNN over a frozen
# InternViT-6B-224px (bf16 weights, no autograd graph), patch 14 -> 16, windowed
# attention, a simple feature pyramid; only the neck and heads train (fp32).
# 8 GPUs x 2 images = 16 per iteration; 12 epochs x 118,287 / 16 = 88,716 iterations.
_base_ = [
    '../_base_/det/internvit_simplefpn_mask-rcnn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py', 'mmdet::_base_/default_runtime.py'
]
model = dict(
    backbone=dict(
        arch='internvit-6b-224px',
        out_indices=[47],
        global_attn_indexes=[11, 23, 35, 47],
        drop_path_rate=0.0,
        with_cp=False,
        frozen=True,
        param_dtype='bfloat16',
        init_cfg=dict(checkpoint='pretrained/InternViT-6B-224px')),
    neck=dict(in_channels=3200))
train_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
test_dataloader = val_dataloader
optim_wrapper = dict(_base_.vit_frozen_optim_wrapper, _delete_=True)
