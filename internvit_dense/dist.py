# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""Distributed runs on machines without CUDA: the one place that works around
mmengine's CUDA-only launcher code.

mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device(local_rank)`` for the
'pytorch', 'slurm' and 'mpi' launchers before it creates the process group, and its
runner wraps models in ``DistributedDataParallel(device_ids=[LOCAL_RANK])``. Both fail
on a CPU-only machine. Both runners (``Runner`` and ``FlexibleRunner``'s strategies)
only initialise the process group when none exists yet, so on a CPU-only machine we
create it first, with gloo, from the same environment variables the launchers set;
DeepSpeed adopts an existing process group. DDP gets the CPU wrapper below, and
``SyncBN`` layers (the configs' GPU default) become ``BN``: torch's SyncBatchNorm
refuses CPU tensors once a process group exists.

Nothing here runs when CUDA is available: GPU runs go through mmengine unchanged.
"""
import os
from typing import Optional

import torch
import torch.distributed as torch_dist
from mmengine.model import MMDistributedDataParallel


def needs_cpu_workaround(launcher: Optional[str]) -> bool:
    return launcher not in (None, 'none') and not torch.cuda.is_available()


def free_port() -> int:
    """A free TCP port on the loopback address (for single-node rendezvous)."""
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _env_from_slurm() -> None:
    """The variables torch's env:// rendezvous reads, from slurm's (as mmengine's
    slurm launcher derives them)."""
    import subprocess
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ['SLURM_NODELIST']
        os.environ['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {nodes} | head -n1')
    os.environ.setdefault('MASTER_PORT', '29500')


def init_cpu_process_group(launcher: Optional[str], backend: str = 'gloo',
                           timeout: Optional[float] = None) -> bool:
    """Create the gloo process group of a CPU-only distributed run (no-op with CUDA,
    with ``launcher='none'`` or when a group exists). Returns whether it created one."""
    if not needs_cpu_workaround(launcher) or torch_dist.is_initialized():
        return False
    if backend == 'nccl':  # the configs' GPU default; gloo is the CPU backend
        backend = 'gloo'
    if launcher == 'slurm':
        _env_from_slurm()
    elif launcher == 'mpi':
        os.environ.setdefault('RANK', os.environ['OMPI_COMM_WORLD_RANK'])
        os.environ.setdefault('WORLD_SIZE', os.environ['OMPI_COMM_WORLD_SIZE'])
        os.environ.setdefault('LOCAL_RANK', os.environ['OMPI_COMM_WORLD_LOCAL_RANK'])
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
               if k not in os.environ]
    if missing:
        raise RuntimeError(f'launcher={launcher!r} but the environment lacks {missing}; '
                           'start the run with tools/dist_train.sh, torchrun or srun')
    kwargs = {}
    if timeout is not None:
        import datetime
        kwargs['timeout'] = datetime.timedelta(seconds=timeout)
    torch_dist.init_process_group(backend=backend, init_method='env://', **kwargs)
    return True


class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` for modules on the CPU: mmengine's runner always
    passes ``device_ids=[LOCAL_RANK]``, which torch rejects for CPU modules."""

    def __init__(self, module, device_ids=None, **kwargs):
        super().__init__(module=module, device_ids=None, **kwargs)


def sync_bn_to_bn(node) -> int:
    """Replace every ``norm_cfg`` of type SyncBN in a (config) tree by BN, in place;
    returns how many were replaced."""
    count = 0
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
            return 1
        for value in node.values():
            count += sync_bn_to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            count += sync_bn_to_bn(value)
    return count


def adapt_cfg_for_cpu(cfg) -> None:
    """Set up a CPU-only distributed run of ``cfg`` (launcher, runner choice already
    in it): create the gloo group, give the plain runner its CPU DDP wrapper and turn
    SyncBN into BN (per-process statistics, as on one GPU)."""
    if torch.cuda.is_available():
        return
    if not needs_cpu_workaround(cfg.get('launcher')):
        if cfg.get('strategy'):
            # DeepSpeed creates a process group even for one process, and torch's
            # SyncBatchNorm then refuses CPU tensors
            sync_bn_to_bn(cfg.model)
        return
    replaced = sync_bn_to_bn(cfg.model)
    if replaced:
        from mmengine.logging import print_log
        print_log(f'CPU-only distributed run: {replaced} SyncBN layer configs use BN '
                  '(torch has no CPU SyncBatchNorm)', logger='current')
    backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'gloo')
    init_cpu_process_group(cfg.launcher, backend)
    if 'strategy' not in cfg:
        wrapper = cfg.get('model_wrapper_cfg') or dict(
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        if wrapper.get('type', 'MMDistributedDataParallel') == 'MMDistributedDataParallel':
            wrapper['type'] = 'CPUDistributedDataParallel'
        cfg.model_wrapper_cfg = wrapper
