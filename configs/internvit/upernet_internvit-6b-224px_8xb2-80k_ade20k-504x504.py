# Full tuning: InternViT-6B-224px + UperNet, layer decay 0.95, drop path 0.4, bf16 AMP,
# per-block gradient checkpointing. Published: 58.9 mIoU, 6.3B trainable / 6.3B total.
# 6B parameters with AdamW state need ZeRO sharding across the 8 GPUs.
_base_ = [
    '../_base_/models/internvit_upernet.py', '../_base_/datasets/ade20k_504x504.py',
    'mmseg::_base_/default_runtime.py', '../_base_/schedules/internvit_adamw_80k.py'
]
model = dict(backbone=dict(drop_path_rate=0.4))
