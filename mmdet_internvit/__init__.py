"""InternViT for mmdetection 3.x.

The backbone has one implementation, in :mod:`mmseg_internvit`; it is registered here in
mmdet's own registries (same class objects, not copies), together with the layer-decay
optimizer constructor and the hooks, plus what a plain ViT needs for detection: a simple
feature pyramid neck and a COCO dataset with checked annotations. mmdet configs load it
with ``custom_imports = dict(imports=['mmdet_internvit'], allow_failed_imports=False)``.
"""
from mmdet.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from mmseg_internvit import (EvalBeforeTrainHook, InternViT,
                             InternViTLayerDecayOptimizerConstructor)
from mmseg_internvit.version import __version__
from .datasets import CheckedCocoDataset
from .necks import SimpleFeaturePyramid

MODELS.register_module(module=InternViT)
OPTIM_WRAPPER_CONSTRUCTORS.register_module(module=InternViTLayerDecayOptimizerConstructor)
HOOKS.register_module(module=EvalBeforeTrainHook)

__all__ = ['__version__', 'InternViT', 'SimpleFeaturePyramid', 'CheckedCocoDataset']
