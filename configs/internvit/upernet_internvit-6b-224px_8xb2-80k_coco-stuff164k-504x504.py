# Full tuning on COCO-Stuff-164K: InternViT-6B-224px + UperNet, layer decay 0.95, drop
# path 0.4, bf16 AMP. Published: 51.6 mIoU (InternVL 2.5 report, Table 15).
# 6B parameters with AdamW state need ZeRO sharding: deepspeed/..._zero2.py.
_base_ = [
    '../_base_/models/internvit_upernet.py', '../_base_/datasets/coco-stuff164k_504x504.py',
    'mmseg::_base_/default_runtime.py', '../_base_/schedules/internvit_adamw_80k.py'
]
model = dict(backbone=dict(drop_path_rate=0.4),
             decode_head=dict(num_classes=_base_.num_classes),
             auxiliary_head=dict(num_classes=_base_.num_classes))
