# InternViT-6B-448px-V1-5 (InternVL 1.5): 45 blocks of width 3200, pretrained at 448 px.
# A leaf picks it up next to the recipe it changes:
#     _base_ = ['<a 6B-224px config>.py', '../_base_/backbones/internvit-6b-448px-v1-5.py']
#     model = dict(backbone=_base_.vit)
# Everything that follows from the architecture (the UperNet stage blocks, the heads'
# widths, the adapter groups, the layer-decay depth) is derived from `arch`.
vit = dict(arch='internvit-6b-448px',
           init_cfg=dict(type='Pretrained', checkpoint='pretrained/InternViT-6B-448px-V1-5'))
