# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""Strict loading of whole-model checkpoints (``{'state_dict': ..., 'meta': ...}``)."""
import re
from typing import Iterable, Tuple

import torch.nn as nn

from ..models.checkpoint import CheckpointMismatchError, summarize_keys
from ..models.layouts import unconverted_hint
from ..safe_load import load_run_checkpoint, state_dict_of


def revise_keys(state: dict,
                rules: Iterable[Tuple[str, str]] = ((r'^module\.', ''), )) -> dict:
    """Apply mmengine's ``revise_keys`` rules (by default: drop a DDP ``module.``)."""
    for pattern, repl in rules:
        state = {re.sub(pattern, repl, k): v for k, v in state.items()}
    return state


def check_state_dict_fits(model: nn.Module, state: dict, filename: str) -> None:
    """Raise :class:`CheckpointMismatchError` listing the missing, unexpected and
    mis-shaped keys of ``state`` for ``model`` (the report the backbone loader gives)."""
    own = model.state_dict()
    # Keys the model does not have that name an upstream layout: a model may know the
    # layout of its own task (the detectors name piip2mmdet.py); otherwise the InternVL
    # segmentor layout is recognised. Keys the model has are never taken for it (an
    # mmseg head of its own may be called `norm`).
    foreign = [k for k in state if k not in own]
    own_hint = getattr(model, 'unconverted_checkpoint_hint', None)
    hint = own_hint(foreign) if callable(own_hint) else unconverted_hint(foreign)
    if hint:
        raise CheckpointMismatchError(f'checkpoint {filename} does not fit the model '
                                      f'{type(model).__name__}: {hint}')
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f'{k}: checkpoint {tuple(state[k].shape)} vs model '
                    f'{tuple(own[k].shape)}' for k in set(own) & set(state)
                    if hasattr(state[k], 'shape') and state[k].shape != own[k].shape)
    problems = []
    if missing:
        problems.append(f'missing keys ({len(missing)}): {summarize_keys(missing)}')
    if unexpected:
        problems.append(f'unexpected keys ({len(unexpected)}): '
                        f'{summarize_keys(unexpected)}')
    if shapes:
        more = f'; ... and {len(shapes) - 10} more' if len(shapes) > 10 else ''
        problems.append(f'shape mismatches ({len(shapes)}): ' + '; '.join(shapes[:10]) +
                        more)
    if problems:
        raise CheckpointMismatchError(f'checkpoint {filename} does not fit the model '
                                      f'{type(model).__name__}:\n  ' +
                                      '\n  '.join(problems))


def load_plain_checkpoint(model: nn.Module, filename: str, map_location='cpu',
                          trust: bool = False) -> dict:
    """Read a whole-model checkpoint safely and load it strictly; returns the
    checkpoint dict (its ``meta`` holds e.g. the dataset's classes and palette)."""
    ckpt = load_run_checkpoint(filename, map_location=map_location, trust=trust)
    state = revise_keys(state_dict_of(ckpt, filename))
    check_state_dict_fits(model, state, filename)
    model.load_state_dict(state, strict=True)
    return ckpt
