"""InternViT for mmdetection 3.x.

The backbone has one implementation, in :mod:`internvit_dense`; importing this package
registers it in mmdet's own registries (the same class objects, not copies), together with
the layer-decay optimizer constructor, the hooks and the runners, plus what a plain ViT
needs for detection: a simple feature pyramid neck, mmdet's Mask R-CNN and Cascade
R-CNN with the upstream precision split (``fp32_heads``) and a guard against unconverted
upstream checkpoints, and a COCO dataset with checked annotations. It does not import
mmsegmentation. mmdet configs load it with
``custom_imports = dict(imports=['mmdet_internvit'], allow_failed_imports=False)``.
"""
from mmdet.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS, RUNNERS

from internvit_dense import InternViT, InternViTAdapter
from internvit_dense.registry import register_core
from internvit_dense.version import __version__

from .datasets import CheckedCocoDataset
from .detectors import InternViTCascadeRCNN, InternViTMaskRCNN
from .necks import SimpleFeaturePyramid

register_core(models=MODELS, hooks=HOOKS, optim_wrapper_constructors=OPTIM_WRAPPER_CONSTRUCTORS,
              runners=RUNNERS)

__all__ = ['__version__', 'InternViT', 'InternViTAdapter', 'SimpleFeaturePyramid',
           'InternViTMaskRCNN', 'InternViTCascadeRCNN', 'CheckedCocoDataset']
