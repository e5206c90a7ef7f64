# Few-shot: 1/16 of the ADE20K training images, 5k iterations, a 100-iteration warm-up;
# otherwise the 1/1 leaf. Published: 46.5 mIoU.
# Upstream: InternVL-MMDetSeg
# mmsegmentation/configs/intern_vit_6b/few_shot/linear_intern_vit_6b_504_5k_ade20k_bs16_lr4e-5_1of16.py
# (ade20k_504x504_1of16.py: max_image_num=20210 // 16). Released weights:
# linear_intern_vit_6b_504_5k_ade20k_bs16_lr4e-5_1of16.pth.
# The images: Python's random.shuffle of the file-name-sorted list, seeded with the run
# seed, first 1263 of 20210 kept (ADE20KSubsetDataset, subset_seed=None: the run seed).
# A released run's seed is in its log; --cfg-options randomness.seed=SEED picks its
# images. RecordSubsetHook writes the list to WORK_DIR/train_subset.txt.
# Departures: those of the 1/1 leaf; the subset of a released run needs the seed
# its log records.
_base_ = './linear_internvit-6b-224px_8xb2-80k_ade20k-504x504.py'
train_dataloader = dict(dataset=dict(type='ADE20KSubsetDataset', subset_fraction=1 / 16))
max_iters = 5000
train_cfg = dict(max_iters=max_iters)
param_scheduler = [dict(_base_.warmup, end=100 + 1), dict(_base_.poly, end=max_iters + 1)]
custom_hooks = [dict(type='RecordSubsetHook')]
# ade20k_504x504_1of16.py tests with Resize((2016, 504), keep_ratio), the long side
# at most 2016, not the SETR_Resize of the whole-set base
test_pipeline = _base_.capped_test_pipeline
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
