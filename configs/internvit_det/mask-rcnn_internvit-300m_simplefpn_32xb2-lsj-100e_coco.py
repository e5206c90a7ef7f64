# Our own design (no published recipe, no published number), after ViTDet's: Mask R-CNN,
# InternViT-300M fully fine-tuned (patch 14 -> 16, absolute positions from a 1344 px
# grid, windows of 14 with global blocks 5/11/17/23), SyncBN simple pyramid and heads,
# layer decay 0.8, drop path 0.4, LSJ 1024, 100 epochs.
# 32 GPUs x 2 images; 183,250 iterations (see the schedule base).
_base_ = ['../_base_/det/internvit_simplefpn_mask-rcnn.py',
          '../_base_/det/schedule_lsj-100e_adamw.py']
optim_wrapper = dict(_base_.vit_optim_wrapper, _delete_=True,
                     optimizer=dict(_base_.vit_optim_wrapper.optimizer, weight_decay=0.1))
