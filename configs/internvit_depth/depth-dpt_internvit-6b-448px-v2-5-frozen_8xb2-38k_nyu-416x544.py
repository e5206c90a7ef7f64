# The protocol of ./depth-dpt_internvit-6b-224px-frozen_8xb2-38k_nyu-416x544.py
# on a frozen InternViT-6B-448px-V2-5: this release's backbone (its depth,
# width and pretraining grid follow from `arch`).
_base_ = ['./depth-dpt_internvit-6b-224px-frozen_8xb2-38k_nyu-416x544.py',
          '../_base_/backbones/internvit-6b-448px-v2-5.py']
model = dict(backbone=_base_.vit)
