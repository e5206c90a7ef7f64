# Adapter tuning, the InternVL authors' published setting: InternViT-6B-224px frozen
# (bf16 weights, no parameter gradients), a trainable ViT-Adapter and UperNet (1536
# channels), crop 512, patch 16, AdamW 4e-5, 80k iterations at batch 16.
# Published: 58.1 mIoU (ADE20K val, single scale).
_base_ = [
    '../_base_/models/internvit_adapter_upernet.py', '../_base_/datasets/ade20k_512x512.py',
    'mmseg::_base_/default_runtime.py', '../_base_/schedules/internvit_adamw_80k_frozen.py'
]
model = dict(backbone=dict(freeze_vit=True, param_dtype='bfloat16'))
# layer decay 0.95 as published; with the ViT frozen, everything that trains (adapter
# and heads, id depth + 1) gets the full 4e-5
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.95))
