# Adapter tuning with InternViT-6B-448px-V2-5: the 6B-224px recipe (InternVL's adapter
# wiring, DeepSpeed ZeRO-1 fp16), other weights (its groups end at blocks 11 / 22 / 33
# / 44, derived from the depth). No published number.
_base_ = ['./upernet_internvit-6b-224px-adapter-frozen_8xb2-80k_ade20k-512x512.py',
          '../_base_/backbones/internvit-6b-448px-v2-5.py']
model = dict(backbone=_base_.vit)
