"""InternViT for mmsegmentation 1.x.

Importing this package registers the core classes (:mod:`internvit_dense`: backbone,
layer-decay constructor, hooks, runners, DeepSpeed strategy) in mmseg's registries,
together with the segmentation pieces defined here. Configs load it with
``custom_imports = dict(imports=['mmseg_internvit'], allow_failed_imports=False)``.
"""
from mmseg.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS, RUNNERS

from internvit_dense import (
    PRESETS,
    CheckpointMismatchError,
    EvalBeforeTrainHook,
    InternViT,
    InternViTAdapter,
    InternViTDeepSpeedStrategy,
    InternViTFlexibleRunner,
    InternViTLayerDecayOptimizerConstructor,
    InternViTRunner,
    RecordSubsetHook,
    UnsafeCheckpointError,
    load_pretrained_into,
    resolve_preset,
)
from internvit_dense.registry import register_core
from internvit_dense.version import __version__

from .datasets import ADE20KSubsetDataset, HeldOutSplit, LoadCheckedAnnotations
from .engine import SweepOptimWrapperConstructor, SweepValLoop
from .evaluation import SweepIoUMetric
from .models import (
    BatchedSlideEncoderDecoder,
    BNLinearHead,
    LastMapFeature2Pyramid,
    SweepEncoderDecoder,
)

register_core(models=MODELS, hooks=HOOKS, optim_wrapper_constructors=OPTIM_WRAPPER_CONSTRUCTORS,
              runners=RUNNERS)

__all__ = ['__version__', 'InternViT', 'InternViTAdapter', 'PRESETS', 'resolve_preset',
           'load_pretrained_into', 'CheckpointMismatchError', 'UnsafeCheckpointError',
           'BNLinearHead', 'BatchedSlideEncoderDecoder', 'LastMapFeature2Pyramid',
           'ADE20KSubsetDataset', 'HeldOutSplit', 'LoadCheckedAnnotations',
           'SweepEncoderDecoder', 'SweepOptimWrapperConstructor', 'SweepValLoop',
           'SweepIoUMetric',
           'EvalBeforeTrainHook', 'RecordSubsetHook',
           'InternViTLayerDecayOptimizerConstructor', 'InternViTDeepSpeedStrategy',
           'InternViTRunner', 'InternViTFlexibleRunner']
