# The recipe of linear_internvit-6b-224px_8xb2-40k_ade20k-1of2-504x504
# with internvit-300m-448px (24 blocks, width 1024); no published number.
_base_ = './linear_internvit-6b-224px_8xb2-40k_ade20k-1of2-504x504.py'
model = dict(
    backbone=dict(
        arch='internvit-300m-448px',
        out_indices=[23],
        init_cfg=dict(checkpoint='pretrained/InternViT-300M-448px')),
    decode_head=dict(in_channels=1024))
