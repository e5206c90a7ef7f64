"""What the converters share: reading an upstream checkpoint in any container its tools
write, safely, and writing the converted one so that an interruption leaves nothing
half-written."""
import os
import os.path as osp

import torch

DEEPSPEED_FILE = 'mp_rank_00_model_states.pt'


def read_state_dict(path: str, trust: bool = False):
    """``(state_dict, container, meta)`` of an upstream checkpoint file or DeepSpeed
    directory; errors name the file and what is wrong with it."""
    from internvit_dense.safe_load import load_run_checkpoint
    if osp.isdir(path):
        inner = osp.join(path, DEEPSPEED_FILE)
        if not osp.isfile(inner):
            raise FileNotFoundError(f'{path} is a directory without {DEEPSPEED_FILE}: '
                                    'not a DeepSpeed checkpoint')
        path = inner
    ckpt = load_run_checkpoint(path, map_location='cpu', trust=trust)
    if not isinstance(ckpt, dict):
        raise ValueError(f'{path} holds a {type(ckpt).__name__}, not a checkpoint dict')
    if isinstance(ckpt.get('state_dict'), dict):
        state, container = ckpt['state_dict'], 'mmcv'
    elif isinstance(ckpt.get('module'), dict):
        extra = set(ckpt) - {'module'}
        state, container = ckpt['module'], 'deepspeed' if extra else 'module'
    elif ckpt and all(torch.is_tensor(v) for v in ckpt.values()):
        state, container = ckpt, 'bare'
    else:
        raise ValueError(f'{path} has no state dict: expected tensors, or a '
                         f"'state_dict' / 'module' entry; top-level keys: {sorted(ckpt)[:8]}")
    bad = [k for k, v in state.items() if not torch.is_tensor(v)]
    if bad:
        raise ValueError(f'{path}: state dict entries that are not tensors: {bad[:5]}')
    meta = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else {}
    return state, container, meta


def save_checkpoint(dst: str, meta: dict, state_dict: dict) -> None:
    """``torch.save(dict(meta=..., state_dict=...))`` to a temporary name in ``dst``'s
    folder, renamed to ``dst`` when complete: an interrupted write leaves no
    half-written ``dst`` behind."""
    out_dir = osp.dirname(osp.abspath(dst))
    os.makedirs(out_dir, exist_ok=True)
    tmp = osp.join(out_dir, f'.{osp.basename(dst)}.tmp{os.getpid()}')
    try:
        torch.save(dict(meta=meta, state_dict=state_dict), tmp)
        os.replace(tmp, dst)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
