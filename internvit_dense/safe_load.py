# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""Reading run checkpoints without running code from them.

torch >= 2.6 unpickles ``torch.load`` files with ``weights_only=True`` by default: only
tensors, containers and an allow-list of types may be rebuilt, so a downloaded ``.pth``
cannot run code when it is read. mmengine's own run checkpoints hold a few types beyond
torch's list: the message hub's ``HistoryBuffer`` and the numpy arrays and scalars it and
``meta`` carry. :data:`RUN_CHECKPOINT_GLOBALS` are exactly those; importing this package
adds them to torch's allow-list (``torch.serialization.add_safe_globals``), so every
loader in the process (mmengine's ``load_from`` / ``resume``, mmseg's and mmdet's
``init_model`` and inferencers) reads our run checkpoints safely. Nothing else is
changed: mmengine's loaders are not replaced.

A checkpoint that needs any other global is refused with :class:`UnsafeCheckpointError`,
which names the file and the globals. Loading it anyway is an explicit opt-in for a file
the user trusts: ``--trust-checkpoint`` on our tools, ``trust_checkpoint = True`` in a
config (also through ``--cfg-options`` of mmseg's and mmdet's tools).

mmengine pickles a ``HistoryBuffer`` with the class's statistics functions in its state,
which a pickle can only rebuild through ``builtins.getattr``, a global no safe loader
may allow (it reaches anything). Our runners therefore save checkpoints inside
:func:`portable_history_buffers`, which leaves those functions out (``HistoryBuffer``'s
own ``__setstate__`` restores the defaults); a checkpoint written by mmengine's plain
``Runner`` needs ``--trust-checkpoint`` once.
"""
import contextlib
import copyreg
import os.path as osp
import pickle
from typing import Callable, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

TRUST_HINT = ('If you trust this file (it runs code when loaded), pass '
              '--trust-checkpoint to tools/train.py, test.py or infer.py, or set '
              '`trust_checkpoint = True` in the config (--cfg-options trust_checkpoint=True '
              "with mmseg's / mmdet's tools)")


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs globals outside the allow-list to be unpickled."""


class CorruptCheckpointError(ValueError):
    """A checkpoint file cannot be read: empty, cut off, or not a checkpoint."""


def describe_unreadable(filename: str) -> str:
    """What is wrong with a torch file that does not load, from its bytes alone:
    empty, a zip (torch's format) cut off before its directory (half-written or
    copied incompletely), a zip whose members do not unpack, a legacy pickle, or
    something else (its first bytes)."""
    import zipfile
    size = osp.getsize(filename)
    if size == 0:
        return 'it is empty (0 bytes): a save that never wrote, or a failed copy'
    with open(filename, 'rb') as f:
        head = f.read(8)
    if head.startswith(b'PK'):
        try:
            with zipfile.ZipFile(filename) as z:
                bad = z.testzip() if size < (1 << 30) else None
        except zipfile.BadZipFile:
            return (f'it is a torch zip cut off at {size} bytes (no central directory): '
                    'half-written or copied incompletely')
        if bad is not None:
            return f'its zip member {bad} is corrupt (CRC mismatch)'
        return 'it is a zip archive but not a torch checkpoint'
    if head[:1] == b'\x80':
        return ('it is a legacy (pre-zip) pickle file that does not unpickle: '
                'truncated, or written by something other than torch.save')
    return f'it is not a torch checkpoint (it starts with {head!r})'


def _read_error(filename: str, exc: BaseException) -> CorruptCheckpointError:
    return CorruptCheckpointError(
        f'cannot read checkpoint {filename}: {describe_unreadable(filename)} '
        f'({type(exc).__name__}: {exc})')


