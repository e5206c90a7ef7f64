# Frozen InternViT + a linear depth probe over 256 depth bins (DepthBinsHead), on
# mmseg's DepthEstimator with the test-time horizontal flip (FlipDepthEstimator).
# Default: DINOv2's "lin. 1" (dinov2/eval/depth BNHead as its NYU configs build it: the
# last block, its class token concatenated to every patch, 4x bilinear upsampling, no
# norm (its BatchNorm is commented out), a 1x1 classifier, linear bin normalisation
# with eps 0.1, SigLoss); the leaves set "lin. 4" (four blocks) or DINOv3's probe.
custom_imports = dict(imports=['mmseg_internvit'], allow_failed_imports=False)
runner_type = 'InternViTRunner'

data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],  # ImageNet mean/std, RGB, 0-255
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=0,  # padded depth = unmeasured
    size=(416, 544))
model = dict(
    type='FlipDepthEstimator',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='InternViT',
        arch='internvit-6b-224px',
        out_indices=[-1],
        output_cls_token=True,
        frozen=True,
        param_dtype='bfloat16',
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/InternViT-6B-224px')),
    # in_channels is derived from the backbone (FlipDepthEstimator)
    decode_head=dict(
        type='DepthBinsHead',
        in_index=0,
        with_cls_token=True,
        upsample=4,
        n_bins=256,
        # min_depth / max_depth: the dataset's (a leaf sets them from its dataset base)
        norm_cfg=None,
        eps=0.1,
        # DINOv2's SigLoss(valid_mask=True, warm_up=True): variance focus 0.85, the
        # mean term alone for 100 iterations. Its GradientLoss(loss_weight=0.5) is left
        # out: written for (H, W) maps, it slices the batch and channel dimensions of
        # the (B, 1, H, W) maps it is given, and is 0 at 2 images per GPU.
        loss_decode=dict(type='ScaleInvariantLogLoss', variance_focus=0.85,
                         warm_up_iters=100, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole', flip=True))
