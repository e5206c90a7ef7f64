# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""mmengine's runners with what an InternViT run needs, selected by the configs'
``runner_type`` so that mmseg's and mmdet's own ``tools/train.py`` / ``tools/test.py``
(and ``mim``) run the same experiment as ours.

``InternViTRunner`` (plain ``Runner``) and ``InternViTFlexibleRunner`` (DeepSpeed
through ``FlexibleRunner``; ``InternViTRunner`` builds it for a config with a
``strategy``) both:

- write checkpoints that load with ``weights_only=True``
  (:func:`~internvit_dense.safe_load.portable_history_buffers`) and read them that way,
  with the run-checkpoint allow-list (:mod:`internvit_dense.safe_load`); any other
  global is refused with an error naming the file unless the config sets
  ``trust_checkpoint = True``;
- load ``load_from`` / ``--resume`` / test checkpoints strictly: missing, unexpected or
  mis-shaped keys are an error listing them, never a warning in the log;
- set up CPU-only distributed runs (gloo, CPU DDP, SyncBN -> BN;
  :mod:`internvit_dense.dist`); with CUDA this changes nothing;
- refuse a segmentation config whose heads predict another number of classes than
  its datasets have (:func:`check_num_classes`): a 150-class head on 171-class
  COCO-Stuff labels would otherwise train on wrong targets or fail deep in the loss;
- give a few-shot subset (``ADE20KSubsetDataset``) without a seed of its own the run's
  seed (:func:`with_run_seed`), as the InternVL authors' few-shot runs drew theirs.

