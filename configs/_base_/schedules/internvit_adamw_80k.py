# Published recipe: AdamW lr 4e-5, betas (0.9, 0.999), wd 0.05, layer-wise lr decay,
# linear warm-up 1500 iters from 1e-6, poly decay (power 1.0) to 0, 80k iters at batch
# 16 (8 GPUs x 2), bf16 autocast. Checkpoints every 8k iters: a killed run resumes
# from the last one with `tools/train.py CONFIG --resume`.
_base_ = 'mmseg::_base_/schedules/schedule_80k.py'

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=4e-5, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='InternViTLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.95),
    clip_grad=None)
# The poly decay has no `end`: mmengine's runner (and its strategies) end a scheduler
# without one at train_cfg.max_iters, so a shorter schedule changes max_iters alone.
# Leaves with another warm-up write [dict(_base_.warmup, end=N), dict(_base_.poly,
# begin=N)].
warmup = dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500)
poly = dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500)
param_scheduler = [warmup, poly]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=80000, val_interval=8000)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=8000,
                    max_keep_ckpts=3, save_best='mIoU'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False))
