# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
import os.path as osp
from typing import Optional

from mmengine.dist import master_only
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


def _unwrap_dataset(dataset):
    while not hasattr(dataset, 'subset_files') and hasattr(dataset, 'dataset'):
        dataset = dataset.dataset
    return dataset


@HOOKS.register_module()
class RecordSubsetHook(Hook):
    """Write the training subset's file names to ``<work_dir>/train_subset.txt``, so a
    few-shot run records exactly which images it saw."""

    @master_only
    def before_train(self, runner) -> None:
        dataset = _unwrap_dataset(runner.train_dataloader.dataset)
        files = getattr(dataset, 'subset_files', None)
        if files:
            path = osp.join(runner.work_dir, 'train_subset.txt')
            with open(path, 'w') as f:
                f.write('\n'.join(files) + '\n')
            runner.logger.info(f'training subset ({len(files)} images) written to {path}')


@HOOKS.register_module()
class EvalBeforeTrainHook(Hook):
    """Evaluate the model once before the first training iteration, and report the
    metric before and after training when training ends.

    mmengine's train loops first evaluate after ``val_interval`` iterations; this gives
    the starting point a curve or a demo needs.

    Args:
        metric (str): key of the metric to report, e.g. ``'mIoU'``.
    """
    priority = 'LOW'  # after checkpoint loading / weight init

    def __init__(self, metric: str = 'mIoU') -> None:
        self.metric = metric
        self.before: Optional[float] = None
        self.latest: Optional[float] = None

    def before_train(self, runner) -> None:
        if runner.val_loop is None or runner.iter > 0:  # nothing to compare on resume
            return
        metrics = runner.val_loop.run()
        self.before = metrics.get(self.metric)

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        if metrics and self.metric in metrics:
            self.latest = metrics[self.metric]

    def after_train(self, runner) -> None:
        if self.before is not None and self.latest is not None:
            runner.logger.info(f'{self.metric} before training: {self.before:.2f}, '
                               f'after training: {self.latest:.2f}')
