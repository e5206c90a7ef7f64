# Linear-probe sweep on a frozen InternViT-300M-448px (24 blocks), on ADE20K: the
# 6B-224px sweep (24 heads: 6 learning rates x the last, second-last, fourth-last and
# last-four-concatenated blocks, selected on a held-out part of train) with this
# backbone. The blocks count from this backbone's end, so the 448px releases' own
# probing block (their last) is in the grid.
_base_ = ['./sweep-linear_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py',
          '../_base_/backbones/internvit-300m-448px.py']
model = dict(backbone=_base_.vit)
