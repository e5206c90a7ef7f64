# Our own design (no published recipe, no published number): Cascade Mask R-CNN,
# InternViT-300M fully fine-tuned; otherwise as the Mask R-CNN LSJ config.
# 32 GPUs x 2 images; 183,250 iterations (see the schedule base).
_base_ = ['../_base_/det/internvit_simplefpn_cascade-mask-rcnn.py',
          '../_base_/det/schedule_lsj-100e_adamw.py']
optim_wrapper = dict(_base_.vit_optim_wrapper, _delete_=True,
                     optimizer=dict(_base_.vit_optim_wrapper.optimizer, weight_decay=0.1))
