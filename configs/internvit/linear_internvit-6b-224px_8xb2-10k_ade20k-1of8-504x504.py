# Few-shot: 1/8 of the ADE20K training images (seeded), 10k iterations, warm-up
# 200; the poly decay ends at max_iters. Published: 50.0 mIoU.
_base_ = './linear_internvit-6b-224px_8xb2-80k_ade20k-504x504.py'
train_dataloader = dict(dataset=dict(subset_fraction=1 / 8))
train_cfg = dict(max_iters=10000, val_interval=2000)
default_hooks = dict(checkpoint=dict(interval=2000))
param_scheduler = [dict(_base_.warmup, end=200), dict(_base_.poly, begin=200)]
