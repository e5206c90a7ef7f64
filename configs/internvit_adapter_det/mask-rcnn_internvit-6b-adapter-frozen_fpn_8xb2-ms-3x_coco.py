# Adapter tuning for detection: Mask R-CNN over a frozen InternViT-6B-224px (bf16
# weights, no parameter gradients) + a trainable ViT-Adapter with the InternVL
# segmentation adapter's settings (25 deformable heads, deform ratio 0.25) + FPN,
# windows of 14 with blocks 11 / 23 / 35 / 47 global. Adapter, neck and heads train in
# fp32. 8 GPUs x 2 images, multi-scale 3x (266,146 iterations). No published number.
_base_ = './mask-rcnn_internvit-300m-adapter_fpn_8xb2-ms-3x_coco.py'
model = dict(
    backbone=dict(
        arch='internvit-6b-224px',
        global_attn_indexes=[11, 23, 35, 47],
        interaction_indexes=[[0, 11], [12, 23], [24, 35], [36, 47]],
        deform_num_heads=25,
        deform_ratio=0.25,
        drop_path_rate=0.0,
        extractor_drop_path=0.0,
        freeze_vit=True,
        param_dtype='bfloat16',
        init_cfg=dict(checkpoint='pretrained/InternViT-6B-224px')),
    neck=dict(in_channels=[3200] * 4))
optim_wrapper = dict(_base_.vit_frozen_optim_wrapper, _delete_=True)
