# Full tuning with the adapter: InternViT-6B-224px trained too (layer decay 0.95, drop
# path 0.4 in the ViT and on the extractors' FFN as in ViT-Adapter, bf16 AMP, block and
# interaction checkpointing). No published number. AdamW states of 6.5B parameters need
# ZeRO sharding: deepspeed/..._zero2.py.
_base_ = [
    '../_base_/models/internvit_adapter_upernet.py', '../_base_/datasets/ade20k_512x512.py',
    'mmseg::_base_/default_runtime.py', '../_base_/schedules/internvit_adamw_80k.py'
]
model = dict(backbone=dict(drop_path_rate=0.4, extractor_drop_path=0.4))
