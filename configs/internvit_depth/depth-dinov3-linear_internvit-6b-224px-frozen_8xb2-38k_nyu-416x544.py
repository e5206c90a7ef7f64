# DINOv3's linear NYUv2 depth probe on a frozen InternViT-6B-224px
# (dinov3/eval/depth/configs/config-nyu.yaml and models/linear_head.py): the last
# block's patch features without the class token, BatchNorm, a 1x1 classifier over 256
# depth bins (1e-3 to 10 m) at patch resolution (no upsampling; resized to the label
# for the loss), SigLoss alone; AdamW lr 3e-4, betas (0.9, 0.99), weight decay 1e-4,
# gradient clipping at 35, their WarmupOneCycleLR (12800 warm-up iterations of 38400,
# final_div_factor 1000, Adam beta1 0 during the warm-up then 0.85 -> 0.95), 8 x 2
# images, seed 321; train transforms as DINOv2's (the NYU box, rotation, flip, the
# 416 x 544 crop, colour); whole test images with a horizontal flip, Eigen crop.
# Departures: use_backbone_norm has nothing to apply (InternViT has no final norm);
# the weight decay of their BatchNorm is not in their config (here: decayed, as plain
# AdamW); patch 14 padding as in the lin. 1 leaf.
_base_ = './depth-lin1_internvit-6b-224px-frozen_8xb2-38k_nyu-416x544.py'
model = dict(
    backbone=dict(output_cls_token=False),
    decode_head=dict(with_cls_token=False, upsample=1,
                     norm_cfg=dict(_delete_=True, type='SyncBN', requires_grad=True)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=3e-4, betas=(0.9, 0.99), weight_decay=1e-4),
    clip_grad=dict(max_norm=35.0, norm_type=2))
param_scheduler = [
    dict(type='WarmupOneCycleLR', total_steps=_base_.max_iters, warmup_iters=12800,
         div_factor=25.0, final_div_factor=1000.0, base_momentum=0.85,
         max_momentum=0.95, by_epoch=False)]
randomness = dict(seed=321)
