# The adapter-tuning demo: the real published adapter-tuning config
# (configs/internvit_adapter/upernet_internvit-6b-224px-adapter-frozen_...: frozen ViT,
# trainable ViT-Adapter + UperNet) on the segmentation demo's 10 photographs. Its
# frozen "pretrained" ViT is the segmentation demo's trained tiny InternViT (width 96,
# 6 blocks, patch 14), saved by `tools/run_demo.sh adapter` with
# tools/extract_backbone.py; loading resizes its kernel to patch 16, as with the
# released weights. Only the adapter and the heads train. Pointing `data_root` at a real
# ADE20K copy and dropping the overrides below gives back the real experiment.
#
# Scaled to 10 images on 2 CPU cores: crop 192 (a multiple of 32: no padding), a
# 16-channel spatial prior stem, UperNet 64 channels, fp32 throughout, whole-image
# testing, lr 1e-3 for the layers that start from scratch (as the segmentation demo).
_base_ = ('../internvit_adapter/'
          'upernet_internvit-6b-224px-adapter-frozen_8xb2-80k_ade20k-512x512.py')

data_root = 'data/demo_ade20k/ADEChallengeData2016'
crop_size = (192, 192)
max_iters = 300
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='internvit-300m-448px',  # the segmentation demo's family, scaled down
        embed_dims=96, num_layers=6, num_heads=3, mlp_hidden_dims=384, img_size=192,
        # group ends at the blocks the segmentation demo's UperNet reads
        interaction_indexes=[[0, 1], [2, 3], [4, 4], [5, 5]],
        deform_num_heads=3, conv_inplane=16,
        with_cp=False,  # a small model: keep the activations, save the recomputation
        param_dtype=None,  # fp32 on CPU
        init_cfg=dict(checkpoint='work_dirs/demo_ade20k/backbone.safetensors')),
    decode_head=dict(in_channels=[96] * 4, channels=64),
    auxiliary_head=dict(in_channels=96, channels=32),
    test_cfg=dict(_delete_=True, mode='whole'))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadCheckedAnnotations', num_classes=150, reduce_zero_label=True),
    dict(type='RandomResize', scale=(768, 192), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1008, 252), keep_ratio=True),
    dict(type='LoadCheckedAnnotations', num_classes=150, reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4, num_workers=1,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=50,
         end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=75)  # five points on the mIoU curve
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters // 2, max_keep_ckpts=2, save_best=None))
custom_hooks = [dict(type='EvalBeforeTrainHook', metric='mIoU')]
env_cfg = dict(cudnn_benchmark=False)
