# Adapter tuning with InternViT-300M-448px: the 6B-224px recipe (InternVL's adapter
# wiring, DeepSpeed ZeRO-1 fp16) with both UperNet heads at 1024 channels
# (ViT-Adapter-L's decoder width); 16 deformable heads, the ViT's own, by default.
# No dense result has been published for InternViT-300M.
_base_ = ['./upernet_internvit-6b-224px-adapter-frozen_8xb2-80k_ade20k-512x512.py',
          '../_base_/backbones/internvit-300m-448px.py']
model = dict(backbone=_base_.vit, decode_head=dict(channels=1024),
             auxiliary_head=dict(channels=1024))
