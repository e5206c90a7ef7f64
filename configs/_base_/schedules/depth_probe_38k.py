# The DINOv2 NYUv2 depth-probe schedule (its *_nyu_linear{,4}_config.py as copied in
# ywyue/FiT3D evaluation/baseline_configs, checked against dinov2/eval/depth): AdamW lr
# 1e-4, betas (0.9, 0.999), weight decay 0.01 (none on norms), gradient clipping at
# norm 35; mmcv 1.x's CosineAnnealing over 38400 iterations to 1e-8 x lr with a linear
# warm-up from 1e-3 x over the first 12800, which multiplies the cosine lr (mmengine
# multiplies schedulers that run together; their last step is `end - 1`, hence `+ 1`);
# 2 images per GPU. The DINOv3 leaves override the optimizer and the schedule.
max_iters = 38400
warmup_iters = 12800
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0.0),
    clip_grad=dict(max_norm=35.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=warmup_iters + 1),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min_ratio=1e-8, by_epoch=False,
         begin=0, end=max_iters + 1)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=3200)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# a checkpoint with every evaluation, the best AbsRel kept as DINOv2 selects
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=3200,
                    max_keep_ckpts=2, save_best='abs_rel', rule='less'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
