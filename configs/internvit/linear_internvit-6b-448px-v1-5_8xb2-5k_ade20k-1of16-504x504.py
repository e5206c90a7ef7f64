# Few-shot family (1/16 of the images) with InternViT-6B-448px-V1-5: the 6B-224px recipe
# with this backbone (its last block).
# No published number.
_base_ = ['./linear_internvit-6b-224px_8xb2-5k_ade20k-1of16-504x504.py',
          '../_base_/backbones/internvit-6b-448px-v1-5.py']
model = dict(backbone=_base_.vit)
