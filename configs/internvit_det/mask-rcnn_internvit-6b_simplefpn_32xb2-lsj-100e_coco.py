# Our own design (no published recipe, no published number): Mask R-CNN with
# InternViT-6B-224px fully fine-tuned: 48 blocks, windows of 14 with global blocks
# 11/23/35/47, layer decay 0.9 (as ViTDet-H), drop path 0.4, LSJ 1024, 100 epochs.
# 32 GPUs x 2 images; 183,250 iterations. AdamW states of 6B parameters need sharding
# across GPUs (DeepSpeed ZeRO through mmengine's FlexibleRunner).
_base_ = './mask-rcnn_internvit-300m_simplefpn_32xb2-lsj-100e_coco.py'
model = dict(
    backbone=dict(
        arch='internvit-6b-224px',
        out_indices=[47],
        global_attn_indexes=[11, 23, 35, 47],
        init_cfg=dict(checkpoint='pretrained/InternViT-6B-224px')),
    neck=dict(in_channels=3200))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.9))
