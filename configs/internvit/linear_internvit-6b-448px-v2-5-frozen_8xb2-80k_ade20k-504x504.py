# Linear probing on ADE20K with InternViT-6B-448px-V2-5:
# the 6B-224px recipe, other weights.
# Published: 39.4 mIoU (InternVL 2.5 report, Table 15).
_base_ = ['./linear_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py',
          '../_base_/backbones/internvit-6b-448px-v2-5.py']
model = dict(backbone=_base_.vit)
