# Adapter tuning with Mask2Former: InternViT-6B-224px frozen (bf16), trainable adapter
# and Mask2Former head (fp32: mmcv 2.1's deformable-attention CUDA kernel, which the
# pixel decoder uses, has no bf16 path). The data and schedule of the UperNet adapter
# recipe, with Mask2Former's AdamW lr 1e-4 and gradient clipping (mmseg's
# mask2former_r50 config), since the head starts from scratch. No published number;
# the closest reference is DINOv2 ViT-g frozen + ViT-Adapter + Mask2Former, 60.2.
_base_ = [
    '../_base_/models/internvit_adapter_mask2former.py',
    '../_base_/datasets/ade20k_512x512.py', 'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/internvit_adamw_80k_frozen.py'
]
model = dict(backbone=dict(freeze_vit=True, param_dtype='bfloat16'))
optim_wrapper = dict(optimizer=dict(lr=1e-4),
                     clip_grad=dict(_delete_=True, max_norm=0.01, norm_type=2))
