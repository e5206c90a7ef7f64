# Linear probing: frozen InternViT-6B-224px, block 44 of 48 (the fourth-last) into BN +
# 1x1 conv, on ADE20K.
# Published: 47.2 mIoU, 0.5M trainable / 5.9B total.
# Upstream: InternVL-MMDetSeg
# mmsegmentation/configs/intern_vit_6b/linear_probing/linear_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5_frozen.py
# (InternVL segmentation/configs/ has the same file).
# Released weights: linear_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5_frozen.pth (convert
# them with tools/model_converters/internvl2mmseg.py).
# Trained as there without DeepSpeed: the frozen backbone held in bf16, the head in
# fp32, AdamW 4e-5 without weight decay.
# Departures: none in the model, the data pipelines or the optimisation. mmengine's
# InfiniteSampler orders the images differently from mmcv's sampler.
_base_ = [
    '../_base_/models/internvit_linear.py',
    '../_base_/datasets/ade20k_504x504.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/internvit_adamw_80k_frozen.py',
]
# with_cp=False: a frozen backbone runs without autograd, so there is nothing to
# recompute
model = dict(backbone=dict(out_indices=[-4], frozen=True, param_dtype='bfloat16', with_cp=False))
optim_wrapper = dict(optimizer=dict(weight_decay=0.0))
