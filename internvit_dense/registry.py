# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""Registration of the core classes in a task library's registries.

The core registers nothing when imported: each task package (``mmseg_internvit``,
``mmdet_internvit``) calls :func:`register_core` with its own registries, so a config's
``type='InternViT'`` resolves in the scope it is built in, and the core depends on
mmengine, mmcv and torch only. Classes that only mmengine's root registries can hold (the
DeepSpeed strategy, which ``FlexibleRunner`` builds from mmengine's ``STRATEGIES``, and the
CPU DDP wrapper) are registered there, once; so are the runners and the parameter
schedulers (the task libraries' registries look them up there), which mmdet's packaged
``tools/train.py`` looks up in mmengine's ``RUNNERS``.
"""
from mmengine.registry import MODEL_WRAPPERS, PARAM_SCHEDULERS, RUNNERS, STRATEGIES, Registry

from .dist import CPUDistributedDataParallel
from .engine import (
    AtomicCheckpointHook,
    EvalBeforeTrainHook,
    InternViTDeepSpeedStrategy,
    InternViTFlexibleRunner,
    InternViTLayerDecayOptimizerConstructor,
    InternViTRunner,
    PreemptionHook,
    RecordSubsetHook,
    WarmupOneCycleLR,
)
from .models import InternViT, InternViTAdapter, LayerNorm2d


def _register_once(registry: Registry, cls, name=None) -> None:
    name = name or cls.__name__
    existing = registry.module_dict.get(name)
    if existing is None:
        registry.register_module(name=name, module=cls)
    elif existing is not cls:
        raise KeyError(f'{name} is already registered in {registry.name} '
                       f'(scope {registry.scope}) by another class: {existing}')


def register_core(*, models: Registry, hooks: Registry, optim_wrapper_constructors:
                  Registry, runners: Registry) -> None:
    """Register the core classes in a task library's registries (idempotent)."""
    for registry, classes in ((models, (InternViT, InternViTAdapter)),
                              (hooks, (EvalBeforeTrainHook, RecordSubsetHook,
                                       PreemptionHook, AtomicCheckpointHook)),
                              # the task libraries' schedulers are children of
                              # mmengine's, which holds the DINOv3 depth schedule
                              (PARAM_SCHEDULERS, (WarmupOneCycleLR, )),
                              (optim_wrapper_constructors,
                               (InternViTLayerDecayOptimizerConstructor, )),
                              (runners, (InternViTRunner, InternViTFlexibleRunner)),
                              # mmdet's packaged tools/train.py builds from
                              # mmengine's RUNNERS before any scope is set
                              (RUNNERS, (InternViTRunner, InternViTFlexibleRunner)),
                              (STRATEGIES, (InternViTDeepSpeedStrategy, )),
                              (MODEL_WRAPPERS, (CPUDistributedDataParallel, ))):
        for cls in classes:
            _register_once(registry, cls)
    # norm_cfg=dict(type='LN2d'): the channels-first LayerNorm of the InternVL pyramid
    _register_once(models, LayerNorm2d, 'LN2d')
