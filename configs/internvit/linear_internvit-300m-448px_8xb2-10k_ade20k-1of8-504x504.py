# Few-shot family (1/8 of the images) with InternViT-300M-448px: the 6B-224px recipe
# with this backbone (its last block).
# No dense result has been published for InternViT-300M.
_base_ = ['./linear_internvit-6b-224px_8xb2-10k_ade20k-1of8-504x504.py',
          '../_base_/backbones/internvit-300m-448px.py']
model = dict(backbone=_base_.vit)
