# Adapter tuning with Mask2Former and InternViT-300M-448px: the 6B-224px recipe, other
# weights. No dense result has been published for InternViT-300M.
_base_ = ['./mask2former_internvit-6b-224px-adapter-frozen_8xb2-80k_ade20k-512x512.py',
          '../_base_/backbones/internvit-300m-448px.py']
model = dict(backbone=_base_.vit)
