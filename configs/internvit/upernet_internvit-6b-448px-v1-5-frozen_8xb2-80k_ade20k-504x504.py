# Head tuning: frozen InternViT-6B-448px-V1-5, blocks 11/22/33/44 into the InternVL
# pyramid (Feature2Pyramid with a channels-first LayerNorm) + UPerHead (1536 channels) +
# an auxiliary FCNHead (1536 channels) on level 1, on ADE20K.
# Published: 55.0 mIoU (InternVL 2.5 report, Table 15).
# Upstream: InternVL-MMDetSeg
# mmsegmentation/configs/intern_vit_6b_448px_v1_5/head_tuning/upernet_intern_vit_6b_448px_v1_5_504_80k_ade20k_bs16_lr4e-5_frozen.py.
# No trained weights were released for it.
# Trained as there under DeepSpeed ZeRO-1 bf16 (../_base_/deepspeed/zero1_bf16.py): bf16
# weights with fp32 master copies, the heads computing in fp32 (fp32_heads), per-block
# activation checkpointing.
# The upstream file differs from the 6B-224px one only in the weights, pretrain_size
# 448, depth 45 and the blocks that follow from it; so does this leaf, from its recipe.
# Departures: none in the model, the data pipelines or the optimisation. mmengine's
# InfiniteSampler orders the images differently from mmcv's sampler. Upstream's
# DeepSpeed evaluation hook never wrote a best checkpoint (its call is commented out);
# here save_best='auto' (aAcc, as mmcv resolves it) keeps one.
_base_ = ['./upernet_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py',
          '../_base_/backbones/internvit-6b-448px-v1-5.py']
model = dict(backbone=_base_.vit)
