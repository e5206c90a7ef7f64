# Head tuning: frozen InternViT-6B-224px, blocks 11/23/35/47 into the InternVL pyramid
# (Feature2Pyramid with a channels-first LayerNorm) + UPerHead (1536 channels) + an
# auxiliary FCNHead (1536 channels) on level 1, on COCO-Stuff-164K.
# Published: 48.9 mIoU (InternVL 2.5 report, Table 15).
# Upstream: InternVL-MMDetSeg
# mmsegmentation/configs/intern_vit_6b/head_tuning/upernet_intern_vit_6b_504_80k_cocostuff164k_bs16_lr4e-5_frozen.py.
# No trained weights were released for it.
# Trained as there under DeepSpeed ZeRO-1 bf16 (../_base_/deepspeed/zero1_bf16.py): bf16
# weights with fp32 master copies, the heads computing in fp32 (fp32_heads), per-block
# activation checkpointing.
# Departures: none in the model, the data pipelines or the optimisation. mmengine's
# InfiniteSampler orders the images differently from mmcv's sampler. Upstream's
# DeepSpeed evaluation hook never wrote a best checkpoint (its call is commented out);
# here save_best='auto' (aAcc, as mmcv resolves it) keeps one.
_base_ = [
    '../_base_/models/internvit_upernet.py',
    '../_base_/datasets/coco-stuff164k_504x504.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/internvit_adamw_80k_frozen.py',
    '../_base_/deepspeed/zero1_bf16.py',
]
# with_cp=False: a frozen backbone runs without autograd
model = dict(backbone=dict(frozen=True, param_dtype='bfloat16', with_cp=False),
             auxiliary_head=dict(in_index=1, num_classes=_base_.num_classes),
             decode_head=dict(num_classes=_base_.num_classes))
