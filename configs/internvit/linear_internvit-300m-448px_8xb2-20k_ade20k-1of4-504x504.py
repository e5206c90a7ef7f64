# Few-shot family (1/4 of the images) with InternViT-300M-448px: the 6B-224px recipe, other
# weights. No published number.
_base_ = ['./linear_internvit-6b-224px_8xb2-20k_ade20k-1of4-504x504.py',
          '../_base_/backbones/internvit-300m-448px.py']
model = dict(backbone=_base_.vit)
