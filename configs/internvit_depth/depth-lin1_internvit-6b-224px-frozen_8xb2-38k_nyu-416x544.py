# DINOv2's "lin. 1" NYUv2 depth probe on a frozen InternViT-6B-224px: the last block,
# its class token concatenated to every patch, 4x bilinear upsampling, a 1x1
# classifier over 256 depth bins (linear, 1e-3 to 10 m), linear bin normalisation,
# SigLoss; 38400 iterations at 8 x 2 images, AdamW 1e-4, cosine with a 12800-iteration
# warm-up, gradient clipping at 35; whole 480 x 640 test images with a horizontal flip,
# metrics in the Eigen crop. No InternViT depth number has been published: these
# configs run the DINOv2 / DINOv3 protocols on InternViT (README.md here).
# Ground truth: DINOv2's NYU linear configs (*_nyu_linear_config.py, as copied in
# ywyue/FiT3D evaluation/baseline_configs) and dinov2/eval/depth (BNHead, SigLoss).
# Departures, each by necessity:
# - the pipeline crops (416 x 544) after CropBox, RandomRotate(2.5 deg, p 0.5), flip and
#   DepthColorAug as theirs, through mmseg's transforms (mmseg's RandomRotate: bilinear
#   image, nearest depth);
# - their GradientLoss(0.5) is left out: it is 0 as they call it (see the model base);
# - InternViT's patch is 14: a 416 x 544 crop is padded to 420 x 546 inside the
#   backbone, its prediction resized back (DINOv2's ViT pads to 14 as well);
# - the backbone has no final norm to drop (DINOv2 uses final_norm=False), and is held
#   in bf16 (frozen), the head in fp32;
# - the GPU count of their runs is not in their configs (2 per GPU); 8 as DINOv3's.
_base_ = [
    '../_base_/models/internvit_depth_linear.py',
    '../_base_/datasets/nyu_depth_416x544.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/depth_probe_38k.py',
]
# the bins and the valid range of the loss are the dataset's depth range
model = dict(decode_head=dict(min_depth=_base_.min_depth, max_depth=_base_.max_depth))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(_base_.load_depth),
    dict(type='CropBox', box=(43, 45, 608, 472)),  # inside NYUv2's white border
    dict(type='RandomRotate', prob=0.5, degree=2.5, pad_val=0, seg_pad_val=0),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomCrop', crop_size=_base_.crop_size),
    dict(type='DepthColorAug', prob=0.5, gamma=(0.9, 1.1), brightness=(0.75, 1.25),
         color=(0.9, 1.1)),
    dict(type='PackSegInputs', meta_keys=_base_.depth_meta_keys),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
