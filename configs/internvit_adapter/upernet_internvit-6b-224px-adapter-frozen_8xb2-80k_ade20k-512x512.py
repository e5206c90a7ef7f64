# Adapter tuning: frozen InternViT-6B-224px at patch 16 + a trainable ViT-Adapter (the
# InternVL authors': the final ViT map added to all four levels, no class token, a
# spatial prior module with channels-first LayerNorms) + UperNet (1536 channels) + an
# auxiliary FCNHead (1536 channels) on level 2, crop 512, on ADE20K.
# Published: 58.1 mIoU (ADE20K val, single scale).
# Upstream: InternVL-MMDetSeg
# mmsegmentation/configs/intern_vit_6b/vit_adapter/upernet_intern_vit_adapter_6b_512_80k_ade20k_bs16_lr4e-5.py
# (mmseg/models/backbones/vit_adapter.py, adapter_modules.py, intern_vit_6b.py). No
# weights are released for it; a checkpoint of that code converts with
# tools/model_converters/internvl2mmseg.py.
# Trained as there under DeepSpeed ZeRO-1 fp16 (zero_configs/adam_zero1_fp16.json, its
# ZeRO settings as written; fp16 without autocast): the whole backbone, frozen ViT and
# trainable adapter, in fp16 (the adapter's weights with fp32 master copies), the heads
# computing in fp32 (fp32_heads), every ViT block, injector and extractor checkpointed,
# no gradient clipping. The dynamic loss scale is the one DeepSpeed 0.8.0 (the fork's
# pin) gives that file, which names no scaling key: ZeRO's DynamicLossScaler()
# defaults, from 2^32, window 1000, hysteresis 1, min 1 (DeepSpeed 0.19 would start at
# 2^16 with hysteresis 2). The json's optimizer section is unused there too: mmcv's
# AdamW (lr 4e-5, wd 0.05, layer decay 0.95) is the client optimizer. DeepSpeed has no
# fp16 on CPU: this runs on CUDA GPUs (the CPU tests swap in bf16 or fp32).
# Departures: the deformable attention is mmcv's and samples in fp32 (locations,
# softmax of the weights, bilinear gather and sum; its projections run in fp16), where
# upstream's own op samples in fp16; the attention of the ViT is SDPA (upstream
# flash-attn: the same function); the 14 -> 16 kernel and 16 -> 32 grid resizes are
# computed in fp32 (upstream in the file's dtype). mmengine's InfiniteSampler orders the
# images differently from mmcv's sampler. Upstream's DeepSpeed evaluation hook never
# wrote a best checkpoint (its call is commented out); here save_best='auto' (aAcc, as
# mmcv resolves it) keeps one.
_base_ = [
    '../_base_/models/internvit_adapter_upernet.py', '../_base_/datasets/ade20k_512x512.py',
    'mmseg::_base_/default_runtime.py', '../_base_/schedules/internvit_adamw_80k_frozen.py'
]
model = dict(
    backbone=dict(
        freeze_vit=True,  # upstream freeze_vit=True: the ViT has no trainable parameter
        param_dtype='float16',  # the frozen ViT held in fp16 (upstream ToFloat16Hook)
        with_cls_token=False,  # upstream self.cls_token = None: pos_embed[:, 1:] only
        vit_feature='final',  # the last group's map, x4 / x2 / x1 / x0.5, to c1..c4
        norm_cfg=dict(_delete_=True, type='LN2d', eps=1e-6),  # spatial prior: conv, LN, ReLU
        interaction_norm_eps=1e-5,  # injectors / extractors: nn.LayerNorm's default
        out_fp32=True,  # upstream norm1..4(c.float()): fp32 maps
        # upstream: F.interpolate(kernel, 16, mode='bicubic', align_corners=False)
        init_cfg=dict(patch_resize='bicubic')),
    auxiliary_head=dict(channels=1536))
# layer decay 0.95 as published; with the ViT frozen, everything that trains (adapter
# and heads, id depth + 1) gets the full 4e-5
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.95))
# zero_configs/adam_zero1_fp16.json. inputs_to_half and the buffer dtype: DeepSpeed
# holds the model in fp16, so the images and the float buffers follow.
strategy = dict(
    type='InternViTDeepSpeedStrategy',
    zero_optimization=dict(stage=1, allgather_partitions=True, allgather_bucket_size=1e9,
                           overlap_comm=True, reduce_scatter=False, reduce_bucket_size=1e9,
                           contiguous_gradients=True),
    fp16=dict(enabled=True, auto_cast=False, loss_scale=0, initial_scale_power=32,
              loss_scale_window=1000, hysteresis=1, min_loss_scale=1),
    inputs_to_half=['inputs'],
    config=dict(data_types=dict(buffer_dtype='fp16')),
    with_cp=True)
