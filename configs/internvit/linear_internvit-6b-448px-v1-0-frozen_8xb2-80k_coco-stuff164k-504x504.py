# Linear probing: frozen InternViT-6B-448px-V1-0, block 44 of 45 (the last) into BN +
# 1x1 conv, on COCO-Stuff-164K.
# Published: 38.5 mIoU (InternVL 2.5 report, Table 15).
# Upstream: InternVL-MMDetSeg
# mmsegmentation/configs/intern_vit_6b_448px_v1_0/linear_probing/linear_intern_vit_6b_448px_v1_0_504_80k_cocostuff164k_bs16_lr4e-5_frozen.py.
# No trained weights were released for it.
# Trained as there without DeepSpeed: the frozen backbone held in bf16, the head in
# fp32, AdamW 4e-5 without weight decay.
# The released V1-0 has 48 blocks; the upstream config builds 45 and loads it with
# strict=False, so the published number used its first 45 blocks: the backbone base
# states that (num_layers=45, truncate_blocks=True, logged when the weights load).
# The upstream file differs from the 6B-224px one only in the weights, pretrain_size
# 448, depth 45 and the blocks that follow from it; so does this leaf, from its recipe.
# Departures: none in the model, the data pipelines or the optimisation. mmengine's
# InfiniteSampler orders the images differently from mmcv's sampler.
_base_ = ['./linear_internvit-6b-224px-frozen_8xb2-80k_coco-stuff164k-504x504.py',
          '../_base_/backbones/internvit-6b-448px-v1-0.py']
# upstream out_indices=[44], the 224px leaf's block, which is the last of 45
model = dict(backbone=dict(_base_.vit, out_indices=[-1]))
