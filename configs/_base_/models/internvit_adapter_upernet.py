# InternViT + ViT-Adapter + UPerHead + auxiliary FCNHead. The adapter builds the 4-level
# pyramid (strides 4 to 32) itself, so there is no Feature2Pyramid neck; the heads are
# those of internvit_upernet.py. The adapter settings here are this package's design
# (the configs built on this base: full tuning, Mask2Former, the "-group" leaf); the
# published adapter-tuning leaf
# (internvit_adapter/upernet_internvit-6b-224px-adapter-frozen_8xb2-80k_ade20k-512x512.py)
# switches each field that differs to the InternVL authors' value.
_base_ = './internvit_upernet.py'

model = dict(
    data_preprocessor=dict(size=(512, 512)),
    backbone=dict(
        _delete_=True,
        type='InternViTAdapter',
        arch='internvit-6b-224px',
        patch_size=16,  # the released 14-px kernel is resized on load (and the grid)
        img_size=512,
        # interaction_indexes: groups of ViT blocks ending at stage_ends, by default
        # ([[0, 11], [12, 23], [24, 35], [36, 47]] for 48 blocks)
        conv_inplane=64,
        n_points=4,
        init_values=0.0,  # injector gamma: the pretrained ViT starts unchanged
        cffn_ratio=0.25,
        deform_ratio=0.25,
        num_extra_extractors=2,
        drop_path_rate=0.0,
        with_cp=True,
        # ours: the map after group k added to level k (InternVL: 'final'), the class
        # token through every block, SyncBN in the spatial prior module, LayerNorm eps
        # 1e-6 in the injectors / extractors
        vit_feature='group',
        norm_cfg={{_base_.norm_cfg}},
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/InternViT-6B-224px')),
    neck=None,
    # 256 channels, this package's adapter configs' choice; the published leaf has the
    # InternVL recipe's 1536
    auxiliary_head=dict(channels=256),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))
