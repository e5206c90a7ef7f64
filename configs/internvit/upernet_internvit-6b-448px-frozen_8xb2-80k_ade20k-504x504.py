# The recipe of upernet_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504
# with internvit-6b-448px (45 blocks, width 3200); no published number.
_base_ = './upernet_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py'
model = dict(
    backbone=dict(
        arch='internvit-6b-448px',
        out_indices=[11, 22, 33, 44],
        init_cfg=dict(checkpoint='pretrained/InternViT-6B-448px-V1-5')),
    neck=dict(embed_dim=3200),
    decode_head=dict(in_channels=[3200] * 4, channels=1536),
    auxiliary_head=dict(in_channels=3200))
