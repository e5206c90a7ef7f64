# Frozen backbone: its weights are held in bf16 (param_dtype) and it runs without an
# autograd graph; the head trains in fp32 with a plain optimizer wrapper. Layer decay 1.0
# and no optimizer state for the frozen parameters.
_base_ = './internvit_adamw_80k.py'

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-5, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='InternViTLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0),
    clip_grad=None)
