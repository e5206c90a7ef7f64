# InternViT-300M-448px (InternVL 2): 24 blocks of width 1024, pretrained at 448 px.
# Used as in internvit-6b-448px-v1-5.py. No dense result has been published for it.
vit = dict(arch='internvit-300m-448px',
           init_cfg=dict(type='Pretrained', checkpoint='pretrained/InternViT-300M-448px'))
