# InternViT-6B-448px-V2-5 (InternVL 2.5 and 3): the architecture of V1-5, other weights.
_base_ = './internvit-6b-448px-v1-5.py'
vit = dict(init_cfg=dict(checkpoint='pretrained/InternViT-6B-448px-V2-5'))
