"""internvit-dense core: InternViT (InternVL's vision encoder) as a dense-prediction
backbone, with what its training runs need, on mmengine, mmcv and torch alone.

Nothing here imports mmseg or mmdet, and nothing is registered on import: the task
packages ``mmseg_internvit`` and ``mmdet_internvit`` register these classes in their own
registries (:func:`internvit_dense.registry.register_core`). Importing this package adds
the types of mmengine's run checkpoints to torch's ``weights_only`` allow-list
(:mod:`internvit_dense.safe_load`), and nothing else.
"""
from .engine import (
    EvalBeforeTrainHook,
    InternViTDeepSpeedStrategy,
    InternViTFlexibleRunner,
    InternViTLayerDecayOptimizerConstructor,
    InternViTRunner,
    RecordSubsetHook,
)
from .models import (
    PRESETS,
    CheckpointMismatchError,
    InternViT,
    InternViTAdapter,
    load_pretrained_into,
    resolve_preset,
)
from .safe_load import UnsafeCheckpointError, allow_run_checkpoint_types
from .version import __version__

allow_run_checkpoint_types()

__all__ = ['__version__', 'InternViT', 'InternViTAdapter', 'PRESETS', 'resolve_preset',
           'load_pretrained_into', 'CheckpointMismatchError', 'UnsafeCheckpointError',
           'EvalBeforeTrainHook', 'RecordSubsetHook',
           'InternViTLayerDecayOptimizerConstructor', 'InternViTDeepSpeedStrategy',
           'InternViTRunner', 'InternViTFlexibleRunner']
