# InternViT + the InternVL authors' UperNet (InternVL segmentation/: InternViT6B with
# with_fpn=True, configs/_base_/models/upernet_r50.py, the leaves' head settings):
# - the pyramid is mmseg's Feature2Pyramid (4x / 2x / 1x / 0.5x of four blocks); its 4x
#   branch is ConvT -> channels-first LayerNorm (eps 1e-6, computed in fp32) -> GELU ->
#   ConvT, no norm at the end of any branch (theirs: backbone.up1..up4), and its
#   transposed convolutions start from normal(0, sqrt(2 / fan_out)), zero bias;
# - UPerHead with 1536 channels, pool scales 1/2/3/6, dropout 0.1, SyncBN;
# - an auxiliary FCNHead on level 2 (in_index=2; the head-tuning leaves read level 1),
#   one 3x3 conv of 1536 channels, dropout 0.1, loss weight 0.4.
_base_ = './internvit_linear.py'

model = dict(
    # blocks 11/23/35/47 of 48, 11/22/33/44 of 45, 5/11/17/23 of 24 (stage_ends)
    backbone=dict(out_indices='stages'),
    neck=dict(type='Feature2Pyramid', rescales=[4, 2, 1, 0.5],
              norm_cfg=dict(type='LN2d', eps=1e-6)),
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
        channels=1536,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg={{_base_.norm_cfg}},
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    # mmseg's Feature2Pyramid has no init of its own (PyTorch's default); the InternVL
    # pyramid's is Kaiming normal, fan_out, gain sqrt(2), bias 0 (mmengine's defaults)
    init_cfg=dict(type='Kaiming', layer='ConvTranspose2d'))
