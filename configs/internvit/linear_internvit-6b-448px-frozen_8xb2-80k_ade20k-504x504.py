# The recipe of linear_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504
# with internvit-6b-448px (45 blocks, width 3200); no published number.
_base_ = './linear_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py'
model = dict(
    backbone=dict(
        arch='internvit-6b-448px',
        out_indices=[41],
        init_cfg=dict(checkpoint='pretrained/InternViT-6B-448px-V1-5')),
    decode_head=dict(in_channels=3200))
