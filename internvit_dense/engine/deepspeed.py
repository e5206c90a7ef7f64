# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""DeepSpeed ZeRO for InternViT runs, through mmengine's own ``FlexibleRunner`` and
``DeepSpeedStrategy``.

``InternViTDeepSpeedStrategy`` is mmengine's ``DeepSpeedStrategy`` plus what turning an
ordinary training config into a ZeRO run needs, so that a leaf config only adds a
``strategy``:

- the config's ``optim_wrapper`` (optimizer, layer-decay constructor, ``paramwise_cfg``)
  is kept; only its type becomes ``DeepSpeedOptimWrapper``, its ``clip_grad`` becomes
  DeepSpeed's ``gradient_clipping`` and an ``AmpOptimWrapper``'s bf16 becomes DeepSpeed's
  ``bf16`` section (DeepSpeed, not autocast, owns precision under the strategy);
- ``train_micro_batch_size_per_gpu`` comes from the train dataloader;
- ``with_cp`` switches per-block activation checkpointing of every InternViT in the
  model (DeepSpeed's own ``activation_checkpointing`` section only acts on models that
  call ``deepspeed.checkpointing``);
- frozen parameters are excluded from the optimizer, hence from ZeRO's partitions and
  optimizer states (by the layer-decay constructor); checkpoints keep them so that a
  consolidated checkpoint is complete (``exclude_frozen_parameters=True`` leaves them
  out: smaller files, and ``tools/model_converters/consolidate_zero_checkpoint.py
  --config`` puts the pretrained frozen weights back);
