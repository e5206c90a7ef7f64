# The recipe of upernet_internvit-6b-224px-adapter-frozen_8xb2-80k_ade20k-512x512
# with internvit-300m-448px (24 blocks, width 1024, 16 deformable heads, as ViT-Adapter-L);
# no published number.
_base_ = './upernet_internvit-6b-224px-adapter-frozen_8xb2-80k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='internvit-300m-448px',
        interaction_indexes=[[0, 5], [6, 11], [12, 17], [18, 23]],
        deform_num_heads=16,
        init_cfg=dict(checkpoint='pretrained/InternViT-300M-448px')),
    decode_head=dict(in_channels=[1024] * 4, channels=1024),
    auxiliary_head=dict(in_channels=1024))