``InternViTFlexibleRunner`` also hands a plain ``load_from`` to the strategy, which loads
it before DeepSpeed wraps the model (open-mmlab/mmengine#1499), checks DeepSpeed
checkpoint directories before DeepSpeed unpickles them (it loads with
``weights_only=False``), and evaluates (``test`` / ``val``) on the plain runner: a test
checkpoint is a consolidated plain file.
"""
import copy
import logging
import os.path as osp

from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.registry import DATASETS
from mmengine.runner import FlexibleRunner, Runner

from ..dist import adapt_cfg_for_cpu
from ..safe_load import portable_history_buffers, trust_from_cfg
from .checkpoint_files import (
    latest_complete_checkpoint,
    save_atomically,
    use_atomic_checkpoint_hook,
)
from .strict_load import load_plain_checkpoint

FLEXIBLE = 'InternViTFlexibleRunner'
PLAIN = 'InternViTRunner'


def _pick_complete_checkpoint(runner) -> None:
    """Auto-resume (``--resume`` without a path) from the newest complete checkpoint
    of the work dir, warning about each incomplete one skipped; mmengine would take
    whatever ``last_checkpoint`` names, half-written or not."""
    if runner._has_loaded or runner._resume is not True or runner._load_from is not None:
        return
    found, skipped = latest_complete_checkpoint(runner.work_dir)
    for warning in skipped:
        runner.logger.warning(warning)
    if found is None:
        if skipped:
            runner.logger.warning('no complete checkpoint to resume from: training '
                                  'starts from the beginning')
        runner._resume = False  # nothing to resume; mmengine would read last_checkpoint
        return
    runner.logger.info(f'auto-resume: the newest complete checkpoint is {found}')
    runner._load_from = found


def _dataset_classes(ds_cfg, scope: str):
    """(class names, dataset type) a dataset config will have, or None if unknown."""
    while isinstance(ds_cfg, dict) and 'dataset' in ds_cfg:  # wrappers (Repeat, ...)
        ds_cfg = ds_cfg['dataset']
    if not isinstance(ds_cfg, dict):
        return None
    kind = ds_cfg.get('type')
    classes = (ds_cfg.get('metainfo') or {}).get('classes')
    if classes is None:
        cls = kind if isinstance(kind, type) else DATASETS.get(
            kind if '.' in str(kind) else f'{scope}.{kind}')
        classes = getattr(cls, 'METAINFO', {}).get('classes')
    name = getattr(kind, '__name__', kind)
    return (list(classes), name) if classes is not None else None


def check_num_classes(cfg) -> None:
    """Raise if a segmentor's heads predict another number of classes than the
    datasets of its dataloaders have, naming the config file, the key, the dataset and
    its data root. Configs without such heads (detectors) pass unchecked."""
    model = cfg.get('model') or {}
    scope = cfg.get('default_scope') or 'mmengine'
    heads = []
    for key in ('decode_head', 'auxiliary_head'):
        for head in (model.get(key) if isinstance(model.get(key), (list, tuple))
                     else [model.get(key)]):
            if isinstance(head, dict) and 'num_classes' in head:
                heads.append((f'model.{key}.num_classes', head['num_classes']))
    if not heads:
        return
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds_cfg = (cfg.get(loader) or {}).get('dataset')
        found = _dataset_classes(ds_cfg, scope) if ds_cfg else None
        if found is None:
            continue
        classes, kind = found
        for key, n in heads:
            if n != len(classes):
                raise ValueError(
                    f'{cfg.filename or "config"}: {key} is {n} but {loader} reads '
                    f'{kind} (data_root {ds_cfg.get("data_root")!r}), which has '
                    f'{len(classes)} classes ({", ".join(map(str, classes[:3]))}, ...). '
                    'Set num_classes of every head to the dataset\'s (the COCO-Stuff '
                    'configs write num_classes=_base_.num_classes).')


def with_run_seed(dataloader, seed):
    """A dataloader config whose ``ADE20KSubsetDataset`` (also inside wrappers:
    ``dataset=`` or ``datasets=[...]``) draws its subset with the run's seed when the
    config leaves ``subset_seed`` unset, as the InternVL authors' few-shot runs drew
    theirs with the seed of the run. Only the dicts on the way are copied: a built
    dataset object passes through as it is, and so does anything else."""
    if seed is None:
        return dataloader

    def fill(ds):
        if isinstance(ds, (list, tuple)):
            return type(ds)(fill(d) for d in ds)
        if not isinstance(ds, dict):
            return ds
        ds = type(ds)(ds)  # a shallow copy: the config itself stays as it was
        kind = ds.get('type')
        if getattr(kind, '__name__', kind) in ('ADE20KSubsetDataset',
                                               'mmseg.ADE20KSubsetDataset') \
                and ds.get('subset_seed') is None:
            ds['subset_seed'] = int(seed)
        for key in ('dataset', 'datasets'):
            if key in ds:
                ds[key] = fill(ds[key])
        return ds

    if not isinstance(dataloader, dict) or 'dataset' not in dataloader:
        return dataloader
    dataloader = type(dataloader)(dataloader)
    dataloader['dataset'] = fill(dataloader['dataset'])
    return dataloader


def warn_if_decay_misses_the_end(cfg) -> None:
    """Log a warning when an iteration-based PolyLR / CosineAnnealingLR with a stated
    ``end`` does not end with the run: our recipes state the poly decay's end
    (``max_iters + 1``, mmcv's poly, which reaches 0 at ``max_iters``), so a run
    lengthened or shortened with ``--cfg-options train_cfg.max_iters=N`` alone would
    otherwise stop half way down the decay, or sit at its final lr for the rest."""
    max_iters = (cfg.get('train_cfg') or {}).get('max_iters')
    schedulers = cfg.get('param_scheduler') or []
    for s in [schedulers] if isinstance(schedulers, dict) else schedulers:
        if not (isinstance(s, dict) and not s.get('by_epoch', True) and max_iters
                and s.get('type') in ('PolyLR', 'CosineAnnealingLR') and 'end' in s):
            continue
        if s['end'] not in (max_iters, max_iters + 1):  # mmengine's / mmcv's end
            print_log(f"{s['type']} ends at iteration {s['end'] - 1} but the run has "
                      f'max_iters={max_iters}: its lr will not follow the schedule to '
                      f'the end of the run; set its end to max_iters + 1 '
                      f"(--cfg-options param_scheduler.<i>.end={max_iters + 1})",
                      logger='current', level=logging.WARNING)


def drop_schedulers_after_training(cfg, logger=None) -> None:
    """Remove iteration-based schedulers without ``end`` that begin at or after
    ``train_cfg.max_iters``.

    mmengine ends a scheduler without ``end`` at ``max_iters``, and refuses one that
    begins at or after it (a smoke run shorter than a warm-up, ``--cfg-options
    train_cfg.max_iters=2``: "end should be larger than begin"); such a scheduler
    would never act, so it is dropped here instead."""
    train_cfg = cfg.get('train_cfg') or {}
    max_iters = train_cfg.get('max_iters')
    schedulers = cfg.get('param_scheduler')
    if not max_iters or not schedulers:
        return
    single = isinstance(schedulers, dict)
    kept = [s for s in ([schedulers] if single else schedulers)
            if not (isinstance(s, dict) and not s.get('by_epoch', True)
                    and 'end' not in s and s.get('begin', 0) >= max_iters)]
    if len(kept) != (1 if single else len(schedulers)):
        cfg.param_scheduler = kept


class InternViTRunner(Runner):
    """mmengine's ``Runner`` with safe, strict checkpoint loading and CPU-only
    distributed runs (see the module doc)."""

    trust_checkpoint = False

    @classmethod
    def from_cfg(cls, cfg):
        """The runner for ``cfg``: this one, or :class:`InternViTFlexibleRunner` when the
        config has a ``strategy`` (mmengine's plain ``Runner`` would ignore it and train
        a 6B model without ZeRO). One ``runner_type`` serves both kinds of config, so a
        DeepSpeed leaf only adds its strategy base."""
        if cfg.get('strategy'):
            return InternViTFlexibleRunner.from_cfg(cfg)
        check_num_classes(cfg)
        cfg = copy.deepcopy(cfg)
        adapt_cfg_for_cpu(cfg)
        drop_schedulers_after_training(cfg)
        use_atomic_checkpoint_hook(cfg)  # the new checkpoint before removing the old
        warn_if_decay_misses_the_end(cfg)
        runner = super().from_cfg(cfg)
        runner.trust_checkpoint = trust_from_cfg(cfg)
        return runner

    def load_checkpoint(self, filename: str, map_location='cpu', strict: bool = False,
                        revise_keys=None):
        # mmengine loads with strict=False (a mismatch is a log warning) through
        # torch.load's defaults; here the file is read with the allow-list and every
        # key must fit (``strict`` and ``revise_keys`` are accepted for the signature: every
        # key must fit, and a DDP ``module.`` prefix is dropped).
        model = self.model
        # DDP wrappers and test-time-augmentation models hold the model as .module (as
        # mmengine's own loader unwraps them)
        while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
            model = model.module
        if map_location == 'default':
            map_location = 'cpu'
        checkpoint = load_plain_checkpoint(model, filename, map_location=map_location,
                                           trust=self.trust_checkpoint)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        # written as <filename>.part and renamed when complete (checkpoint_files.py)
        with portable_history_buffers():  # loadable with weights_only=True
            return save_atomically(super().save_checkpoint, out_dir, filename, *args,
                                   **kwargs)

    def load_or_resume(self) -> None:
        _pick_complete_checkpoint(self)
        return super().load_or_resume()

    @staticmethod
    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        # the loops pass the run's seed: few-shot subsets without a seed of their own
        # take it
        return Runner.build_dataloader(with_run_seed(dataloader, seed), seed=seed,
                                       diff_rank_seed=diff_rank_seed)


class InternViTFlexibleRunner(FlexibleRunner):
    """mmengine's ``FlexibleRunner`` for DeepSpeed InternViT runs (see the module doc)."""

    trust_checkpoint = False

    @classmethod
    def from_cfg(cls, cfg) -> 'InternViTFlexibleRunner':
        if not cfg.get('strategy'):
            raise ValueError(f'runner_type={FLEXIBLE!r} needs a `strategy` in the config '
                             '(inherit one of configs/_base_/deepspeed/*.py)')
        check_num_classes(cfg)
        cfg = copy.deepcopy(cfg)
        adapt_cfg_for_cpu(cfg)
        drop_schedulers_after_training(cfg)
        use_atomic_checkpoint_hook(cfg)  # the new checkpoint before removing the old
        warn_if_decay_misses_the_end(cfg)
        load_from = cfg.get('load_from')
        if load_from and not cfg.get('resume') and osp.isfile(load_from):
            # a plain checkpoint goes in before DeepSpeed wraps the model (mmengine#1499)
            cfg.strategy['load_from'] = load_from
        cfg.strategy.setdefault('trust_checkpoint', trust_from_cfg(cfg))
        runner = super().from_cfg(cfg)
        runner.trust_checkpoint = trust_from_cfg(cfg)
        return runner

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        # every rank writes its shards into <filename>.part/, renamed when all are done
        with portable_history_buffers():  # loadable with weights_only=True
            return save_atomically(super().save_checkpoint, out_dir, filename, *args,
                                   distributed=True, **kwargs)

    def load_or_resume(self) -> None:
        _pick_complete_checkpoint(self)
        return super().load_or_resume()

    @staticmethod
    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        return FlexibleRunner.build_dataloader(with_run_seed(dataloader, seed), seed=seed,
                                               diff_rank_seed=diff_rank_seed)

    def _plain_runner(self) -> InternViTRunner:
        cfg = copy.deepcopy(self.cfg)
        cfg.pop('strategy', None)
        cfg.runner_type = PLAIN
        cfg.resume = False
        if self._load_from and osp.isdir(self._load_from):
            raise IsADirectoryError(
                f'{self._load_from} is a DeepSpeed checkpoint directory: consolidate it '
                'first: python tools/model_converters/consolidate_zero_checkpoint.py '
                f'{self._load_from} plain.pth')
        return InternViTRunner.from_cfg(cfg)

    def test(self) -> dict:
        """Evaluate on the plain runner: evaluation needs no ZeRO sharding, and its
        checkpoint is a consolidated plain file."""
        return self._plain_runner().test()

    def val(self) -> dict:
        return self._plain_runner().val()
