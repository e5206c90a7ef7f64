# Full tuning at crop 512, the PIIP baseline (Zhu et al., "Parameter-Inverted Image
# Pyramid Networks", NeurIPS 2024, OpenGVLab/PIIP): InternViT-6B-224px at patch 16 (the
# 14-px kernel and the grid resized on load), Feature2Pyramid + UperNet (1536 channels,
# and 1536 in the auxiliary head), drop path 0.4, layer decay 0.95, AdamW 4e-5, poly
# with a 1.5k warm-up, 80k iterations at batch 16, slide 512 / 341, bf16 (ZeRO-1 in the
# original: deepspeed/..._zero1.py).
# Published: 58.42 mIoU (PIIP, ADE20K val, single scale).
_base_ = [
    '../_base_/models/internvit_upernet.py', '../_base_/datasets/ade20k_512x512.py',
    'mmseg::_base_/default_runtime.py', '../_base_/schedules/internvit_adamw_80k.py'
]
model = dict(
    data_preprocessor=dict(size=(512, 512)),
    backbone=dict(patch_size=16, img_size=512, drop_path_rate=0.4),
    auxiliary_head=dict(channels=1536),
    test_cfg=dict(crop_size=(512, 512), stride=(341, 341)))
