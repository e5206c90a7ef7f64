# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""Hugging Face model ids as checkpoints: ``checkpoint='OpenGVLab/InternViT-6B-224px'``.

An id resolves through ``huggingface_hub``: the local cache first (``HF_HUB_CACHE`` /
``HF_HOME``, the hub's own ``models--ORG--NAME/snapshots/REV`` layout), then the network
unless ``HF_HUB_OFFLINE=1``. Only the files that hold vision weights are fetched: for a
sharded InternVL chat checkpoint, the index and the shards with ``vision_model.`` keys,
never the language model's. A local path of the same spelling always wins.
"""
import json
import os.path as osp
import re
from typing import List, Optional

from mmengine.logging import print_log

from .layouts import HF_FILES, select_vision_keys

_REPO_ID = re.compile(r'^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$')


def looks_like_hub_id(path: str) -> bool:
    """``ORG/NAME`` that is not a local path (a local file or folder always wins)."""
    return bool(_REPO_ID.match(path)) and not osp.exists(path) and not path.endswith(
        ('.pth', '.pt', '.bin', '.safetensors', '.json'))


def _hub():
    try:
        import huggingface_hub
    except ImportError as exc:  # pragma: no cover - a runtime requirement
        raise ImportError('a Hugging Face model id as checkpoint needs huggingface_hub '
                          '(pip install huggingface_hub)') from exc
    return huggingface_hub


def _offline() -> bool:
    return bool(_hub().constants.HF_HUB_OFFLINE)


def _cached(repo_id: str, filename: str, revision: Optional[str]) -> Optional[str]:
    hub = _hub()
    try:
        return hub.hf_hub_download(repo_id, filename, revision=revision,
                                   local_files_only=True)
    except (hub.errors.LocalEntryNotFoundError, hub.errors.EntryNotFoundError,
            FileNotFoundError):
        return None


def _download(repo_id: str, filename: str, revision: Optional[str]) -> str:
    path = _cached(repo_id, filename, revision)
    if path is not None:
        return path
    if _offline():
        raise FileNotFoundError(
            f'{filename} of Hugging Face model {repo_id!r} is not in the local cache and '
            'HF_HUB_OFFLINE=1 forbids downloading it')
    print_log(f'InternViT: downloading {filename} of {repo_id}', logger='current')
    return _hub().hf_hub_download(repo_id, filename, revision=revision)


def _vision_shards(index_path: str) -> List[str]:
    with open(index_path) as f:
        weight_map = json.load(f)['weight_map']
    mapping, _ = select_vision_keys(weight_map)
    return sorted({weight_map[k] for k in mapping.values()})


def _first_layout(repo_id: str, revision: Optional[str]) -> str:
    """Name of the checkpoint layout file the model has (cache first, then the hub)."""
    for name in HF_FILES:
        if _cached(repo_id, name, revision) is not None:
            return name
    if _offline():
        raise FileNotFoundError(
            f'Hugging Face model {repo_id!r} is not in the local cache '
            f'({_hub().constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE=1 forbids downloading '
            f'it; download it where there is network (huggingface-cli download {repo_id}) '
            'or pass a local path')
    hub = _hub()
    try:
        files = set(hub.list_repo_files(repo_id, revision=revision))
    except Exception as exc:  # network errors, unknown or gated repositories
        raise FileNotFoundError(
            f'checkpoint {repo_id!r} is neither a local path nor a Hugging Face model in '
            f'the local cache, and the hub could not be reached for it: {exc}') from exc
    for name in HF_FILES:
        if name in files:
            return name
    raise FileNotFoundError(f'Hugging Face model {repo_id!r} has none of {HF_FILES}')


def resolve_hub_checkpoint(repo_id: str, revision: Optional[str] = None) -> str:
    """Local path (in the hub cache) of the checkpoint file of ``repo_id``, with every
    file holding vision weights present; for a sharded checkpoint, its index."""
    name = _first_layout(repo_id, revision)
    path = _download(repo_id, name, revision)
    if name.endswith('.index.json'):
        for shard in _vision_shards(path):
            _download(repo_id, shard, revision)
    return path
