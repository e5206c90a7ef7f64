# The recipe of upernet_internvit-6b-224px-adapter-frozen_8xb2-80k_ade20k-512x512
# with internvit-6b-448px (45 blocks, width 3200); no published number.
_base_ = './upernet_internvit-6b-224px-adapter-frozen_8xb2-80k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='internvit-6b-448px',
        # ends at blocks 11 / 22 / 33 / 44, the blocks head tuning reads
        interaction_indexes=[[0, 11], [12, 22], [23, 33], [34, 44]],
        init_cfg=dict(checkpoint='pretrained/InternViT-6B-448px-V1-5')))
