"""InternViT backbones, heads and configs for mmsegmentation 1.x.

Importing this package registers its classes in mmseg's registries; configs load it with
``custom_imports = dict(imports=['mmseg_internvit'], allow_failed_imports=False)``.
"""
from . import compat, dist
from .datasets import ADE20KSubsetDataset, LoadCheckedAnnotations
from .engine import (EvalBeforeTrainHook, InternViTDeepSpeedStrategy,
                     InternViTLayerDecayOptimizerConstructor, RecordSubsetHook)
from .models import (PRESETS, BNLinearHead, CheckpointMismatchError, InternViT,
                     load_pretrained_into, resolve_preset)
from .version import __version__

compat.apply()

__all__ = ['__version__', 'InternViT', 'PRESETS', 'resolve_preset',
           'load_pretrained_into', 'CheckpointMismatchError', 'BNLinearHead',
           'ADE20KSubsetDataset', 'LoadCheckedAnnotations', 'EvalBeforeTrainHook',
           'RecordSubsetHook', 'InternViTLayerDecayOptimizerConstructor',
           'InternViTDeepSpeedStrategy']
