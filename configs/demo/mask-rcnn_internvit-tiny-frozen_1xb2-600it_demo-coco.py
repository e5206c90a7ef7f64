# The embedded detection demo: the real frozen-backbone Mask R-CNN config (this
# package's own windowed design, mask-rcnn_internvit-6b-frozen-win14_...; the upstream
# InternVL setting trains under DeepSpeed fp16, which needs CUDA) with a tiny InternViT
# (width 96, 6 blocks, patch 16, windows of 5 with two global blocks) that starts from the segmentation demo's backbone as its
# frozen "pretrained" weights, narrower heads, 320 px inputs and a short CPU schedule,
# on real photographs with real instance masks in COCO format made by
# tools/dataset_converters/prepare_demo_data.py. Pointing `data_root` at a real COCO
# copy and dropping the overrides below gives back the real experiment.
#
# Scaled to 10 images of 320 px on 2 CPU cores (measured runs in the README):
# - the 9 categories present, not 80 (COCO's metric averages over present ones anyway);
# - GroupNorm instead of SyncBN/BN (batches of 2) and mmdet's default 2-fc box head;
# - 128 sampled anchors / RoIs per image and 1000 RPN candidates per level before NMS
#   (mmdet: 256 / 512 / 2000 for 1333 x 800 images, 10x the pixels): mmcv's CPU NMS and
#   RoIAlign take most of a step;
# - no scale jitter: the demo evaluates on its own training images, so its AP measures
#   how well the model fits them, not how it generalises.
_base_ = '../internvit_det/mask-rcnn_internvit-6b-frozen-win14_simplefpn_8xb2-1x_coco.py'

data_root = 'data/demo_coco/'
classes = ('person', 'car', 'bus', 'truck', 'sports ball', 'bottle', 'chair', 'couch',
           'dining table')
image_size = (320, 320)
max_iters = 600
ch = 64  # neck / head width (256 in the real config)
gn = dict(type='GN', num_groups=16, requires_grad=True)
model = dict(
    backbone=dict(
        arch='internvit-300m-448px',  # the segmentation demo's family, scaled down
        embed_dims=96, num_layers=6, num_heads=3, mlp_hidden_dims=384, img_size=320,
        out_indices=[5], window_size=5, global_attn_indexes=[2, 5],
        param_dtype=None,  # fp32 on CPU
        # the segmentation demo's backbone (patch 14), saved by tools/misc/run_demo.sh det
        # with tools/model_converters/extract_backbone.py; loading resizes its kernel to patch 16
        init_cfg=dict(checkpoint='work_dirs/demo_ade20k/backbone.safetensors')),
    neck=dict(in_channels=96, out_channels=ch, norm_cfg=gn),
    rpn_head=dict(in_channels=ch, feat_channels=ch),
    train_cfg=dict(rpn=dict(sampler=dict(num=128)), rpn_proposal=dict(nms_pre=1000),
                   rcnn=dict(sampler=dict(num=128))),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=ch),
        bbox_head=dict(
            _delete_=True, type='Shared2FCBBoxHead', in_channels=ch,
            fc_out_channels=256, roi_feat_size=7, num_classes=len(classes),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                            target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=False,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        mask_roi_extractor=dict(out_channels=ch),
        mask_head=dict(in_channels=ch, conv_out_channels=ch, num_classes=len(classes),
                       norm_cfg=gn)),
    # keep every detection (COCO counts up to 100 per image): the untrained model's
    # class scores sit near 1/10, below mmdet's default 0.05, and "no detections"
    # would give no AP at all before training
    test_cfg=dict(rcnn=dict(score_thr=0.0)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2, num_workers=1,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes),
                 pipeline=train_pipeline,
                 filter_cfg=dict(filter_empty_gt=True, min_size=8)))
val_dataloader = dict(
    num_workers=1,
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# Heads from scratch on CPU: iteration-based, a larger lr, fp32.
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=50,
         end=max_iters),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=200)
log_processor = dict(by_epoch=False)
default_hooks = dict(
    logger=dict(interval=10, log_metric_by_epoch=False),  # iteration-based: x = iteration
    checkpoint=dict(by_epoch=False, interval=max_iters // 2, max_keep_ckpts=2))
custom_hooks = [dict(type='EvalBeforeTrainHook',
                     metric=('coco/bbox_mAP', 'coco/segm_mAP'))]
env_cfg = dict(cudnn_benchmark=False)
