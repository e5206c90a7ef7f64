# Our own frozen-backbone design (no published recipe, no published number): Mask R-CNN
# over a frozen InternViT-6B-224px (bf16 weights, no autograd graph) at patch 16 with
# windowed attention, a simple feature pyramid with SyncBN, and 4-conv box heads; only
# the pyramid and heads train, in fp32, without DeepSpeed.
# Differences from the upstream InternVL setting
# (mask-rcnn_internvit-6b-frozen_simplefpn_8xb2-1x_coco.py):
# - the class token is kept, and the position grid is absolute: img_size 1344 (an
#   84 x 84 grid, resized once from the released 16 x 16 when loading), every input
#   taking its top-left part (pos_embed_mode='crop'; 1333 x 800 pads to 1344 x 800),
#   where upstream stretches a 16 x 16 grid to each input;
# - the 14 -> 16 px kernel by pseudo-inverse resizing, not bicubic interpolation;
# - windows of 14 patches with global attention in blocks 11/23/35/47 and the window
#   padding masked, where upstream has windows of 16 in all 48 blocks with the padding
#   left in the softmax;
# - SyncBN in the pyramid's 4x branch and in the FPN, a 2-conv RPN, Shared4Conv1FC box
#   and 4-conv mask heads with SyncBN (upstream: channels-first LayerNorm, no norm in
#   the FPN, 1 RPN conv, Shared2FCBBoxHead, no norm in the mask head);
# - a bf16 backbone and plain fp32 AdamW for the rest (upstream: an fp16 backbone and
#   DeepSpeed ZeRO-1 fp16 with gradient clipping 1.0).
# 8 GPUs x 2 images = 16 per iteration; 12 epochs of the 117,266 train2017 images that
# have annotations: 7,330 iterations an epoch, 87,960 in all.
_base_ = [
    '../_base_/det/internvit_simplefpn_mask-rcnn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py', 'mmdet::_base_/default_runtime.py'
]
model = dict(
    backbone=dict(
        arch='internvit-6b-224px',
        out_indices=[47],
        global_attn_indexes=[11, 23, 35, 47],
        drop_path_rate=0.0,
        with_cp=False,
        frozen=True,
        param_dtype='bfloat16',
        init_cfg=dict(checkpoint='pretrained/InternViT-6B-224px')),
    neck=dict(in_channels=3200))
train_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
test_dataloader = val_dataloader
optim_wrapper = dict(_base_.vit_frozen_optim_wrapper, _delete_=True)
