# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""Checkpoints that an interrupted run cannot leave half-written, and a resume that
skips one if it finds it anyway.

mmengine writes ``iter_N.pth`` (or DeepSpeed's ``iter_N.pth/`` directory) in place and
then ``last_checkpoint``; a job killed during the write leaves a truncated newest
checkpoint that ``--resume`` then fails on. Here every checkpoint is written under
``<name>.part`` and renamed when complete (a rename within a directory is atomic on
POSIX file systems), and auto-resume takes the newest *complete* checkpoint of the work
dir, warning about every incomplete one it skips; ``last_checkpoint`` is one candidate
among the ``iter_*`` / ``epoch_*`` checkpoints, not trusted alone.
"""
import glob
import os
import os.path as osp
import re
import shutil
from typing import Callable, List, Optional, Tuple

from mmengine.dist import barrier, is_main_process
from mmengine.hooks import CheckpointHook

from ..safe_load import describe_unreadable, is_complete_torch_file

PART = '.part'
_NUMBERED = re.compile(r'^(iter|epoch)_(\d+)\.pth$')


def _remove(path: str) -> None:
    if osp.isdir(path):
        shutil.rmtree(path)
    elif osp.lexists(path):
        os.remove(path)


def save_atomically(save: Callable, out_dir: str, filename: str, *args,
                    distributed: bool = False, **kwargs):
    """``save(out_dir, filename + '.part', ...)`` then rename it to ``filename``.
    ``distributed``: every rank writes (DeepSpeed), so all ranks meet before the main
    process renames, and again after."""
    part = filename + PART
    part_path, final = osp.join(out_dir, part), osp.join(out_dir, filename)
    if is_main_process():
        _remove(part_path)  # a leftover of an earlier interrupted save
    if distributed:
        barrier()
    result = save(out_dir, part, *args, **kwargs)
    if distributed:
        barrier()
    if is_main_process() and osp.lexists(part_path):
        if osp.isdir(part_path) and osp.lexists(final):
            _remove(final)  # os.replace cannot replace a directory
        os.replace(part_path, final)
    if distributed:
        barrier()
    return result


def checkpoint_problem(path: str) -> Optional[str]:
    """None for a complete checkpoint (a torch file with its zip directory, or a
    DeepSpeed directory whose ``*.pt`` files all are), else what is wrong."""
    if osp.isdir(path):
        files = sorted(glob.glob(osp.join(path, '*.pt')))
        if not glob.glob(osp.join(path, '*model_states.pt')):
            return 'a directory without *model_states.pt (an interrupted DeepSpeed save)'
        for f in files:
            if not is_complete_torch_file(f):
                return f'{osp.basename(f)}: {describe_unreadable(f)}'
        return None
    if not osp.isfile(path):
        return 'it does not exist'
    if not is_complete_torch_file(path):
        return describe_unreadable(path)
    return None


def _number(path: str) -> int:
    m = _NUMBERED.match(osp.basename(path.rstrip('/')))
    return int(m.group(2)) if m else -1


def latest_complete_checkpoint(work_dir: str) -> Tuple[Optional[str], List[str]]:
    """``(newest complete checkpoint or None, [warnings about skipped ones])``, from
    ``last_checkpoint`` and the ``iter_N`` / ``epoch_N`` checkpoints of ``work_dir``."""
    candidates = {osp.abspath(p) for p in glob.glob(osp.join(work_dir, '*.pth'))
                  if _NUMBERED.match(osp.basename(p))}
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
        if named:
            candidates.add(osp.abspath(named if osp.isabs(named)
                                       else osp.join(work_dir, named)))
    warnings = []
    for path in sorted(candidates, key=lambda p: (_number(p), p), reverse=True):
        problem = checkpoint_problem(path)
        if problem is None:
            return path, warnings
        warnings.append(f'skipping incomplete checkpoint {path}: {problem}')
    return None, warnings


def write_text_atomically(path: str, text: str) -> None:
    with open(path + PART, 'w') as f:
        f.write(text)
    os.replace(path + PART, path)


class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` in an order that an interruption cannot break.

    mmengine's removes the oldest kept checkpoint *before* writing the new one (with
    ``max_keep_ckpts=1`` a job killed during the save has no checkpoint left) and
    writes ``last_checkpoint`` in place. Here the new checkpoint is written first (our
    runners write it as ``.part`` and rename it), then ``last_checkpoint`` is replaced
    atomically, and only then is the oldest removed. Everything else (arguments,
    intervals, best checkpoints, the kept-checkpoint bookkeeping in the message hub)
    is mmengine's. The runners use it for ``default_hooks.checkpoint`` of type
    ``CheckpointHook``.
    """

    def _save_checkpoint_with_step(self, runner, step, meta):
        # the bookkeeping first, as mmengine's (a checkpoint records itself among the
        # kept ones, for a resumed run to remove it in turn); the removal last
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                            and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, ckpt_filename, self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta,
            by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        write_text_atomically(osp.join(runner.work_dir, 'last_checkpoint'),
                              self.last_ckpt)
        if outdated is not None:
            path = self.file_backend.join_path(self.out_dir,
                                               self.filename_tmpl.format(outdated))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # DeepSpeed's directories
                self.file_backend.rmtree(path)


def use_atomic_checkpoint_hook(cfg) -> bool:
    """Make ``default_hooks.checkpoint`` of type ``CheckpointHook`` an
    :class:`AtomicCheckpointHook` (same arguments); True if it did."""
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    if not isinstance(hook, dict):
        return False
    kind = hook.get('type')
    if kind in ('CheckpointHook', 'mmengine.CheckpointHook') or kind is CheckpointHook:
        hook['type'] = 'AtomicCheckpointHook'  # registered by register_core
        return True
    return False
