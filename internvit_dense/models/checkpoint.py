# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""Reading released InternViT checkpoints into :class:`InternViT`.

The outside key layouts are mapped in one place (:mod:`.layouts`):

* Hugging Face ``InternVisionModel`` (``embeddings.*``, ``encoder.layers.{i}.*``), as a
  directory or a file, safetensors or ``.bin``, sharded with an ``*.index.json`` or not,
  and with the ``vision_model.`` prefix of InternVL chat checkpoints;
* the older mmseg-0.x ``.pth`` files of the InternVL authors (weights under ``module``,
  ``cls_token`` / ``pos_embed`` / ``patch_embed.proj`` / ``blocks.{i}`` / ``ls1.gamma``);
* this package's own names, as written by ``tools/model_converters/extract_backbone.py``;
* a Hugging Face model id (``OpenGVLab/InternViT-6B-224px``), resolved through the local
  hub cache or the hub (:mod:`.hub`).

Sharded checkpoints are read lazily: only the shards holding vision weights are opened,
so pointing at a 26B InternVL chat model reads just its vision tower.
"""
import json
import logging
import os
import os.path as osp
import pickle
import re
import struct
import sys
from collections import defaultdict
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log

from ..safe_load import describe_unreadable
from .hub import looks_like_hub_id, resolve_hub_checkpoint
from .layouts import HF_FILES, convert_key, select_vision_keys, unconverted_hint

__all__ = ['CheckpointMismatchError', 'CheckpointReader', 'load_pretrained_into',
           'resize_pos_embed_grid', 'resize_patch_kernel', 'convert_key',
           'select_vision_keys', 'summarize_keys']
_WRAPPER_KEYS = ('module', 'state_dict', 'model')
_ST_DTYPES = {'BF16': torch.bfloat16, 'F16': torch.float16, 'F32': torch.float32,
              'F64': torch.float64}


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's keys or shapes do not fit the model it is loaded into."""


