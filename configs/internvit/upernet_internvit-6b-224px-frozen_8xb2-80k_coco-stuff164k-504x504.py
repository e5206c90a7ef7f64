# Head tuning on COCO-Stuff-164K: frozen InternViT-6B-224px, Feature2Pyramid + UPerHead
# (1536 channels). Published: 48.9 mIoU (InternVL 2.5 report, Table 15).
_base_ = [
    '../_base_/models/internvit_upernet.py', '../_base_/datasets/coco-stuff164k_504x504.py',
    'mmseg::_base_/default_runtime.py', '../_base_/schedules/internvit_adamw_80k_frozen.py'
]
model = dict(backbone=dict(frozen=True, param_dtype='bfloat16', with_cp=False),
             decode_head=dict(num_classes=_base_.num_classes),
             auxiliary_head=dict(num_classes=_base_.num_classes))
