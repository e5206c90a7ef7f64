# InternViT + linear probe (BatchNorm + 1x1 conv), EncoderDecoder with slide inference
# that runs the windows of an image through the backbone together. The InternVL
# authors' linear probe is their FCNHead(num_convs=0, with_norm=True): SyncBN over the
# block's 3200 channels, then the 1x1 classifier (BNLinearHead is that head).
custom_imports = dict(imports=['mmseg_internvit'], allow_failed_imports=False)
# mmengine's Runner with safe, strict checkpoint loading and CPU-only distributed
# runs; mmseg's / mmdet's own tools/train.py and test.py build it from here too.
runner_type = 'InternViTRunner'

norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],  # ImageNet mean/std, RGB, 0-255
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(504, 504))
model = dict(
    type='BatchedSlideEncoderDecoder',
    data_preprocessor=data_preprocessor,
    # the heads compute in fp32 whatever the precision of the backbone (bf16 weights,
    # DeepSpeed bf16, autocast), as the InternVL authors' heads do
    fp32_heads=True,
    backbone=dict(
        type='InternViT',
        arch='internvit-6b-224px',
        img_size=504,
        out_indices=[-1],  # the last block
        drop_path_rate=0.0,
        with_cp=True,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/InternViT-6B-224px')),
    # The heads' (and the neck's) input widths are left out: BatchedSlideEncoderDecoder
    # derives them from the backbone, so a leaf switches releases by naming the
    # backbone alone (a stated width must match it).
    decode_head=dict(
        type='BNLinearHead',
        in_index=0,
        num_classes=150,
        dropout_ratio=0.0,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    # slide_batch_size: crops per backbone call (mmseg runs one per call; None or 0
    # restores that). ADE20K test images (short side 504) have 2 or 3 windows.
    test_cfg=dict(mode='slide', crop_size=(504, 504), stride=(322, 322),
                  slide_batch_size=4))
