# Few-shot: 1/16 of the ADE20K training images (seeded), 5k iterations, warm-up
# 100; the poly decay ends at max_iters. Published: 46.5 mIoU.
_base_ = './linear_internvit-6b-224px_8xb2-80k_ade20k-504x504.py'
train_dataloader = dict(dataset=dict(subset_fraction=1 / 16))
train_cfg = dict(max_iters=5000, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval=1000))
param_scheduler = [dict(_base_.warmup, end=100), dict(_base_.poly, begin=100)]