# --------------------------------------------------------------------------- reading
class CheckpointReader:
    """Key listing and lazy tensor access over every supported file layout."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._files: Dict[str, str] = {}  # key -> file holding it
        self._opened: Dict[str, object] = {}
        self._eager: Optional[Dict[str, torch.Tensor]] = None
        self._index: Optional[str] = None
        self._headers: Dict[str, Tuple[int, dict]] = {}
        if '://' in path:  # URLs and other mmengine backends: read eagerly
            from mmengine.runner import CheckpointLoader
            self._set_eager(CheckpointLoader.load_checkpoint(path, map_location='cpu'))
            return
        if not osp.exists(path):
            if not looks_like_hub_id(path):
                raise FileNotFoundError(f'InternViT checkpoint not found: {path}')
            path = resolve_hub_checkpoint(path)
        if osp.isdir(path):
            found = [f for f in HF_FILES if osp.isfile(osp.join(path, f))]
            if not found:
                raise FileNotFoundError(
                    f'no checkpoint in directory {path}: expected one of {HF_FILES}')
            path = osp.join(path, found[0])
        if path.endswith('.index.json'):
            self._read_index(path)
        elif path.endswith('.safetensors'):
            self._files = dict.fromkeys(self._open(path).keys(), path)
        else:
            self._set_eager(_torch_load(path))

    def _read_index(self, index_path: str) -> None:
        try:
            with open(index_path) as f:
                weight_map = json.load(f)['weight_map']
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f'cannot read the shard index {index_path}: expected JSON '
                             f'with a "weight_map" ({exc!r})') from exc
        root = osp.dirname(index_path)
        self._index = index_path
        self._files = {k: osp.join(root, v) for k, v in weight_map.items()}
        # Shards are checked when read: a chat checkpoint from the hub cache holds only
        # the shards with vision weights.

    def _set_eager(self, obj) -> None:
        if not isinstance(obj, dict):
            raise ValueError(f'checkpoint {self.path} holds a {type(obj).__name__}, '
                             'not a dict of tensors')
        # Unwrap {'module': ...} (InternVL's old .pth), {'state_dict': ...} (mmengine).
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), dict) and not any(
                    torch.is_tensor(v) for v in obj.values()):
                obj = obj[key]
                break
        self._eager = {k: v for k, v in obj.items() if torch.is_tensor(v)}

    def _open(self, file: str):
        if file not in self._opened:
            if not osp.isfile(file):
                raise FileNotFoundError(f'shard {file} listed in {self._index} is missing')
            try:
                if file.endswith('.safetensors'):
                    from safetensors import safe_open
                    self._opened[file] = safe_open(file, framework='pt', device='cpu')
                else:
                    self._opened[file] = _torch_load(file)
            # safetensors raises its own SafetensorError (an Exception subclass) on a
            # corrupt header; every failure is reported with the file at fault.
            except Exception as exc:
                raise ValueError(f'cannot read checkpoint file {file}: {exc}') from exc
        return self._opened[file]

    def keys(self) -> List[str]:
        return list(self._eager if self._eager is not None else self._files)

    def location(self, key: str) -> Tuple[str, int]:
        """(file, byte offset) of a tensor, for reading files in order."""
        file = self._files.get(key, '')
        header = self._safetensors_header(file)
        return file, header[1][key]['data_offsets'][0] if header else 0

    def _safetensors_header(self, file: str) -> Optional[Tuple[int, dict]]:
        """(data start, header) of a safetensors file that safetensors has opened (and
        so validated) already; None for other files."""
        if file not in self._headers:
            if not file.endswith('.safetensors') or file not in self._opened:
                return None
            with open(file, 'rb') as f:
                size = struct.unpack('<Q', f.read(8))[0]
                self._headers[file] = (8 + size, json.loads(f.read(size)))
        return self._headers[file]

    def read_into(self, key: str, target: torch.Tensor) -> bool:
        """Read ``key`` from its safetensors file straight into ``target``'s memory when
        dtype and shape match: no intermediate tensor, and the file's pages are not
        mapped into the process (they stay droppable page cache). False when this does
        not apply (other formats, a cast, a GPU target): the caller copies instead."""
        if self._eager is not None or key not in self._files:
            return False
        header = self._safetensors_header(self._files[key])
        info = header[1].get(key) if header else None
        if (info is None or sys.byteorder != 'little' or target.device.type != 'cpu'
                or not target.is_contiguous()
                or _ST_DTYPES.get(info['dtype']) != target.dtype
                or list(info['shape']) != list(target.shape)):
            return False
        start, end = info['data_offsets']
        buf = memoryview(target.detach().reshape(-1).view(torch.uint8).numpy())
        if end - start != len(buf):
            return False
        with open(self._files[key], 'rb', buffering=0) as f:
            f.seek(header[0] + start)
            done = 0
            while done < len(buf):  # one read() returns at most ~2 GB
                n = f.readinto(buf[done:])
                if not n:
                    raise ValueError(f'{self._files[key]} ends inside tensor {key}')
                done += n
        return True

    def close(self) -> None:
        """Drop the open files (and the mappings of safetensors files)."""
        self._opened.clear()
        self._headers.clear()

    def get(self, key: str) -> torch.Tensor:
        if self._eager is not None:
            return self._eager[key]
        handle = self._open(self._files[key])
        if isinstance(handle, dict):
            return handle[key]
        return handle.get_tensor(key)


def _torch_load(path: str):
    try:
        try:  # mmap keeps a multi-GB .bin out of RAM until a tensor is used
            return torch.load(path, map_location='cpu', weights_only=True, mmap=True)
        except RuntimeError as exc:
            if 'mmap' not in str(exc):
                raise
            return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f'checkpoint {path} contains pickled objects other than tensors, which '
            f'are not loaded for safety; re-save its state dict alone ({exc})') from exc
    except (RuntimeError, EOFError, OSError, KeyError) as exc:
        raise ValueError(f'cannot read checkpoint file {path}: '
                         f'{describe_unreadable(path)} ({exc})') from exc


# --------------------------------------------------------------------------- adapting
def resize_pos_embed_grid(pos_embed: torch.Tensor, src_grid: Tuple[int, int],
                          dst_grid: Tuple[int, int]) -> torch.Tensor:
    """Bicubically resize the patch rows of a (1, 1 + h*w, C) position embedding; the
    class-token row is kept as it is."""
    if tuple(src_grid) == tuple(dst_grid):
        return pos_embed
    cls_pos, grid = pos_embed[:, :1], pos_embed[:, 1:]
    C = grid.shape[-1]
    grid = grid.reshape(1, *src_grid, C).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=dst_grid, mode='bicubic', align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, C).to(pos_embed.dtype)
    return torch.cat([cls_pos, grid], dim=1)


def resize_patch_kernel(weight: torch.Tensor, size: Tuple[int, int],
                        method: str = 'pinv') -> torch.Tensor:
    """Resize a (C_out, C_in, k, k) patch-embedding kernel.

    ``'pinv'``: pseudo-inverse resizing (FlexiViT, Beyer et al. 2023): the new kernel
    applied to a bilinearly resized patch gives the same response as the old kernel
    on the original patch. ``'bicubic'``: ``F.interpolate(mode='bicubic',
    align_corners=False)`` of the kernel as an image (computed in fp32), the InternVL
    authors' 14 -> 16 conversion."""
    old = tuple(weight.shape[-2:])
    if old == tuple(size):
        return weight
    if method == 'bicubic':
        return F.interpolate(weight.float(), size=tuple(size), mode='bicubic',
                             align_corners=False).to(weight.dtype)
    n_old, n_new = old[0] * old[1], size[0] * size[1]
    basis = torch.eye(n_old, dtype=torch.float64).reshape(n_old, 1, *old)
    resize = F.interpolate(basis, size=size, mode='bilinear', align_corners=False)
    resize = resize.reshape(n_old, n_new).T  # (n_new, n_old): old patch -> new patch
    new = weight.double().reshape(-1, n_old) @ torch.linalg.pinv(resize.T).T
    return new.reshape(*weight.shape[:2], *size).to(weight.dtype)


