# Mask R-CNN 1x, the PIIP baseline (Zhu et al., "Parameter-Inverted Image Pyramid
# Networks", NeurIPS 2024, OpenGVLab/PIIP): InternViT-6B-224px fully tuned at patch 16
# with global attention in every block, the last block's map made into 4 levels
# (4x / 2x / 1x / 0.5x) + FPN, crop 1024 after DETR-style multi-scale augmentation,
# AdamW 1e-4, wd 0.05, layer decay 0.95 over the 48 blocks, drop path 0.4, 12 epochs
# at batch 16, pixels normalised with mean / std 127.5, bf16 (ZeRO-1 in the original:
# deepspeed/..._zero1.py). The pipeline is mmdet 3.x's DETR augmentation
# (configs/detr) followed by the 1024 crop.
# Published: 53.8 box AP / 48.1 mask AP (PIIP, COCO val2017).
_base_ = [
    '../_base_/det/internvit_simplefpn_mask-rcnn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py', 'mmdet::_base_/default_runtime.py'
]
model = dict(
    data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3, pad_size_divisor=64),
    backbone=dict(
        arch='internvit-6b-224px',
        out_indices=[-1],
        window_size=0,  # global attention, as published
        global_attn_indexes=[],
        # the grid stretched to every input, as the PIIP backbone interpolates it
        pos_embed_mode='resize',
        init_cfg=dict(checkpoint='pretrained/InternViT-6B-224px')),
    neck=dict(in_channels=3200))
multi_scale = [(s, 1333) for s in range(480, 801, 32)]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice', transforms=[
        [dict(type='RandomChoiceResize', scales=multi_scale, keep_ratio=True)],
        [dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)],
              keep_ratio=True),
         dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
              allow_negative_crop=True),
         dict(type='RandomChoiceResize', scales=multi_scale, keep_ratio=True)],
    ]),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=(1024, 1024),
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(type='CheckedCocoDataset', pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
test_dataloader = val_dataloader
optim_wrapper = dict(_base_.vit_optim_wrapper, _delete_=True,
                     paramwise_cfg=dict(layer_decay_rate=0.95))
