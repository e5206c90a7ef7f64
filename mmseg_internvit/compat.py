# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""Compatibility shims for the pinned OpenMMLab stack, kept in this one place.

torch 2.6 changed ``torch.load``'s default to ``weights_only=True``. mmengine 0.10.7
predates that and calls ``torch.load(filename, map_location=...)`` for local files, so
its own checkpoints (message-hub history buffers, numpy scalars in ``meta``) can no
longer be read back: ``load_from``, ``--resume`` and ``tools/test.py`` all fail. The
local-file loader is re-registered to read them as mmengine did under torch < 2.6.
Those files are the ones a user's own runs wrote. Third-party pretrained weights go
through ``InternViT.init_weights``, which keeps ``weights_only=True``.

mmengine 0.10.7's ``DeepSpeedStrategy`` can be constructed only once per process (see
``_idempotent_deepspeed_optimizer_registration``).
"""
import os.path as osp

import torch
from mmengine.runner import CheckpointLoader
from mmengine.utils import digit_version


def load_local_run_checkpoint(filename: str, map_location=None):
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint not found: {filename}')
    return torch.load(filename, map_location=map_location, weights_only=False)


def apply() -> None:
    if digit_version(torch.__version__.split('+')[0]) >= digit_version('2.6.0'):
        CheckpointLoader.register_scheme(prefixes='', loader=load_local_run_checkpoint,
                                         force=True)
    _idempotent_deepspeed_optimizer_registration()


def _idempotent_deepspeed_optimizer_registration() -> None:
    """mmengine 0.10.7's ``DeepSpeedStrategy.__init__`` registers DeepSpeed's optimizers
    every time it runs, and the second registration raises ``KeyError: ... already
    registered`` (a second strategy in one process: train then test, or tests). The
    function is looked up in its module at call time; this one registers once."""
    try:
        from mmengine._strategy import deepspeed as ds_strategy
    except ImportError:  # pragma: no cover
        return
    original = ds_strategy.register_deepspeed_optimizers
    if getattr(original, '_idempotent', False):
        return
    done: list = []

    def register_once():
        if not done:
            done.extend(original())
        return list(done)

    register_once._idempotent = True
    ds_strategy.register_deepspeed_optimizers = register_once
