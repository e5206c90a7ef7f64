"""InternViT for mmdetection 3.x.

The backbone has one implementation, in :mod:`mmseg_internvit`; it is registered here in
mmdet's own ``MODELS`` registry (same class object, not a copy), so mmdet configs use
``backbone=dict(type='InternViT', ...)`` with
``custom_imports = dict(imports=['mmdet_internvit'], allow_failed_imports=False)``.
"""
from mmdet.registry import MODELS

from mmseg_internvit import InternViT
from mmseg_internvit.version import __version__

MODELS.register_module(module=InternViT)

__all__ = ['__version__', 'InternViT']
