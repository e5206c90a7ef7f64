# The InternVL authors' schedule (InternVL segmentation/configs/intern_vit_6b/*,
# InternVL-MMDetSeg mmsegmentation/configs/*): AdamW lr 4e-5, betas (0.9, 0.999), wd
# 0.05, layer-wise lr decay (0.95 when the backbone trains), 80k iterations at batch 16
# (8 GPUs x 2).
_base_ = 'mmseg::_base_/schedules/schedule_80k.py'

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=4e-5, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='InternViTLayerDecayOptimizerConstructor',
    # decay_embeddings: pos_embed and cls_token get weight decay, as they do under the
    # upstream constructor (its exemption compares them with full names, never matching)
    paramwise_cfg=dict(layer_decay_rate=0.95, decay_embeddings=True),
    clip_grad=None)
# mmcv 1.x's poly (power 1.0, min_lr 0) runs over all 80k iterations, and its linear
# warm-up (1500 iterations from 1e-6) multiplies the poly lr during the first 1500:
# lr(t) = 4e-5 * (1 - t / 80000) * (1e-6 + (1 - 1e-6) * t / 1500) for t < 1500. mmengine
# multiplies the factors of schedulers that are active together, so the two below,
# both from iteration 0, give that lr; its LinearLR and PolyLR reach their last value
# at step `end - 1`, hence the `+ 1`s: the warm-up ends at 1500 and the poly decay
# reaches 0 at max_iters, as mmcv's. A leaf with another length or warm-up writes
# max_iters = N; train_cfg = dict(max_iters=max_iters);
# param_scheduler = [dict(_base_.warmup, end=W + 1), dict(_base_.poly, end=max_iters + 1)]
max_iters = 80000
warmup = dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500 + 1)
poly = dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=0,
            end=max_iters + 1)
param_scheduler = [warmup, poly]
# Evaluation every 1000 iterations, a checkpoint every 1000 with the last two kept, and
# save_best='auto' as upstream ('auto' is the evaluator's first metric, aAcc, in mmcv
# 1.x as in mmengine; --cfg-options default_hooks.checkpoint.save_best=mIoU keeps the
# best mIoU instead). A killed run resumes from the last one (tools/train.py --resume).
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=1000)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000,
                    max_keep_ckpts=2, save_best='auto'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False))
