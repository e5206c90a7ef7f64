# Mask R-CNN over InternViT + ViT-Adapter + FPN (mmdet's own Mask R-CNN and FPN): the
# ViT-Adapter detection setting. The adapter returns strides 4 / 8 / 16 / 32 itself,
# and the FPN brings them to 256 channels and adds the pooled 6th level.
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py', './internvit_vit.py']

model = dict(
    data_preprocessor={{_base_.vit_data_preprocessor}},
    backbone=dict(
        _delete_=True,
        type='InternViTAdapter',
        arch='internvit-300m-448px',
        patch_size=16,  # 14-px weights are resized on load (kernel + grid)
        # the largest padded input (1333 -> 1344 px): every image takes the top-left
        # part of the position grid (absolute positions, see internvit_vit.py)
        img_size=1344,
        pos_embed_mode='crop',
        window_size=14,
        global_attn_indexes=[5, 11, 17, 23],
        interaction_indexes=[[0, 5], [6, 11], [12, 17], [18, 23]],
        conv_inplane=64,
        n_points=4,
        deform_num_heads=16,
        cffn_ratio=0.25,
        deform_ratio=0.5,  # ViT-Adapter-L's detection setting
        drop_path_rate=0.4,
        extractor_drop_path=0.4,
        with_cp=True,
        norm_cfg={{_base_.norm_cfg}},
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/InternViT-300M-448px')),
    neck=dict(in_channels=[1024] * 4))
