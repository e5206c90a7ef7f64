# DINOv2's "lin. 4" NYUv2 depth probe on a frozen InternViT-6B-224px: lin. 1
# (./depth-lin1_internvit-6b-224px-frozen_8xb2-38k_nyu-416x544.py, its header lists the
# departures) over four blocks, each with its class token, concatenated. DINOv2 takes
# blocks one quarter of the depth apart ending at the last (ViT-g: 9/19/29/39, ViT-L:
# 4/11/17/23); out_indices='stages' is that rule for every InternViT (11/23/35/47 of 48,
# 11/22/33/44 of 45, 5/11/17/23 of 24 blocks).
_base_ = './depth-lin1_internvit-6b-224px-frozen_8xb2-38k_nyu-416x544.py'
model = dict(backbone=dict(out_indices='stages'),
             decode_head=dict(in_index=[0, 1, 2, 3]))
