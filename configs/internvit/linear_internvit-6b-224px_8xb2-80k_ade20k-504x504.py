# Few-shot family, the whole training set (1/1): InternViT-6B-224px trained (drop path
# 0.4, layer decay 0.95), its last block into BN + 1x1 conv, on ADE20K. Published: 57.2
# mIoU.
# Upstream: InternVL-MMDetSeg
# mmsegmentation/configs/intern_vit_6b/few_shot/linear_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5_1of1.py
# (InternVL segmentation/configs/ has the same file with deepspeed=False). Released
# weights: linear_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5_1of1.pth (convert them with
# tools/model_converters/internvl2mmseg.py).
# Trained as there under DeepSpeed ZeRO-1 bf16 (../_base_/deepspeed/zero1_bf16.py): bf16
# weights with fp32 master copies, the head computing in fp32 (fp32_heads), per-block
# activation checkpointing. All of ADE20K, mmseg's dataset, as upstream; the 1/2 ...
# 1/16 leaves inherit this one and keep a seeded part of the images.
# Departures: none in the model, the data pipelines or the optimisation. mmengine's
# InfiniteSampler orders the images differently from mmcv's sampler. Upstream's
# DeepSpeed evaluation hook never wrote a best checkpoint; here save_best='auto' keeps
# one.
_base_ = [
    '../_base_/models/internvit_linear.py',
    '../_base_/datasets/ade20k_504x504.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/internvit_adamw_80k.py',
    '../_base_/deepspeed/zero1_bf16.py',
]
model = dict(backbone=dict(drop_path_rate=0.4))  # out_indices: the model base's last block
