# Mask R-CNN over InternViT-6B-224px as PIIP and the InternVL authors built it on
# mmdet 2.x (PIIP mmdetection/configs/piip/baseline/mask_rcnn_internvit_6b_fpn_1x_coco_bs16_ms.py,
# InternVL-MMDetSeg mmdetection/configs/intern_vit_6b/head_tuning/
# mask_rcnn_intern_vit_6b_fpn_1x_coco_bs16_frozen.py, both over mmdet's
# mask_rcnn_r50_fpn.py): their InternViT6B has no class token, stretches its position
# grid bicubically to every input's patch grid (computed in fp32, then cast to the
# weights' dtype) and resizes the released 14-px kernel to 16 px by bicubic
# interpolation; the last block's map goes through their backbone's up1..up4 (ConvT,
# channels-first LayerNorm, GELU, ConvT / ConvT / identity / max-pool, the ConvTs
# initialised N(0, sqrt(2 / fan_out))), here the rescales of SimpleFeaturePyramid
# (norm LN2d, init Kaiming), then mmdet's FPN without norms to 256 channels plus a
# pooled fifth level; mmdet's own heads as mask_rcnn_r50_fpn.py has them (RPN with one
# conv, Shared2FCBBoxHead, FCNMaskHead without norms). Their detector computes the FPN
# and heads in fp32 whatever the backbone's precision: fp32_heads.
# The leaves state the backbone's input size, windows, drop path and precision.
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py', './internvit_vit.py']

model = dict(
    type='InternViTMaskRCNN',
    fp32_heads=True,
    backbone=dict(
        _delete_=True,
        type='InternViT',
        arch='internvit-6b-224px',
        patch_size=16,  # 14-px weights: kernel resized on load (bicubic, as upstream)
        with_cls_token=False,
        out_indices=[-1],
        pos_embed_mode='resize',
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/InternViT-6B-224px',
                      patch_resize='bicubic')),
    neck=dict(
        _delete_=True,
        type='SimpleFeaturePyramid',
        in_channels=3200,
        out_channels=256,
        scales=(4, 2, 1, 0.5),
        num_outs=5,
        norm_cfg=dict(type='LN2d', eps=1e-6),
        fpn_norm_cfg=None,
        init_cfg=dict(type='Kaiming', layer='ConvTranspose2d')))
