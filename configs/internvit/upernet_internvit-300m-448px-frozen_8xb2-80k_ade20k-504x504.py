# Head tuning on ADE20K with InternViT-300M-448px: the 6B-224px recipe, other weights.
# No dense result has been published for InternViT-300M.
_base_ = ['./upernet_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py',
          '../_base_/backbones/internvit-300m-448px.py']
# UperNet at 1024 channels for the 1024-wide ViT (ViT-Adapter-L's and BEiT-L's)
model = dict(backbone=_base_.vit, decode_head=dict(channels=1024))
