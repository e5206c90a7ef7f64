# Mask R-CNN over InternViT + a simple feature pyramid (mmdet's own Mask R-CNN, with
# the guard against unconverted upstream checkpoints), with this package's heads: a
# 2-conv RPN, Shared4Conv1FC box and 4-conv mask heads with SyncBN.
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py', './internvit_vit.py']

model = dict(
    type='InternViTMaskRCNN',
    data_preprocessor={{_base_.vit_data_preprocessor}},
    backbone={{_base_.vit_backbone}},
    neck={{_base_.vit_neck}},
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=256,
                       norm_cfg={{_base_.norm_cfg}}),
        mask_head=dict(norm_cfg={{_base_.norm_cfg}})))
