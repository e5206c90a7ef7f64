# Few-shot: 1/8 of the ADE20K training images (seeded), 10k iters,
# warm-up 200. Published: 50.0 mIoU.
_base_ = './linear_internvit-6b-224px_8xb2-80k_ade20k-504x504.py'
max_iters, warmup_iters = 10000, 200
train_dataloader = dict(dataset=dict(subset_fraction=1 / 8))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=warmup_iters,
         end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 5)
default_hooks = dict(checkpoint=dict(interval=max_iters // 5))
