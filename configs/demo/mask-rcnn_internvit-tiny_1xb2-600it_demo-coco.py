# The embedded detection demo: the real InternViT-300M Mask R-CNN LSJ config on COCO,
# with a tiny InternViT (width 96, 6 blocks, patch 16, windows of 5 with two global
# blocks) that starts from the segmentation demo's backbone as its "pretrained" weights
# (a ViT trained from scratch is no detector after minutes on a CPU), narrower heads and
# fewer sampled anchors / RoIs, 320 px inputs and a short CPU schedule,
# on real photographs with real instance masks in COCO format made by
# tools/prepare_demo_data.py. Pointing `data_root` at a real COCO copy and dropping the
# overrides below gives back the real experiment.
_base_ = '../internvit_det/mask-rcnn_internvit-300m_simplefpn_32xb2-lsj-100e_coco.py'

data_root = 'data/demo_coco/'
image_size = (320, 320)
max_iters = 600
ch = 64  # neck / head width (256 in the real config)
model = dict(
    backbone=dict(
        embed_dims=96, num_layers=6, num_heads=3, mlp_hidden_dims=384, img_size=320,
        out_indices=[5], window_size=5, global_attn_indexes=[2, 5], drop_path_rate=0.1,
        with_cp=False,
        # the segmentation demo's backbone (patch 14), saved by tools/run_demo.sh det
        # with tools/extract_backbone.py; loading resizes its kernel to patch 16
        init_cfg=dict(checkpoint='work_dirs/demo_ade20k/backbone.safetensors')),
    neck=dict(in_channels=96, out_channels=ch),
    rpn_head=dict(in_channels=ch, feat_channels=ch),
    train_cfg=dict(rpn=dict(sampler=dict(num=128)), rcnn=dict(sampler=dict(num=128))),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=ch),
        bbox_head=dict(in_channels=ch, conv_out_channels=ch, fc_out_channels=256),
        mask_roi_extractor=dict(out_channels=ch),
        mask_head=dict(in_channels=ch, conv_out_channels=ch)),
    # keep every detection (COCO counts up to 100 per image): the untrained model's
    # class scores sit near 1/81, below mmdet's default 0.05, and "no detections"
    # would give no AP at all before training
    test_cfg=dict(rcnn=dict(score_thr=0.0)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.5, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size,
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
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
    dataset=dict(times=1, dataset=dict(
        data_root=data_root, pipeline=train_pipeline,
        filter_cfg=dict(filter_empty_gt=True, min_size=8))))
val_dataloader = dict(
    num_workers=1, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# From scratch on CPU: iteration-based, a larger lr, fp32.
optimizer_lr = 1e-3  # 2e-4 left box AP at 0.0 after 300 iterations
optim_wrapper = dict(type='OptimWrapper', _delete_=True,
                     optimizer=dict(type='AdamW', lr=optimizer_lr, betas=(0.9, 0.999),
                                    weight_decay=0.05),
                     constructor='InternViTLayerDecayOptimizerConstructor',
                     paramwise_cfg=dict(num_layers=6, layer_decay_rate=0.9))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=50,
         end=max_iters),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=150)
log_processor = dict(by_epoch=False)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=max_iters // 2, max_keep_ckpts=2))
custom_hooks = [dict(type='EvalBeforeTrainHook',
                     metric=('coco/bbox_mAP', 'coco/segm_mAP'))]
env_cfg = dict(cudnn_benchmark=False)
