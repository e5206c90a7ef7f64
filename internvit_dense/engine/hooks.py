# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
import os.path as osp
from typing import Dict, Optional, Sequence, Union

from mmengine.dist import master_only
from mmengine.hooks import Hook


def _unwrap_dataset(dataset):
    while not hasattr(dataset, 'subset_files') and hasattr(dataset, 'dataset'):
        dataset = dataset.dataset
    return dataset


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


class EvalBeforeTrainHook(Hook):
    """Evaluate the model once before the first training iteration, and report the
    metrics before and after training when training ends.

    mmengine's train loops first evaluate after ``val_interval`` iterations; this gives
    the starting point a curve or a demo needs. Skipped when resuming.

    Args:
        metric (str | Sequence[str]): keys of the metrics to report, e.g. ``'mIoU'`` or
            ``('coco/bbox_mAP', 'coco/segm_mAP')``.
    """
    priority = 'LOW'  # after checkpoint loading / weight init

    def __init__(self, metric: Union[str, Sequence[str]] = 'mIoU') -> None:
        self.metrics = (metric, ) if isinstance(metric, str) else tuple(metric)
        self.before: Dict[str, float] = {}
        self.latest: Dict[str, float] = {}

    def before_train(self, runner) -> None:
        if runner.val_loop is None or runner.iter > 0:  # nothing to compare on resume
            return
        results = runner.val_loop.run()
        self.before = {k: results[k] for k in self.metrics if k in results}
        missing = [k for k in self.metrics if k not in results]
        if missing:
            runner.logger.warning(f'before training the evaluator gave no {missing} '
                                  f'(it returned {sorted(results)})')

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self.latest.update({k: metrics[k] for k in self.metrics if k in (metrics or {})})

    def after_train(self, runner) -> None:
        for key in self.metrics:
            if key in self.before and key in self.latest:
                runner.logger.info(f'{key} before training: {self.before[key]:.4g}, '
                                   f'after training: {self.latest[key]:.4g}')
