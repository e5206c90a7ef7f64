# InternViT + mmseg's Feature2Pyramid (4x / 2x / 1x / 0.5x) + UPerHead + auxiliary FCNHead.
_base_ = './internvit_linear.py'

model = dict(
    # blocks 11/23/35/47 of 48, 11/22/33/44 of 45, 5/11/17/23 of 24 (stage_ends)
    backbone=dict(out_indices='stages'),
    neck=dict(type='Feature2Pyramid', rescales=[4, 2, 1, 0.5],
              norm_cfg={{_base_.norm_cfg}}),
    decode_head=dict(
        _delete_=True,
        type='UPerHead',
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=1536,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg={{_base_.norm_cfg}},
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg={{_base_.norm_cfg}},
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)))
