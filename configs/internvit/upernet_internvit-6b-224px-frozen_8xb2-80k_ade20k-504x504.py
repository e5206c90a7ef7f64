# Head tuning: frozen InternViT-6B-224px, Feature2Pyramid + UPerHead (1536 channels).
# Published: 54.9 mIoU, 0.4B trainable / 6.3B total.
_base_ = [
    '../_base_/models/internvit_upernet.py', '../_base_/datasets/ade20k_504x504.py',
    'mmseg::_base_/default_runtime.py', '../_base_/schedules/internvit_adamw_80k_frozen.py'
]
model = dict(backbone=dict(frozen=True, param_dtype='bfloat16', with_cp=False))
