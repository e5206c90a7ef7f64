# Linear probing on COCO-Stuff-164K: frozen InternViT-6B-224px, BN + 1x1 conv on the
# fourth-last block. Published: 42.8 mIoU (InternVL 2.5 report, Table 15).
_base_ = [
    '../_base_/models/internvit_linear.py', '../_base_/datasets/coco-stuff164k_504x504.py',
    'mmseg::_base_/default_runtime.py', '../_base_/schedules/internvit_adamw_80k_frozen.py'
]
model = dict(backbone=dict(out_indices=[-4], frozen=True, param_dtype='bfloat16',
                           with_cp=False),
             decode_head=dict(num_classes=_base_.num_classes))
optim_wrapper = dict(optimizer=dict(weight_decay=0.0))