- ``load_from`` takes a plain (non-DeepSpeed) checkpoint and loads it, strictly, before
  DeepSpeed wraps the model: mmengine's strategy hands every ``load_from`` to
  ``DeepSpeedEngine.load_checkpoint``, which only reads DeepSpeed checkpoint directories
  (open-mmlab/mmengine#1499), and weights written into an already wrapped model would
  be overwritten by ZeRO's fp32 master copy at the first step. ``InternViTFlexibleRunner`` moves
  a plain ``load_from`` here;
- on a machine without CUDA, the process group is created with gloo
  (:mod:`internvit_dense.dist`).
"""
import contextlib
import copy
import glob
import logging
import os.path as osp
from typing import Optional

import torch.nn as nn
from mmengine.logging import print_log

try:
    from mmengine._strategy import DeepSpeedStrategy
except ImportError:  # pragma: no cover - mmengine without strategies
    DeepSpeedStrategy = object

from ..dist import free_port, init_cpu_process_group, needs_cpu_workaround
from ..safe_load import check_files_are_safe
from .strict_load import load_plain_checkpoint

#: What DeepSpeed 0.19's own checkpoint files hold beyond the run-checkpoint allow-list
#: (ZeRO's stage enum, loss-scaler state, fragment addresses, mmengine's ConfigDict in
#: the saved config). DeepSpeed unpickles its files with weights_only=False, so every
#: ``*.pt`` of a directory is checked against this list before DeepSpeed reads it.
DEEPSPEED_CHECKPOINT_GLOBALS = (
    'deepspeed.runtime.zero.config.ZeroStageEnum',
    'deepspeed.runtime.fp16.loss_scaler.LossScaler',
    'deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler',
    'deepspeed.utils.tensor_fragment.fragment_address',
    'mmengine.config.config.ConfigDict',
)


def check_deepspeed_checkpoint(path: str, trust: bool = False) -> None:
    """Refuse a DeepSpeed checkpoint directory whose files need other globals."""
    check_files_are_safe(sorted(glob.glob(osp.join(path, '*.pt'))), trust=trust,
                         also_allowed=DEEPSPEED_CHECKPOINT_GLOBALS)


def is_deepspeed_checkpoint(path: str) -> bool:
    """DeepSpeed writes a checkpoint as a directory of ``*model_states.pt`` files."""
    return osp.isdir(path) and bool(glob.glob(osp.join(path, '*model_states.pt')))


def set_internvit_with_cp(model: nn.Module, with_cp: bool) -> int:
    """Switch per-block activation checkpointing on every InternViT in ``model``."""
    from ..models import InternViT
    found = 0
    for m in model.modules():
        if isinstance(m, InternViT):
            m.with_cp = with_cp
            found += 1
    return found


@contextlib.contextmanager
def _register_deepspeed_optimizers_once():
    """mmengine 0.10.7's ``DeepSpeedStrategy.__init__`` registers DeepSpeed's optimizers
    in ``OPTIMIZERS`` every time it runs, and a second registration raises ``KeyError:
    ... already registered`` (a second strategy in one process: train then test, or
    tests). While our strategy is constructed, and only then, the registration is
    skipped when an earlier strategy has done it; mmengine is otherwise left as it is."""
    from unittest import mock

    from mmengine._strategy import deepspeed as ds_module
    from mmengine.registry import OPTIMIZERS
    if 'DeepSpeedCPUAdam' not in OPTIMIZERS.module_dict:
        yield
        return
    with mock.patch.object(ds_module, 'register_deepspeed_optimizers', lambda: []):
        yield


class InternViTDeepSpeedStrategy(DeepSpeedStrategy):
    """mmengine's ``DeepSpeedStrategy`` for InternViT configs (see the module doc).

    Args:
        with_cp (bool, optional): activation checkpointing of the InternViT blocks;
            None keeps the model config's setting.
        load_from (str, optional): plain mmengine checkpoint to start from.
        exclude_frozen_parameters (bool): leave frozen parameters out of the
            checkpoints. Defaults to False.
        trust_checkpoint (bool): load checkpoints that need globals outside the
            run-checkpoint allow-list (they can run code). Defaults to False.
        **kwargs: the arguments of ``DeepSpeedStrategy`` (``zero_optimization``,
            ``bf16``, ``gradient_clipping``, ...).
    """

    def __init__(self, *, with_cp: Optional[bool] = None,
                 load_from: Optional[str] = None,
                 exclude_frozen_parameters: bool = False,
                 trust_checkpoint: bool = False, **kwargs):
        with _register_deepspeed_optimizers_once():
            super().__init__(exclude_frozen_parameters=exclude_frozen_parameters,
                             **kwargs)
        self.with_cp = with_cp
        self.load_from = load_from
        self.trust_checkpoint = trust_checkpoint
        if self.config.get('bf16', {}).get('enabled'):
            self._bf16_model()

    def _bf16_model(self) -> None:
        """DeepSpeed holds the model in bf16: the images must follow, and so must the
        float buffers (BatchNorm statistics). DeepSpeed < 0.18 cast whole modules;
        0.19 casts parameters only unless ``data_types.buffer_dtype`` is set, and
        BatchNorm then fails on bf16 weights next to fp32 running statistics."""
        if self._inputs_to_half is None:
            self._inputs_to_half = ['inputs']
        self.config.setdefault('data_types', {}).setdefault('buffer_dtype', 'bf16')

    # ------------------------------------------------------------------ distributed
    def _setup_distributed(self, launcher=None, backend='nccl', **kwargs):
        if needs_cpu_workaround(launcher):
            init_cpu_process_group(launcher, backend, kwargs.get('timeout'))
            return
        super()._setup_distributed(launcher, backend, **kwargs)

    # ------------------------------------------------------------------ building
    def build_model(self, model):
        model = super().build_model(model)
        if self.with_cp is not None:
            if not set_internvit_with_cp(model, self.with_cp):
                print_log('strategy.with_cp is set but the model holds no InternViT',
                          logger='current', level=logging.WARNING)
        return model

    def _init_model_weights(self, model):
        model = super()._init_model_weights(model)
        if self.load_from is not None:
            load_plain_checkpoint(model, self.load_from, trust=self.trust_checkpoint)
            self.logger.info(f'Loaded plain checkpoint {self.load_from} before '
                             'wrapping the model in DeepSpeed')
        return model

    def build_optim_wrapper(self, optim_wrapper, model=None):
        if isinstance(optim_wrapper, dict):
            optim_wrapper = self._to_deepspeed_optim_wrapper(optim_wrapper)
        self._refuse_coupled_heads(model if model is not None else self.model)
        return super().build_optim_wrapper(optim_wrapper, model)

    def _refuse_coupled_heads(self, model) -> None:
        """A probing sweep (a model with ``sweep_entries``: mmseg_internvit's
        SweepEncoderDecoder, duck-typed so that this core module needs no mmseg) trains
        each head as if alone; DeepSpeed's global clipping and fp16 loss scale would
        couple them, as SweepOptimWrapperConstructor refuses for plain runs."""
        if getattr(model, 'sweep_entries', None) is None:
            return
        if any(self.config.get(k, {}).get('enabled') for k in ('fp16', 'amp')):
            raise ValueError(
                'strategy fp16 / amp: DeepSpeed keeps one loss scale for all heads of a '
                "sweep (an overflow in one skips every head's step); use bf16 or fp32")
        if self.config.get('gradient_clipping'):
            raise ValueError(
                f"strategy gradient_clipping={self.config['gradient_clipping']} (or the "
                "optim_wrapper's clip_grad moved there) clips all heads' gradients "
                'together, which couples the heads of a sweep; remove it')

    def _to_deepspeed_optim_wrapper(self, cfg: dict) -> dict:
        cfg = copy.deepcopy(dict(cfg))
        kind = cfg.get('type', 'OptimWrapper')
        kind = kind if isinstance(kind, str) else kind.__name__
        if kind == 'DeepSpeedOptimWrapper':
            return cfg
        if kind not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise ValueError(f'optim_wrapper.type={kind!r} cannot run under DeepSpeed; '
                             'use OptimWrapper or AmpOptimWrapper settings')
        clip = cfg.pop('clip_grad', None)
        if clip and 'gradient_clipping' not in self.config:
            if set(clip) - {'max_norm', 'norm_type'} or clip.get('norm_type', 2) != 2:
                raise ValueError(f'optim_wrapper.clip_grad={clip}: DeepSpeed clips the '
                                 'global L2 norm only (max_norm)')
            self.config['gradient_clipping'] = float(clip['max_norm'])
        dtype = cfg.pop('dtype', None)
        cfg.pop('loss_scale', None)
        if kind == 'AmpOptimWrapper' and not any(
                k in self.config for k in ('bf16', 'fp16', 'amp')):
            if str(dtype) in ('bfloat16', 'torch.bfloat16'):
                self.config['bf16'] = dict(enabled=True)
                self._bf16_model()
        if 'accumulative_counts' in cfg:
            self.config['gradient_accumulation_steps'] = cfg.pop('accumulative_counts')
        cfg['type'] = 'DeepSpeedOptimWrapper'
        return cfg

    def prepare(self, model, *, optim_wrapper=None, param_scheduler=None,
                compile=False, dispatch_kwargs=None):
        if not self._prepared:
            batch = (dispatch_kwargs or {}).get('train_micro_batch_size_per_gpu')
            self.config.setdefault('train_micro_batch_size_per_gpu', batch or 1)
        return super().prepare(model, optim_wrapper=optim_wrapper,
                               param_scheduler=param_scheduler, compile=compile,
                               dispatch_kwargs=dispatch_kwargs)

    def _wrap_model(self, model):
        import torch.distributed as torch_dist
        if not torch_dist.is_initialized():
            # A single-process run (launcher 'none'): without these DeepSpeed falls
            # back to MPI discovery. It then creates a one-process group itself.
            import os
            for key, value in (('RANK', '0'), ('LOCAL_RANK', '0'), ('WORLD_SIZE', '1'),
                               ('MASTER_ADDR', '127.0.0.1')):
                os.environ.setdefault(key, value)
            os.environ.setdefault('MASTER_PORT', str(free_port()))
        return super()._wrap_model(model)

    # ------------------------------------------------------------------ checkpoints
    def load_checkpoint(self, filename: str, **kwargs) -> dict:
        if self.load_from is not None and osp.abspath(filename) == osp.abspath(
                self.load_from):
            return dict(meta={})  # loaded in _init_model_weights, before wrapping
        if not is_deepspeed_checkpoint(filename):
            raise ValueError(
                f'{filename} is not a DeepSpeed checkpoint directory. Start a DeepSpeed '
                'run from a plain checkpoint with strategy.load_from (InternViTFlexibleRunner '
                'moves a plain load_from there), or consolidate a ZeRO checkpoint with '
                'tools/model_converters/consolidate_zero_checkpoint.py')
        # DeepSpeed unpickles its files with weights_only=False: check them first
        check_deepspeed_checkpoint(filename, trust=self.trust_checkpoint)
        return super().load_checkpoint(filename, **kwargs)

    def resume(self, filename: str, **kwargs) -> dict:
        if not is_deepspeed_checkpoint(filename):
            raise ValueError(f'cannot resume a DeepSpeed run from {filename}: not a '
                             'DeepSpeed checkpoint directory (missing *model_states.pt)')
        check_deepspeed_checkpoint(filename, trust=self.trust_checkpoint)
        return super().resume(filename, **kwargs)
