# Linear probing: frozen InternViT-6B-224px, BN + 1x1 conv on block 44 (the fourth-last).
# Published: 47.2 mIoU, 0.5M trainable / 5.9B total.
_base_ = [
    '../_base_/models/internvit_linear.py', '../_base_/datasets/ade20k_504x504.py',
    'mmseg::_base_/default_runtime.py', '../_base_/schedules/internvit_adamw_80k_frozen.py'
]
model = dict(backbone=dict(out_indices=[-4], frozen=True, param_dtype='bfloat16',
                           with_cp=False))
optim_wrapper = dict(optimizer=dict(weight_decay=0.0))
