# Adapter tuning, this package's adapter design (not the published model): frozen
# InternViT-6B-224px (bf16 weights, no parameter gradients), a trainable ViT-Adapter
# and UperNet (1536 channels) with a 256-channel auxiliary FCNHead, crop 512, patch 16,
# AdamW 4e-5, 80k iterations at batch 16. No published number.
# It differs from the published InternVL recipe
# (upernet_internvit-6b-224px-adapter-frozen_8xb2-80k_ade20k-512x512.py, 58.1 mIoU) in:
# - the ViT map after group k (blocks 11 / 23 / 35 / 47) is added to pyramid level k
#   (vit_feature='group'), where InternVL adds the final map, resized, to all four;
# - the class token goes through every block (the released model's), where InternVL
#   drops it (with_cls_token=False);
# - the spatial prior module's convs are followed by SyncBN, not by a channels-first
#   LayerNorm (eps 1e-6);
# - the injectors' and extractors' LayerNorms have eps 1e-6, not 1e-5;
# - the auxiliary head has 256 channels, not 1536;
# - the 14-px kernel is resized to 16 by FlexiViT's pseudo-inverse resize, not bicubic;
# - precision: the ViT's weights are held in bf16, the adapter and the heads train in
#   fp32 with a plain optimizer wrapper (no DeepSpeed), where InternVL runs the whole
#   backbone in fp16 under DeepSpeed ZeRO-1 with fp32 heads; the maps come back in the
#   adapter's dtype (fp32 here).
_base_ = [
    '../_base_/models/internvit_adapter_upernet.py', '../_base_/datasets/ade20k_512x512.py',
    'mmseg::_base_/default_runtime.py', '../_base_/schedules/internvit_adamw_80k_frozen.py'
]
model = dict(backbone=dict(freeze_vit=True, param_dtype='bfloat16'))
# layer decay 0.95 as published; with the ViT frozen, everything that trains (adapter
# and heads, id depth + 1) gets the full 4e-5
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.95))
