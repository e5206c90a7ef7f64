# Few-shot: 1/2 of the ADE20K training images (seeded), 40k iterations, warm-up
# 800; the poly decay ends at max_iters. Published: 55.8 mIoU.
_base_ = './linear_internvit-6b-224px_8xb2-80k_ade20k-504x504.py'
train_dataloader = dict(dataset=dict(subset_fraction=1 / 2))
train_cfg = dict(max_iters=40000, val_interval=8000)
default_hooks = dict(checkpoint=dict(interval=8000))
param_scheduler = [dict(_base_.warmup, end=800), dict(_base_.poly, begin=800)]
