# Linear probing: frozen InternViT-300M-448px, block 23 of 24 (the last) into BN +
# 1x1 conv, on COCO-Stuff-164K: the 6B-224px recipe with this backbone.
# No dense result has been published for InternViT-300M.
_base_ = ['./linear_internvit-6b-224px-frozen_8xb2-80k_coco-stuff164k-504x504.py',
          '../_base_/backbones/internvit-300m-448px.py']
# the last block, as the 448px releases are probed
model = dict(backbone=dict(_base_.vit, out_indices=[-1]))
