# Full tuning with Mask2Former: InternViT-300M-448px trained too, with ViT-Adapter-L's
# Mask2Former recipe (AdamW 2e-5, layer decay 0.9, drop path 0.3 in the ViT and on the
# extractors' FFN), 80k iterations at crop 512. fp16 AMP, not bf16: mmcv 2.1's
# deformable-attention CUDA kernel (Mask2Former's pixel decoder) has float and half
# paths only. No published number; ViT-Adapter-L (BEiT-L) + Mask2Former reaches 58.3.
_base_ = [
    '../_base_/models/internvit_adapter_mask2former.py',
    '../_base_/datasets/ade20k_512x512.py', 'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/internvit_adamw_80k.py', '../_base_/backbones/internvit-300m-448px.py'
]
model = dict(backbone=dict(_base_.vit, drop_path_rate=0.3, extractor_drop_path=0.3))
optim_wrapper = dict(dtype='float16', optimizer=dict(lr=2e-5),
                     paramwise_cfg=dict(layer_decay_rate=0.9))
