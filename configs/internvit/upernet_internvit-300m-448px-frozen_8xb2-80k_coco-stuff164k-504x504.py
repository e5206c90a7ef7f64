# Head tuning: frozen InternViT-300M-448px, blocks 5/11/17/23 into the InternVL pyramid
# (Feature2Pyramid with a channels-first LayerNorm) + UPerHead (1024 channels) + an
# auxiliary FCNHead (1024 channels) on level 1, on COCO-Stuff-164K: the 6B-224px recipe
# with this backbone.
# No dense result has been published for InternViT-300M.
_base_ = ['./upernet_internvit-6b-224px-frozen_8xb2-80k_coco-stuff164k-504x504.py',
          '../_base_/backbones/internvit-300m-448px.py']
# UperNet and its auxiliary head at 1024 channels for the 1024-wide ViT (ViT-Adapter-L's
# and BEiT-L's)
model = dict(backbone=_base_.vit, decode_head=dict(channels=1024),
             auxiliary_head=dict(channels=1024))
