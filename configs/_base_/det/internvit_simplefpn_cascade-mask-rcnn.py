# Cascade Mask R-CNN over InternViT + a simple feature pyramid (mmdet's own cascade),
# with 4-conv box heads in each of the three stages.
_base_ = ['mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py', './internvit_vit.py']

model = dict(
    type='InternViTCascadeRCNN',
    data_preprocessor={{_base_.vit_data_preprocessor}},
    backbone={{_base_.vit_backbone}},
    neck={{_base_.vit_neck}},
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=[
            dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=256,
                 norm_cfg={{_base_.norm_cfg}}, num_classes=80, reg_class_agnostic=True,
                 bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                                 target_stds=stds),
                 loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False,
                               loss_weight=1.0),
                 loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
            for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
                         [0.033, 0.033, 0.067, 0.067])
        ],
        mask_head=dict(norm_cfg={{_base_.norm_cfg}})))
