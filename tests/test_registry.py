import torch
from mmdet.registry import MODELS as DET_MODELS
from mmseg.registry import MODELS as SEG_MODELS

import mmdet_internvit  # noqa: F401  registers InternViT in mmdet
import mmseg_internvit


def test_one_class_registered_in_both_libraries():
    assert SEG_MODELS.get('InternViT') is mmseg_internvit.InternViT
    assert DET_MODELS.get('InternViT') is mmseg_internvit.InternViT


def test_mmseg_heads_are_not_overridden():
    # The upstream code force-registered its own FCNHead over mmseg's.
    from mmseg.models.decode_heads import FCNHead
    assert SEG_MODELS.get('FCNHead') is FCNHead


def test_build_from_config_dicts_in_each_scope():
    cfg = dict(type='InternViT', arch='internvit-300m-448px', embed_dims=32,
               num_layers=2, num_heads=2, mlp_hidden_dims=64, img_size=28)
    for registry in (SEG_MODELS, DET_MODELS):
        model = registry.build(cfg)
        assert model(torch.randn(1, 3, 28, 28))[0].shape == (1, 32, 2, 2)
