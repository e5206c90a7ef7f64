# COCO-Stuff-164K (171 classes) at crop 504, the InternVL 2.5 report's setting (Table 15).
# Inherits mmseg's own COCO-Stuff settings and changes only what the ADE20K base does:
# the sizes, the checked label loader and the test-time augmentation.
_base_ = 'mmseg::_base_/datasets/coco-stuff164k.py'

crop_size = (504, 504)
num_classes = 171
train_pipeline = [
    dict(type='LoadImageFromFile'),
    # mmseg's LoadAnnotations plus errors naming the file (unreadable map, label values
    # outside the 171 classes and 255)
    dict(type='LoadCheckedAnnotations', num_classes=num_classes),
    dict(type='RandomResize', scale=(2016, 504), ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2016, 504), keep_ratio=True),  # short side 504
    dict(type='LoadCheckedAnnotations', num_classes=num_classes),
    dict(type='PackSegInputs'),
]
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(int(2016 * r), int(504 * r)), keep_ratio=True)
         for r in img_ratios],
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='LoadCheckedAnnotations', num_classes=num_classes)],
        [dict(type='PackSegInputs')],
    ]),
]
train_dataloader = dict(batch_size=2, num_workers=4,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=4, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
