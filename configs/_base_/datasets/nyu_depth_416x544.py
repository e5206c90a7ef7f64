# NYU Depth v2 through mmseg's own NYUDataset layout (tools/dataset_converters in mmseg
# 1.x: images/{train,test}/*.jpg, annotations/{train,test}/*.png, 16-bit depth in
# millimetres, 0 where unmeasured; the Eigen split, 24231 / 654 images as mmseg's VPD
# uses, or 795 / 654 from the labelled set), as the DINOv2 / DINOv3 depth probes train
# and evaluate it: depths 1e-3 to 10 m, random 416 x 544 training crops with horizontal
# flips, whole 480 x 640 test images (the test-time flip is the model's test_cfg.flip),
# metrics inside the Eigen crop (DepthMetric crop_type='nyu_crop': rows 45:471, columns
# 41:601). Unmeasured pixels and depths outside the range are left out of the loss
# (DepthBinsHead) and of every metric (DepthMetric), never turned into numbers.
dataset_type = 'NYUDataset'
data_root = 'data/nyu'
min_depth = 1e-3
max_depth = 10.0
crop_size = (416, 544)
depth_meta_keys = ('img_path', 'depth_map_path', 'ori_shape', 'img_shape', 'pad_shape',
                   'scale_factor', 'flip', 'flip_direction', 'category_id')
load_depth = dict(type='LoadCheckedDepthAnnotation', depth_rescale_factor=1e-3,
                  min_depth=min_depth, max_depth=max_depth)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    load_depth,
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='PackSegInputs', meta_keys=depth_meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    load_depth,
    dict(type='PackSegInputs', meta_keys=depth_meta_keys),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='images/train',
                                  depth_map_path='annotations/train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, test_mode=True,
                 data_prefix=dict(img_path='images/test',
                                  depth_map_path='annotations/test'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='DepthMetric', min_depth_eval=min_depth,
                     max_depth_eval=max_depth, crop_type='nyu_crop')
test_evaluator = val_evaluator
