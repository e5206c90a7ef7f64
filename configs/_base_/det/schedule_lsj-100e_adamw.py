# COCO instance segmentation with large-scale jitter (1024 crops, resize 0.1-2.0),
# 100 epochs, from mmdet's own common/lsj-100e_coco-instance.py. That file trains 25
# epochs over RepeatDataset(times=4), i.e. 100 passes over train2017.
# Batch 64 (32 GPUs x 2): the 117,266 train2017 images that have annotations, 4 times,
# over 32 GPUs: 14,659 a GPU, 7,330 iterations an epoch, 183,250 in 25 epochs.
# ViTDet-style optimisation (AdamW wd 0.1, layer decay, bf16 autocast): the leaves take
# _base_.vit_optim_wrapper from the model base with weight decay 0.1.
_base_ = 'mmdet::common/lsj-100e_coco-instance.py'

train_dataloader = dict(dataset=dict(dataset=dict(type='CheckedCocoDataset')))
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
test_dataloader = val_dataloader
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=25, by_epoch=True, milestones=[22, 24],
         gamma=0.1),
]