def _grid_of(num_tokens: int, name: str, path: str) -> Tuple[int, int]:
    side = int(round(num_tokens**0.5))
    if side * side != num_tokens:
        raise CheckpointMismatchError(
            f'{name} in {path} has {num_tokens} patch positions, not a square grid')
    return side, side


# --------------------------------------------------------------------------- loading
def load_pretrained_into(model,
                         checkpoint: str,
                         prefix: Optional[str] = 'auto',
                         ignore_extra_keys: bool = False,
                         truncate_blocks: bool = False,
                         patch_resize: str = 'pinv') -> None:
    """Load released InternViT weights into ``model`` strictly.

    Every parameter must be found with a matching shape (after resizing the position
    grid and the patch kernel); otherwise :class:`CheckpointMismatchError` lists the
    missing keys, unexpected keys and shape mismatches. Keys outside any vision layout
    (e.g. the projector or language model of InternVL checkpoints) are errors too,
    unless ``ignore_extra_keys=True`` turns them into a logged warning.

    ``truncate_blocks=True`` loads the first ``model.num_layers`` blocks of a deeper
    checkpoint and logs which blocks were left out: the InternVL authors' dense runs of
    InternViT-6B-448px-V1-0 (48 blocks) built 45 blocks and loaded the file with
    ``strict=False``, silently using its first 45; here that is a stated, logged choice.
    Without it, the extra blocks are unexpected keys (an error).

    ``patch_resize`` is how a patch-embedding kernel of another size (14 -> 16 for the
    patch-16 recipes) is resized: ``'pinv'``, FlexiViT's pseudo-inverse resize (a
    patch resized with the image gives the same embedding), or ``'bicubic'``, plain
    bicubic interpolation of the kernel, what the InternVL authors' detection / PIIP /
    adapter code does when it loads the 14-px weights. A model without a class token
    (``with_cls_token=False``) skips the checkpoint's, with a log line.
    """
    if patch_resize not in ('pinv', 'bicubic'):
        raise ValueError(f"patch_resize must be 'pinv' or 'bicubic', got {patch_resize!r}")
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"init_cfg 'checkpoint' must be a path, got {checkpoint!r}")
    if not isinstance(truncate_blocks, bool):
        raise TypeError(f'truncate_blocks must be True or False, got {truncate_blocks!r}')
    path = os.fspath(checkpoint)
    reader = CheckpointReader(path)
    mapping, extra = select_vision_keys(reader.keys(), prefix)
    if not mapping:
        hint = unconverted_hint(reader.keys())
        hint = (f"; {hint}, or load its backbone with prefix='backbone.' and "
                'ignore_extra_keys=True') if hint else ''
        raise CheckpointMismatchError(
            f'no InternViT weights found in {path} (prefix={prefix!r}); first keys: '
            f'{reader.keys()[:5]}{hint}')
    if getattr(model, 'cls_token', None) is None and 'cls_token' in mapping:
        print_log(f'InternViT: the model has no class token (with_cls_token=False); '
                  f'{mapping.pop("cls_token")} of {path} is not used', logger='current')
    depth = _block_count(mapping)
    if depth > model.num_layers and truncate_blocks:
        dropped = [n for n in mapping if _block_of(n) >= model.num_layers]
        for name in dropped:
            del mapping[name]
        print_log(f'InternViT: {path} has {depth} blocks and the model {model.num_layers}; '
                  f'loading blocks 0-{model.num_layers - 1} and leaving blocks '
                  f'{model.num_layers}-{depth - 1} out (truncate_blocks=True, '
                  f'{len(dropped)} tensors not loaded)', logger='current',
                  level=logging.WARNING)  # the model is not the whole checkpoint
    elif truncate_blocks and depth <= model.num_layers:
        print_log(f'InternViT: truncate_blocks=True, but {path} has {depth} blocks, no '
                  f'more than the model\'s {model.num_layers}: nothing is left out',
                  logger='current')
    targets = model.state_dict()
    missing = sorted(set(targets) - set(mapping))
    unexpected = sorted(set(mapping) - set(targets))
    mismatched, loaded, as_stored = [], {}, set()
    for name in sorted(set(mapping) & set(targets)):
        tensor, target = reader.get(mapping[name]), targets[name]
        stored = tensor  # from safetensors: a lazy view of the mapped file, not read yet
        if name == 'pos_embed' and tensor.dim() == 3 and tensor.shape[-1] == target.shape[-1] \
                and tensor.shape[1] != target.shape[1]:
            src = _grid_of(tensor.shape[1] - 1, mapping[name], path)
            tensor = resize_pos_embed_grid(tensor, src, model.grid_size)
            print_log(f'InternViT: resized position embedding from grid {src} to '
                      f'{model.grid_size} (bicubic)', logger='current')
        elif name == 'patch_embed.weight' and tensor.dim() == 4 \
                and tensor.shape[:2] == target.shape[:2] and tensor.shape != target.shape:
            old = tuple(tensor.shape[-2:])
            tensor = resize_patch_kernel(tensor, tuple(target.shape[-2:]), patch_resize)
            print_log(f'InternViT: resized patch-embedding kernel from {old} to '
                      f'{tuple(target.shape[-2:])} ('
                      f'{"pseudo-inverse" if patch_resize == "pinv" else "bicubic"} resize)',
                      logger='current')
        if tensor.shape != target.shape:
            mismatched.append(f'{name} ({mapping[name]}): checkpoint '
                              f'{tuple(tensor.shape)} vs model {tuple(target.shape)}')
        else:
            loaded[name] = tensor
            if tensor is stored:
                as_stored.add(name)
    problems = []
    if missing:
        problems.append(f'missing keys ({len(missing)}): {summarize_keys(missing)}')
    if unexpected:
        problems.append(f'unexpected keys ({len(unexpected)}): '
                        f'{summarize_keys(mapping[k] for k in unexpected)}')
        if depth > model.num_layers:
            problems.append(
                f'the checkpoint has {depth} blocks and the model {model.num_layers}: '
                f'load the matching preset, or set truncate_blocks=True in init_cfg to '
                f'use its first {model.num_layers} blocks (as the InternVL authors\' '
                'V1-0 dense configs did)')
    if mismatched:
        problems.append(f'shape mismatches ({len(mismatched)}): ' +
                        '; '.join(mismatched[:10]) +
                        (f'; ... and {len(mismatched) - 10} more'
                         if len(mismatched) > 10 else ''))
    if extra and not ignore_extra_keys:
        problems.append(f'keys outside the vision encoder ({len(extra)}): '
                        f'{summarize_keys(extra)} (set ignore_extra_keys=True in '
                        'init_cfg to load the vision encoder alone)')
    if problems:
        raise CheckpointMismatchError(f'checkpoint {path} does not fit '
                                      f'{describe(model)}:\n  ' + '\n  '.join(problems))
    if extra:
        print_log(f'InternViT: ignored {len(extra)} keys outside the vision encoder '
                  f'in {path}: {summarize_keys(extra)}', logger='current',
                  level=logging.WARNING)
    # Tensor by tensor, file by file in file order, each dropped once copied: no
    # second copy of the state dict and no dtype transient of the whole model. Tensors
    # taken as they are from safetensors files are read straight into the parameter;
    # the rest (resized, cast, other formats) are copied from the lazily read tensor.
    count = len(loaded)
    with torch.no_grad():
        for name in sorted(loaded, key=lambda n: reader.location(mapping[n])):
            tensor = loaded.pop(name)
            if not (name in as_stored and reader.read_into(mapping[name], targets[name])):
                targets[name].copy_(tensor)
    reader.close()
    print_log(f'InternViT: loaded {count} tensors from {path}', logger='current')


