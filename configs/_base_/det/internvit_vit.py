# The parts this package's own InternViT detector designs share: a plain ViT (patch 16,
# windowed attention with interleaved global blocks, absolute positions) and a
# ViTDet-style simple feature pyramid with SyncBN. (The upstream recipes, PIIP's and the
# InternVL authors', are internvit_upstream-simplefpn_mask-rcnn.py.)
custom_imports = dict(imports=['mmdet_internvit'], allow_failed_imports=False)
# mmengine's Runner with safe, strict checkpoint loading and CPU-only distributed
# runs; mmseg's / mmdet's own tools/train.py and test.py build it from here too.
runner_type = 'InternViTRunner'

norm_cfg = dict(type='SyncBN', requires_grad=True)
vit_data_preprocessor = dict(
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
    pad_size_divisor=32)
vit_backbone = dict(
    _delete_=True,
    type='InternViT',
    arch='internvit-300m-448px',
    patch_size=16,           # 14-px weights are resized on load (kernel + grid)
    # absolute positions for every input, from a grid that covers the largest padded
    # input of these configs: 1333 x 800 test images pad to 1344 x 800 (LSJ trains on
    # 1024 crops). Inputs beyond it are an error, not a stretched grid.
    img_size=1344,
    out_indices=[23],
    window_size=14,          # 1024 px / 16 = 64 patches: windows of 14 + masked padding
    global_attn_indexes=[5, 11, 17, 23],
    # absolute positions: batches are padded to varying sizes, and a stretched grid
    # would give a pixel a different embedding in every batch (and at test time)
    pos_embed_mode='crop',
    drop_path_rate=0.4,
    with_cp=True,
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/InternViT-300M-448px'))
# the optimiser of a trained InternViT detector (bf16 AMP, AdamW, layer decay); leaves
# take it as optim_wrapper = dict(_base_.vit_optim_wrapper, _delete_=True, ...)
vit_optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='InternViTLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.8),
    clip_grad=None)
# ... and of a frozen one: only the neck and heads train, in fp32, without layer decay
vit_frozen_optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='InternViTLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0))
vit_neck = dict(
    _delete_=True,
    type='SimpleFeaturePyramid',
    in_channels=1024,
    out_channels=256,
    scales=(4, 2, 1, 0.5),
    num_outs=5,
    norm_cfg=norm_cfg)
