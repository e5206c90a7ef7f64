# Head tuning for detection, the InternVL authors' setting: Mask R-CNN over a frozen
# InternViT-6B-224px at patch 16, without a class token, its 16 x 16 position grid
# (img_size 256) stretched to every input, windowed attention with windows of 16
# patches in all 48 blocks (the grid zero-padded to whole windows, the padding left in
# the softmax), the last block's map made into 4x / 2x / 1x / 0.5x (channels-first
# LayerNorm) + FPN, mmdet's plain Mask R-CNN heads; the rescales, FPN and heads train.
# AdamW 1e-4, wd 0.05, no layer decay, 1333 x 800, 12 epochs at batch 16.
# No number was published for it, and no weights were released.
# Upstream: InternVL-MMDetSeg
# mmdetection/configs/intern_vit_6b/head_tuning/mask_rcnn_intern_vit_6b_fpn_1x_coco_bs16_frozen.py
# (backbone mmdetection/mmdet/models/backbones/intern_vit_6b.py, mmdet 2.x).
# Trained as there under DeepSpeed ZeRO-1 fp16 (zero_configs/adam_zero1_fp16.json):
# the frozen backbone held in fp16 (their ToFloat16Hook), the trainable weights fp16
# with fp32 master copies, the FPN and heads computing in fp32 (fp32_heads), a dynamic
# loss scale from 2^32 (window 1000, hysteresis 2, minimum 1), gradient clipping 1.0.
# DeepSpeed's fp16 needs CUDA.
# Departures: none in the model, the data pipelines or the optimisation. mmengine's
# samplers order the images differently from mmcv's; upstream's flash-attn kernels are
# this package's SDPA (or flash-attn with attn_impl='flash'). DeepSpeed's fp16 auto_cast
# casts positional inputs, the images upstream; mmengine passes keyword arguments, so
# inputs_to_half casts the images instead.
# 8 GPUs x 2 images = 16 per iteration; 12 epochs of the 117,266 train2017 images that
# have annotations: 7,330 iterations an epoch, 87,960 in all.
_base_ = [
    '../_base_/det/internvit_upstream-simplefpn_mask-rcnn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py', 'mmdet::_base_/default_runtime.py'
]
model = dict(
    backbone=dict(
        img_size=256,  # a 16 x 16 grid at patch 16: the released grid, not resized
        window_size=16,
        global_attn_indexes=[],
        window_pad_mask=False,
        drop_path_rate=0.0,
        with_cp=False,  # a frozen backbone runs without autograd
        frozen=True,
        param_dtype='float16'))
train_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
test_dataloader = val_dataloader
optim_wrapper = dict(_base_.vit_frozen_optim_wrapper, _delete_=True)
default_hooks = dict(checkpoint=dict(max_keep_ckpts=2, save_best='auto'))
strategy = dict(
    type='InternViTDeepSpeedStrategy',
    zero_optimization=dict(stage=1, allgather_partitions=True, allgather_bucket_size=1e9,
                           overlap_comm=True, reduce_scatter=True,
                           reduce_bucket_size=1e9, contiguous_gradients=True),
    fp16=dict(enabled=True, auto_cast=True, loss_scale=0, initial_scale_power=32,
              loss_scale_window=1000, hysteresis=2, min_loss_scale=1),
    inputs_to_half=['inputs'],
    gradient_clipping=1.0,
    with_cp=False)
