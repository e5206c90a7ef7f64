# The PIIP baseline (Zhu et al., "Parameter-Inverted Image Pyramid Networks", NeurIPS
# 2024): full tuning of InternViT-6B-224px at crop 512 and patch 16, without its class
# token and with a tanh-GELU MLP; its last block alone feeds the 4x / 2x / 1x / 0.5x
# pyramid (LastMapFeature2Pyramid: the InternVL pyramid's modules) + UPerHead (1536
# channels) + an auxiliary FCNHead (1536 channels) on level 2.
# Published: 58.42 mIoU (PIIP, ADE20K val, single scale).
# Upstream: OpenGVLab/PIIP mmsegmentation/configs/piip/baseline/
# upernet_internvit_6b_512_80k_ade20k_bs16_lr4e-5.py with mmseg/models/backbones/
# internvit_6b.py: cls_token=None (forward adds pos_embed[:, 1:]), use_simple_fpn=True,
# mlp_type='fused_mlp' (activation 'gelu_approx'), the 14-px kernel resized to 16 px
# bicubically and the 16 x 16 position grid to 32 x 32 when the weights load; drop path
# 0.4, layer decay 0.95 (position embedding decayed), AdamW 4e-5, poly with a 1.5k
# warm-up, 80k iterations at batch 16; DeepSpeed ZeRO-1 bf16 with the heads in fp32;
# slide 512 / 341; evaluation every 1000 iterations without keeping a best checkpoint, a
# checkpoint every 2000 with one kept.
# Departures: PIIP's train.py turns TF32 on for fp32 matmuls and convolutions (here
# torch's defaults); mmengine's InfiniteSampler orders the images differently from
# mmcv's sampler. Nothing else in the model, the data or the optimisation.
_base_ = [
    '../_base_/models/internvit_upernet.py',
    '../_base_/datasets/ade20k_512x512.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/internvit_adamw_80k.py',
    '../_base_/deepspeed/zero1_bf16.py',
]
model = dict(
    data_preprocessor=dict(size=(512, 512)),
    backbone=dict(patch_size=16, img_size=512, drop_path_rate=0.4, with_cls_token=False,
                  mlp_act='gelu_tanh', out_indices=[-1],
                  init_cfg=dict(patch_resize='bicubic')),
    neck=dict(type='LastMapFeature2Pyramid'),
    test_cfg=dict(crop_size=(512, 512), stride=(341, 341)))
default_hooks = dict(checkpoint=dict(interval=2000, max_keep_ckpts=1, save_best=None))
