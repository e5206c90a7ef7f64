# The protocol of ./depth-lin1_internvit-6b-224px-frozen_8xb2-38k_nyu-416x544.py
# on a frozen InternViT-300M-448px: this release's backbone (its depth,
# width and pretraining grid follow from `arch`).
_base_ = ['./depth-lin1_internvit-6b-224px-frozen_8xb2-38k_nyu-416x544.py',
          '../_base_/backbones/internvit-300m-448px.py']
model = dict(backbone=_base_.vit)
