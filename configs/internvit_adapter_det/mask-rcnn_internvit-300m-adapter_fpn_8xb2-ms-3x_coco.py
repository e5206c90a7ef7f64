# Mask R-CNN, InternViT-300M + ViT-Adapter + FPN fully fine-tuned: ViT-Adapter-L's COCO
# setting (AdamW 1e-4, wd 0.05, layer decay 0.8, drop path 0.4, windows of 14 with every
# 6th block global), bf16 AMP, on mmdet's own multi-scale 3x schedule (short side
# 640-800; ViT-Adapter adds DETR-style crops on top).
# 8 GPUs x 2 images; 36 epochs x 118,287 / 16 = 266,146 iterations.
_base_ = ['../_base_/det/internvit_adapter_mask-rcnn.py',
          'mmdet::common/ms_3x_coco-instance.py']

train_dataloader = dict(dataset=dict(dataset=dict(type='CheckedCocoDataset')))
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
test_dataloader = val_dataloader
val_evaluator = dict(metric=['bbox', 'segm'])
test_evaluator = val_evaluator
optim_wrapper = dict(_base_.vit_optim_wrapper, _delete_=True)  # wd 0.05, decay 0.8