def _numpy_globals() -> List[Union[Callable, Tuple[Callable, str]]]:
    """The numpy callables that rebuild arrays and scalars, under the module names
    pickles written by numpy 1.x (``numpy.core``) and 2.x (``numpy._core``) use."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    found: List[Union[Callable, Tuple[Callable, str]]] = [np.ndarray, np.dtype]
    for name in ('_reconstruct', 'scalar'):
        fn = getattr(multiarray, name)
        found += [fn, (fn, f'numpy.core.multiarray.{name}'),
                  (fn, f'numpy._core.multiarray.{name}')]
    # numpy >= 1.25 pickles a dtype through its class (numpy.dtypes.Float64DType, ...)
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        for kind in ('Float16', 'Float32', 'Float64', 'Int8', 'Int16', 'Int32', 'Int64',
                     'UInt8', 'UInt16', 'UInt32', 'UInt64', 'Bool'):
            cls = getattr(dtypes, f'{kind}DType', None)
            if cls is not None:
                found.append(cls)
    return found


#: Exactly what mmengine's run checkpoints, our consolidated DeepSpeed files and our
#: extracted backbones need beyond torch's own allow-list.
RUN_CHECKPOINT_GLOBALS = [HistoryBuffer] + _numpy_globals()


def _reduce_history_buffer(buf: HistoryBuffer):
    state = {k: v for k, v in buf.__dict__.items() if k != 'statistics_methods'}
    return copyreg.__newobj__, (HistoryBuffer, ), state


@contextlib.contextmanager
def portable_history_buffers():
    """While it is active, ``HistoryBuffer`` pickles without the statistics functions
    that mmengine's ``__getstate__`` adds (their pickle needs ``builtins.getattr``).
    Only the pickling of that one class changes, and only while a checkpoint is saved;
    ``HistoryBuffer.__setstate__`` registers the default statistics on load."""
    previous = copyreg.dispatch_table.get(HistoryBuffer)
    copyreg.pickle(HistoryBuffer, _reduce_history_buffer)
    try:
        yield
    finally:
        if previous is None:
            copyreg.dispatch_table.pop(HistoryBuffer, None)
        else:
            copyreg.dispatch_table[HistoryBuffer] = previous


def allow_run_checkpoint_types() -> None:
    torch.serialization.add_safe_globals(RUN_CHECKPOINT_GLOBALS)


def unsafe_globals(filename: str) -> List[str]:
    """Globals a (zip-format) torch file needs beyond the allow-list, read without
    unpickling it."""
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    except Exception:  # not a zip-format torch file: torch.load reports it itself
        return []
    allowed = set(torch.serialization.get_safe_globals())
    names = set()
    for g in allowed:
        if isinstance(g, tuple):
            names.add(g[1])
        else:
            names.add(f'{g.__module__}.{g.__qualname__}')
    return [g for g in found if g not in names]


def _unsafe_error(filename: str, found: List[str]) -> UnsafeCheckpointError:
    note = ''
    if found == ['builtins.getattr']:
        note = (" (mmengine's own Runner writes HistoryBuffer's statistics functions "
                'that way; our runners do not)')
    return UnsafeCheckpointError(f'refused to load checkpoint {filename}: it needs '
                                 f'globals outside the allow-list: {", ".join(found)}'
                                 f'{note}. {TRUST_HINT}.')


def load_run_checkpoint(filename: str, map_location=None, trust: bool = False):
    """``torch.load`` of a run checkpoint: ``weights_only=True`` with the allow-list
    unless ``trust``; a refused file raises :class:`UnsafeCheckpointError` naming it and
    its globals, and nothing in it has run."""
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint not found: {filename}')
    try:
        return torch.load(filename, map_location=map_location, weights_only=not trust)
    except pickle.UnpicklingError as exc:
        found = [] if trust else unsafe_globals(filename)
        if not found:
            raise _read_error(filename, exc) from exc
        raise _unsafe_error(filename, found) from exc
    except MemoryError:
        raise
    except Exception as exc:
        # torch's reader errors ("PytorchStreamReader failed reading zip archive",
        # a KeyError from the legacy unpickler) do not name the file
        raise _read_error(filename, exc) from exc


def is_complete_torch_file(filename: str) -> bool:
    """A zip-format torch file whose central directory is there (so not cut off);
    cheap: the members are not read."""
    import zipfile
    try:
        with zipfile.ZipFile(filename):
            return osp.getsize(filename) > 0
    except (zipfile.BadZipFile, OSError):
        return False


def check_files_are_safe(files: List[str], trust: bool = False,
                         also_allowed: Tuple[str, ...] = ()) -> None:
    """Refuse (before anything unpickles them) torch files that are cut off or empty
    (:class:`CorruptCheckpointError` naming the file) or that need globals outside the
    allow-list and ``also_allowed`` (qualified names); for loaders that call
    ``torch.load(weights_only=False)`` themselves, such as DeepSpeed's checkpoint
    engine."""
    for file in files:
        if not is_complete_torch_file(file):
            raise CorruptCheckpointError(
                f'cannot read checkpoint {file}: {describe_unreadable(file)}')
    if trust:
        return
    for file in files:
        found = [g for g in unsafe_globals(file) if g not in also_allowed]
        if found:
            raise _unsafe_error(file, found)


def trust_from_cfg(cfg) -> bool:
    value = cfg.get('trust_checkpoint', False) if cfg is not None else False
    if not isinstance(value, bool):
        raise TypeError(f'trust_checkpoint must be True or False, got {value!r}')
    return value


def state_dict_of(checkpoint, filename: Optional[str] = None) -> dict:
    if not isinstance(checkpoint, dict):
        raise ValueError(f'checkpoint {filename} holds a {type(checkpoint).__name__}, '
                         'not a dict: no state dict')
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict):
        raise ValueError(f'checkpoint {filename}: state_dict is a {type(state).__name__}')
    return state
