# Few-shot: 1/4 of the ADE20K training images (seeded), 20k iterations, warm-up
# 400; the poly decay ends at max_iters. Published: 53.3 mIoU.
_base_ = './linear_internvit-6b-224px_8xb2-80k_ade20k-504x504.py'
train_dataloader = dict(dataset=dict(subset_fraction=1 / 4))
train_cfg = dict(max_iters=20000, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
param_scheduler = [dict(_base_.warmup, end=400), dict(_base_.poly, begin=400)]