def unconverted_layout_guard(hint: Callable[[Iterable[str]], str]):
    """A ``load_state_dict`` pre-hook that refuses, with ``hint``'s sentence (naming the
    converter), a state dict in an unconverted upstream layout, whatever loader it
    comes through (mmseg's and mmdet's ``init_model`` load with ``strict=False`` and
    would load half of it). Only keys the model does not have count: a head of the
    model's own may carry an upstream-looking name (mmseg's SETRUPHead has a ``norm``)."""
    def guard(module, state_dict, prefix, *args) -> None:
        own = module.state_dict()
        message = hint(k[len(prefix):] for k in state_dict
                       if k.startswith(prefix) and k[len(prefix):] not in own)
        if message:
            raise CheckpointMismatchError(f'cannot load this checkpoint into '
                                          f'{type(module).__name__}: {message}')
    return guard


_BLOCK = re.compile(r'^blocks\.(\d+)\.')


def _block_of(name: str) -> int:
    """Block index of one of our parameter names; -1 outside the blocks."""
    m = _BLOCK.match(name)
    return int(m.group(1)) if m else -1


def _block_count(mapping: Dict[str, str]) -> int:
    return 1 + max((_block_of(n) for n in mapping), default=-1)


def describe(model) -> str:
    a = model.arch_settings
    return (f"InternViT(embed_dims={a['embed_dims']}, num_layers={a['num_layers']}, "
            f"num_heads={a['num_heads']}, patch_size={a['patch_size']})")


def summarize_keys(keys: Iterable[str], limit: int = 12) -> str:
    """Compact listing: ``blocks.{0-47}.attn.qkv.weight`` instead of 48 lines."""
    groups: Dict[str, List[int]] = defaultdict(list)
    for key in keys:
        m = re.search(r'\.(\d+)\.', key)
        if m:
            groups[key[:m.start()] + '.{}.' + key[m.end():]].append(int(m.group(1)))
        else:
            groups[key] = []
    parts = []
    for pattern, idx in groups.items():
        parts.append(pattern.replace('{}', '{' + _ranges(sorted(idx)) + '}') if idx
                     else pattern)
    more = f', ... and {len(parts) - limit} more' if len(parts) > limit else ''
    return ', '.join(parts[:limit]) + more


def _ranges(values: List[int]) -> str:
    out, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            out.append(str(start) if start == v else f'{start}-{v}')
            start = None
    return ','.join(out)
