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
        named = open(pointer).read().strip()
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
