# Frozen backbone (linear probing, head tuning): layer decay 1.0, and the frozen
# parameters get no optimizer state. The backbone's weights are held in bf16
# (param_dtype) and it runs without an autograd graph; what trains keeps fp32 weights
# with a plain optimizer wrapper (the head-tuning leaves run it under DeepSpeed bf16, as
# upstream; linear probing ran without DeepSpeed, as here).
_base_ = './internvit_adamw_80k.py'

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-5, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='InternViTLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0),
    clip_grad=None)
