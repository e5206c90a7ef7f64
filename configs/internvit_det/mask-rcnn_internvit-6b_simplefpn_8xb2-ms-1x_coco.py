# Mask R-CNN 1x, the PIIP baseline (Zhu et al., "Parameter-Inverted Image Pyramid
# Networks", NeurIPS 2024, OpenGVLab/PIIP): InternViT-6B-224px fully tuned at patch 16,
# without a class token, its position grid resized to 14 x 14 (224 px at patch 16) and
# stretched to every input, global attention in every block, the last block's map made
# into 4x / 2x / 1x / 0.5x (channels-first LayerNorm) + FPN, mmdet's plain Mask R-CNN
# heads, DETR-style multi-scale augmentation then a 1024 crop, pixels normalised with
# mean / std 127.5 and padded to 64, AdamW 1e-4, wd 0.05 (the position embedding
# included), layer decay 0.95 over the 48 blocks, drop path 0.4, 12 epochs at batch 16.
# Published: 53.8 box AP / 48.1 mask AP (PIIP, COCO val2017).
# Upstream: PIIP mmdetection/configs/piip/baseline/mask_rcnn_internvit_6b_fpn_1x_coco_bs16_ms.py
# (backbone mmdetection/mmdet/models/backbones/internvit_6b.py, mmdet 2.x).
# Released weights: PIIP's mask_rcnn_internvit_6b_fpn_1x_coco_bs16_ms.pth (convert them
# with tools/model_converters/piip2mmdet.py).
# Trained as there under DeepSpeed ZeRO-1 bf16 (zero_configs/adam_zero1_bf16.json,
# ../_base_/deepspeed/zero1_bf16.py): bf16 weights with fp32 master copies, the backbone
# and the pyramid's rescales computing in bf16 (their ToBFloat16HookMMDet), the FPN and
# heads in fp32 (fp32_heads), per-block activation checkpointing.
# Departures: none in the model, the data pipelines or the optimisation. The augmentation
# is mmdet 3.x's spelling of the same chain (RandomChoice / RandomChoiceResize for mmdet
# 2.x's AutoAugment / Resize(multiscale_mode='value')); after a crop mmdet 3.x keeps a
# box whose clipped corners lie inside the image, mmdet 2.x one with x2 > x1 and
# y2 > y1 (the same boxes unless one was degenerate). mmengine's samplers order the
# images differently from mmcv's; upstream's flash-attn kernels are this package's SDPA
# (or flash-attn with attn_impl='flash').
# 8 GPUs x 2 images = 16 per iteration; 12 epochs of the 117,266 train2017 images that
# have annotations: 7,330 iterations an epoch, 87,960 in all.
_base_ = [
    '../_base_/det/internvit_upstream-simplefpn_mask-rcnn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py', 'mmdet::_base_/default_runtime.py',
    '../_base_/deepspeed/zero1_bf16.py',
]
model = dict(
    data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3, pad_size_divisor=64),
    backbone=dict(
        img_size=224,  # a 14 x 14 grid (the released 16 x 16 resized on load)
        window_size=0,  # global attention in every block
        drop_path_rate=0.4,
        with_cp=True))
multi_scale = [(s, 1333) for s in range(480, 801, 32)]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice', transforms=[
        [dict(type='RandomChoiceResize', scales=multi_scale, keep_ratio=True)],
        [dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)],
              keep_ratio=True),
         dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
              allow_negative_crop=True),
         dict(type='RandomChoiceResize', scales=multi_scale, keep_ratio=True)],
    ]),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=(1024, 1024),
         allow_negative_crop=True),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(type='CheckedCocoDataset', pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
test_dataloader = val_dataloader
optim_wrapper = dict(_base_.vit_optim_wrapper, _delete_=True,
                     paramwise_cfg=dict(layer_decay_rate=0.95, decay_embeddings=True))
default_hooks = dict(checkpoint=dict(max_keep_ckpts=1))
