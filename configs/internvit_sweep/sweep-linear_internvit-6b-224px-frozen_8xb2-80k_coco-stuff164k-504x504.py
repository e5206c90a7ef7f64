# Linear-probe sweep: 24 BN + 1x1 conv heads on one frozen InternViT-6B-224px forward,
# on COCO-Stuff-164K: 6 learning rates x 4 block choices (the last block, the second-last, block
# 44 of 48 that the InternVL authors probe, and the last four concatenated as DINOv2's
# "lin. 4"). Each head trains as the single-head linear leaf
# (../internvit/linear_internvit-6b-224px-frozen_8xb2-80k_coco-stuff164k-504x504.py: AdamW, no
# weight decay, 80k iterations, the same pipelines) would with its lr and blocks.
# The best head is selected on 1000 images held out of COCO-Stuff train2017 (seeded) and
# reported on val; every head's val mIoU is in the log and in
# <work_dir>/sweep/results.{md,json,csv}, with heatmap.png (blocks x lr).
# Departures from the single-head leaf: the training set is train2017 minus the 1000
# held-out images (118287 -> 117287), and no best checkpoint is kept (the head is chosen
# on the held-out split instead).
_base_ = '../internvit/linear_internvit-6b-224px-frozen_8xb2-80k_coco-stuff164k-504x504.py'

held_out = dict(size=1000, seed=0)  # COCO-Stuff train images the heads are selected on
model = dict(
    type='SweepEncoderDecoder',
    sweep=dict(lr=[1e-5, 4e-5, 1e-4, 4e-4, 1e-3, 4e-3],
               blocks=[[-1], [-2], [-4], [-4, -3, -2, -1]]))
# one parameter group per head (its lr); the heads' weight decay is the optimizer's
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=4e-5, betas=(0.9, 0.999),
                                    weight_decay=0.0),
                     constructor='SweepOptimWrapperConstructor')
train_dataloader = dict(dataset=dict(
    _delete_=True, type='HeldOutSplit', part='train',
    dataset=_base_.train_dataloader.dataset, **held_out))
select_dataloader = dict(
    batch_size=1, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='HeldOutSplit', part='held_out',
                 dataset=dict(_base_.train_dataloader.dataset,
                              pipeline=_base_.test_pipeline),
                 **held_out))
# validation and tools/test.py select the head on the held-out images first, then score
# every head on val
val_cfg = dict(type='SweepValLoop', select_on='held_out',
               select_dataloader=select_dataloader)
test_cfg = dict(type='SweepTestLoop', select_on='held_out',
                select_dataloader=select_dataloader)
val_evaluator = dict(type='SweepIoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best=None))
