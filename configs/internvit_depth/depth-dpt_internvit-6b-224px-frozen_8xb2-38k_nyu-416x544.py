# DINOv2's DPT NYUv2 depth probe on a frozen InternViT-6B-224px: DPT over four blocks
# one quarter of the depth apart ending at the last (out_indices='stages', as DINOv2
# takes 9/19/29/39 of ViT-g), each with its class token read out by a projection
# (readout 'project'), reassembled at widths w/8, w/4, w/2, w (w = 3200 here), fusion
# width 256, no norm, a regression output (relu + min depth); SigLoss; the schedule,
# pipeline and test of the lin. 1 leaf
# (./depth-lin1_internvit-6b-224px-frozen_8xb2-38k_nyu-416x544.py, whose header lists
# the departures), as DINOv2's DPT config differs from its linear one in the head only.
# Ground truth: DINOv2's NYU DPT config (dinov2_vitl14_nyu_dpt) and dinov2/hub
# (_make_dinov2_dpt_depth_head); the DPT blocks are mmseg's own.
_base_ = './depth-lin1_internvit-6b-224px-frozen_8xb2-38k_nyu-416x544.py'
model = dict(
    backbone=dict(out_indices='stages'),
    decode_head=dict(
        _delete_=True,
        type='DPTDepthHead',
        in_index=[0, 1, 2, 3],
        channels=256,
        readout_type='project',
        norm_cfg=None,
        min_depth=_base_.min_depth,
        max_depth=_base_.max_depth,
        loss_decode=dict(type='ScaleInvariantLogLoss', variance_focus=0.85,
                         warm_up_iters=100, loss_weight=1.0)))
