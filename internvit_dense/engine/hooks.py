# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
import os.path as osp
import signal
import sys
import threading
from typing import Dict, Optional, Sequence, Union

import torch
from mmengine.dist import all_reduce, barrier, get_world_size, master_only
from mmengine.hooks import Hook

from .checkpoint_files import write_text_atomically


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


REQUEUE_EXIT_CODE = 75  # EX_TEMPFAIL: "try again"; tools/slurm_train.sh requeues on it


class PreemptionHook(Hook):
    """Save a complete checkpoint when the job is told to stop, then exit for a requeue.

    On ``signals`` (SIGTERM, which schedulers send before killing a job, and SIGUSR1,
    which slurm sends ``--signal=USR1@120`` seconds before the time limit) the handler
    only records the signal; at the end of the current iteration every rank agrees
    (one all-reduce of a flag per iteration, so a signal to any rank stops all), the
    run saves ``iter_<n>.pth`` through the runner (atomic, as every checkpoint, plain or
    DeepSpeed), points ``last_checkpoint`` at it, logs it, and exits with
    ``exit_code`` (75), on which ``tools/slurm_train.sh`` runs ``scontrol requeue``. The
    requeued job resumes with ``--resume`` from that iteration, not from the last
    interval checkpoint. The handlers are installed for the training only, and the
    previous ones put back after it.
    """
    priority = 'VERY_LOW'  # after the iteration's own hooks (the checkpoint hook)

    def __init__(self, signals=('SIGTERM', 'SIGUSR1'), exit_code: int = REQUEUE_EXIT_CODE):
        self.signals = [getattr(signal, s) if isinstance(s, str) else s for s in signals]
        self.exit_code = exit_code
        self.received = None
        self._previous = {}

    def _handler(self, signum, frame):
        self.received = signum

    def before_train(self, runner) -> None:
        if threading.current_thread() is not threading.main_thread():
            runner.logger.warning('PreemptionHook: not the main thread, no signal handlers')
            return
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handler)

    def after_train(self, runner) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def _stop_requested(self) -> bool:
        flag = self.received is not None
        if get_world_size() > 1:
            import torch.distributed as dist
            device = 'cuda' if dist.get_backend() == 'nccl' else 'cpu'
            t = torch.tensor([float(flag)], device=device)
            all_reduce(t, op='max')
            flag = bool(t.item())
        return flag

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if not self._stop_requested():
            return
        name = (signal.Signals(self.received).name if self.received is not None
                else 'a signal to another rank')
        filename = f'iter_{runner.iter + 1}.pth'
        path = osp.join(runner.work_dir, filename)
        if not osp.exists(path):  # the checkpoint hook may have saved this iteration
            runner.save_checkpoint(runner.work_dir, filename, by_epoch=False)
        if runner.rank == 0:
            write_text_atomically(osp.join(runner.work_dir, 'last_checkpoint'), path)
        runner.logger.info(f'{name}: saved {path} at iteration {runner.iter + 1}; '
                           f'exiting with status {self.exit_code} for a requeue '
                           '(resume with --resume)')
        # no rank leaves before the checkpoint is complete: a launcher that kills the
        # others when one exits (srun --kill-on-bad-exit, torchrun) must not cut it
        barrier()
        self.after_train(runner)  # the previous handlers back
        sys.exit(self.exit_code)
