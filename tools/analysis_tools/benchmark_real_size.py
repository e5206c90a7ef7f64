"""Full-size InternViT models on this machine (CPU): speed, memory and loading.

    python tools/analysis_tools/benchmark_real_size.py            # both (15 min on 2 busy cores)
    python tools/analysis_tools/benchmark.py --real-size          # the same
    python tools/analysis_tools/benchmark_real_size.py --skip-6b  # InternViT-300M only (10 min)

InternViT-300M-448px at 504 px, fp32, batch 1:
  * forward images/s (plain eval forward);
  * a full-tuning training step (backbone + linear head + AdamW) without and with
    gradient checkpointing: time and peak memory.

InternViT-6B-224px frozen in bf16 (the linear-probing config,
``linear_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py``):
  * a random checkpoint of the real size is written in the released Hugging Face
    layout (``model-0000k-of-0000n.safetensors`` bf16 shards + ``model.safetensors.index
    .json``, about 12 GB) to a temporary directory, and removed at the end;
  * in a fresh worker process the segmentor is built from that config through mmseg's
    registry and ``init_weights()`` loads the backbone through ``init_cfg``, as a user's
    run does: construction and load time, peak anonymous memory (``RssAnon``, sampled
    every millisecond: memory the kernel cannot drop) against the bf16 weight bytes
    (bound 1.15x: no fp32 transient, no second copy of the state dict), and the peak
    resident set (``VmHWM``, which also counts the mapped checkpoint pages);
  * one linear-probe training step at batch 1 (frozen backbone forward at ``--probe-size``,
    head forward/backward, AdamW step): time and peak memory.

Every time is given as min / median over ``--repeats`` runs.
"""
import argparse
import json
import math
import os
import os.path as osp
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Tuple

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/: common.py
import benchmark  # noqa: E402  (beside this file: its workers measure the 300M model)
from common import REPO_ROOT  # noqa: E402
from report import fmt_rate, markdown_table, paired_ratio, write_json  # noqa: E402

PROBE_CONFIG = osp.join(REPO_ROOT, 'configs', 'internvit',
                        'linear_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py')
ANON_BOUND = 1.15  # peak anonymous memory of the load / bf16 weight bytes
GIB = 2**30


# ----------------------------------------------------------------------------- checkpoint
_ST_DTYPES = {torch.bfloat16: 'BF16', torch.float16: 'F16', torch.float32: 'F32'}


def hf_layout(arch: str = 'internvit-6b-224px', **arch_overrides) -> List[Tuple[str, tuple]]:
    """``(key, shape)`` of every tensor of a released Hugging Face ``InternVisionModel``
    checkpoint of this architecture, in the release's order (embeddings, then layers)."""
    from internvit_dense import InternViT
    from internvit_dense.models.internvit import resolve_preset
    pretrain = dict(resolve_preset(arch), **arch_overrides)['pretrain_size']
    with torch.device('meta'):  # names and shapes only: no memory, no time
        model = InternViT(arch=arch, img_size=pretrain, **arch_overrides)
    hf_names = {'cls_token': 'embeddings.class_embedding',
                'pos_embed': 'embeddings.position_embedding',
                'patch_embed.weight': 'embeddings.patch_embedding.weight',
                'patch_embed.bias': 'embeddings.patch_embedding.bias'}
    layout = []
    for name, tensor in model.state_dict().items():
        key = hf_names.get(name) or 'encoder.layers.' + name[len('blocks.'):]
        layout.append((key, tuple(tensor.shape)))
    return layout


def _random_tensor(key: str, shape: tuple, dtype: torch.dtype,
                   gen: torch.Generator) -> torch.Tensor:
    """Values of the scale a trained model has, so that a forward stays finite."""
    if key.endswith(('norm1.weight', 'norm2.weight', 'q_norm.weight', 'k_norm.weight')):
        return torch.ones(shape, dtype=dtype)
    if key.endswith(('.ls1', '.ls2')):
        return torch.full(shape, 0.1, dtype=dtype)
    if key.endswith('bias'):
        return torch.zeros(shape, dtype=dtype)
    return (torch.randn(shape, generator=gen) * 0.02).to(dtype)


def _write_safetensors(path: str, items: List[Tuple[str, tuple]], dtype: torch.dtype,
                       gen: torch.Generator) -> int:
    """Write one safetensors file tensor by tensor: the header is computed from the
    shapes first, then each tensor is generated, written and dropped, so that only one
    tensor is ever in memory. Returns the bytes of tensor data."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    header, offset = {'__metadata__': {'format': 'pt'}}, 0
    for key, shape in items:
        n = math.prod(shape) * itemsize
        header[key] = dict(dtype=_ST_DTYPES[dtype], shape=list(shape),
                           data_offsets=[offset, offset + n])
        offset += n
    raw = json.dumps(header, separators=(',', ':')).encode()
    raw += b' ' * (-len(raw) % 8)  # the data starts 8-byte aligned, as safetensors does
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(raw)))
        f.write(raw)
        for key, shape in items:
            t = _random_tensor(key, shape, dtype, gen).contiguous()
            f.write(t.view(torch.uint8).numpy().data)
    return offset


def write_random_hf_checkpoint(out_dir: str, arch: str = 'internvit-6b-224px',
                               dtype: torch.dtype = torch.bfloat16,
                               shard_bytes: int = 5 * 10**9, seed: int = 0,
                               **arch_overrides) -> str:
    """Write a random checkpoint of ``arch`` in the released Hugging Face sharded layout
    (safetensors shards of at most ``shard_bytes`` + ``model.safetensors.index.json``,
    as ``save_pretrained`` names them) without ever holding the model in memory: the
    biggest allocation is one tensor. Returns the index path; ``out_dir`` is what a
    user gives as ``init_cfg.checkpoint``."""
    os.makedirs(out_dir, exist_ok=True)
    itemsize = torch.empty((), dtype=dtype).element_size()
    shards, size = [[]], 0
    for key, shape in hf_layout(arch, **arch_overrides):
        n = math.prod(shape) * itemsize
        if shards[-1] and size + n > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append((key, shape))
        size += n
    gen = torch.Generator().manual_seed(seed)
    weight_map, total = {}, 0
    for i, items in enumerate(shards):
        name = f'model-{i + 1:05d}-of-{len(shards):05d}.safetensors'
        total += _write_safetensors(osp.join(out_dir, name), items, dtype, gen)
        weight_map.update({key: name for key, _ in items})
    index = osp.join(out_dir, 'model.safetensors.index.json')
    with open(index, 'w') as f:
        json.dump({'metadata': {'total_size': total}, 'weight_map': weight_map}, f, indent=2)
    return index


# ----------------------------------------------------------------------------- memory
def proc_status(*fields: str) -> Dict[str, int]:
    """Fields of /proc/self/status in bytes (Linux)."""
    out = {}
    with open('/proc/self/status') as f:
        for line in f:
            key = line.split(':', 1)[0]
            if key in fields:
                out[key] = int(line.split()[1]) * 1024
    return out


def reset_hwm() -> None:
    """Reset VmHWM (peak resident set) to the current resident set."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


class AnonPeak:
    """Peak ``RssAnon`` of this process while the ``with`` block runs, sampled by a
    thread every ``interval`` s (torch releases the GIL in its kernels, so the sampler
    runs during a copy or an init). ``RssAnon`` is memory the kernel cannot drop:
    tensors and heap, not the pages of a mapped checkpoint file (``RssFile``)."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.peak = self.start = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, proc_status('RssAnon')['RssAnon'])
            time.sleep(self.interval)

    def __enter__(self) -> 'AnonPeak':
        self.start = self.peak = proc_status('RssAnon')['RssAnon']
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, proc_status('RssAnon')['RssAnon'])


def min_median(values: List[float]) -> Dict[str, float]:
    return dict(min=min(values), median=statistics.median(values), n=len(values))


# ----------------------------------------------------------------------------- 6B worker
def probe_worker(spec: dict) -> dict:
    """Build the linear-probing segmentor from its config with ``init_cfg`` pointing at
    ``spec['checkpoint']``, load it, and run linear-probe training steps."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    import mmseg_internvit  # noqa: F401  registers the classes, as custom_imports does
    from internvit_dense import InternViT

    cfg = Config.fromfile(spec['config'])
    arch = spec.get('arch_overrides') or {}
    if arch:  # the tests' tiny stand-in: the same config, smaller shapes
        cfg.model.backbone.update(arch, out_indices=[arch['num_layers'] - 1])
        cfg.model.decode_head.pop('channels', None)  # its input width follows
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=spec['checkpoint'])
    cfg.model.decode_head.norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN: 1 CPU
    init_default_scope('mmseg')
    torch.manual_seed(0)
    out = {}
    reset_hwm()
    base = proc_status('VmRSS', 'RssAnon')
    with AnonPeak() as build_peak:
        t = time.perf_counter()
        model = MODELS.build(cfg.model)
        out['build_s'] = time.perf_counter() - t
    # The segmentor's init_weights() is what a run calls; the backbone's own part (our
    # loader) is timed apart, since mmengine's BaseModule.init_weights adds its
    # bookkeeping (the mean of every parameter, before and after) around it.
    own = InternViT.init_weights

    def timed_init(self):
        t = time.perf_counter()
        own(self)
        out['loader_s'] = time.perf_counter() - t
    InternViT.init_weights = timed_init  # this worker process only
    with AnonPeak() as load_peak:
        t = time.perf_counter()
        model.init_weights()
        out['load_s'] = time.perf_counter() - t
    InternViT.init_weights = own
    after = proc_status('VmHWM', 'RssAnon', 'RssFile')
    weights = sum(p.numel() * p.element_size() for p in model.backbone.parameters())
    out.update(
        weight_bytes=weights, base_anon=base['RssAnon'], base_rss=base['VmRSS'],
        peak_anon=max(build_peak.peak, load_peak.peak),
        anon_after_load=after['RssAnon'], file_after_load=after['RssFile'],
        peak_rss=after['VmHWM'])
    out['anon_growth'] = out['peak_anon'] - base['RssAnon']
    out['anon_ratio'] = out['anon_growth'] / weights
    params = model.backbone.parameters()
    out['backbone_dtypes'] = sorted({str(p.dtype) for p in params})
    out['backbone_trainable'] = sum(p.numel() for p in model.backbone.parameters()
                                    if p.requires_grad)

    # linear-probe training steps
    wrapper_cfg = cfg.optim_wrapper.copy()
    wrapper_cfg['type'] = 'OptimWrapper'  # the config's; AmpOptimWrapper needs CUDA
    optim_wrapper = build_optim_wrapper(model, wrapper_cfg)
    model.train()
    size, batch = spec['probe_size'], spec['batch']
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch, 3, size, size, generator=gen)
    samples = []
    for _ in range(batch):
        s = SegDataSample(gt_sem_seg=PixelData(
            data=torch.randint(0, 150, (1, size, size), generator=gen)))
        s.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size),
                            pad_shape=(size, size)))
        samples.append(s)

    def step():
        losses = model.loss(inputs, samples)
        loss, _ = model.parse_losses(losses)
        optim_wrapper.update_params(loss)
        return loss.item()
    reset_hwm()
    step_base = proc_status('VmRSS', 'RssAnon')
    times, losses = [], []
    with AnonPeak() as step_peak:
        for _ in range(spec['repeats'] + 1):  # the first step allocates the AdamW state
            t = time.perf_counter()
            losses.append(step())
            times.append(time.perf_counter() - t)
    out.update(step_s=min_median(times[1:]), first_step_s=times[0],
               step_anon_growth=step_peak.peak - step_base['RssAnon'],
               step_rss_growth=proc_status('VmHWM')['VmHWM'] - step_base['VmRSS'],
               step_peak_anon=step_peak.peak, losses=losses,
               head_trainable=sum(p.numel() for p in model.parameters() if p.requires_grad))
    out['finite'] = all(math.isfinite(v) for v in losses)
    return out


def run_in_worker(fn_name: str, spec: dict) -> dict:
    """Run ``fn_name(spec)`` of this file in a fresh process: its high-water marks are
    the measurement's own."""
    proc = subprocess.run(
        [sys.executable, osp.abspath(__file__), '--worker', fn_name, json.dumps(spec)],
        capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f'{fn_name} worker failed:\n{proc.stderr[-4000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--repeats', type=int, default=3, help='timed runs per figure')
    p.add_argument('--skip-300m', action='store_true')
    p.add_argument('--skip-6b', action='store_true')
    p.add_argument('--img-size', type=int, default=504, help='300M input size')
    p.add_argument('--probe-size', type=int, default=224,
                   help='input size of the 6B linear-probe step (>= 224)')
    p.add_argument('--tmpdir', default=None,
                   help='where the ~12 GB checkpoint is written (default: the system '
                   'temporary directory); it is removed afterwards')
    p.add_argument('--min-free-gib', type=float, default=16.0,
                   help='refuse the 6B part when less memory than this is available')
    p.add_argument('--json', help='also write the figures to this file')
    # the tests' tiny stand-in for the 6B model (same code path, tiny shapes)
    p.add_argument('--arch-overrides', default='{}', help=argparse.SUPPRESS)
    p.add_argument('--worker', nargs=2, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def available_bytes() -> int:
    with open('/proc/meminfo') as f:
        for line in f:
            if line.startswith('MemAvailable:'):
                return int(line.split()[1]) * 1024
    return 0


def fmt_mm(d: Dict[str, float], scale: float = 1.0, unit: str = 's', digits: int = 2):
    return f"{d['min'] * scale:.{digits}f} / {d['median'] * scale:.{digits}f} {unit}"


def measure_300m(args) -> Tuple[dict, list]:
    """benchmark.py's workers at the 300M preset's own sizes."""
    bargs = benchmark.parse_args(['--arch', 'internvit-300m-448px', '--full-size',
                                  '--img-size', str(args.img_size), '--batch', '1',
                                  '--repeats', str(args.repeats)])
    res, rows = {}, []
    fwd = benchmark.run_worker('forward', bargs, impls=['sdpa'])
    res['forward'] = fwd
    rows.append((f'300M forward, fp32, batch 1, {args.img_size} px',
                 fmt_rate(fwd['times']['sdpa'], 1),
                 f"{fmt_mm(min_median(fwd['times']['sdpa']))} per image", ''))
    kinds = ['train:full:opt', 'train:full:opt:cp']
    speed = benchmark.run_worker('train', bargs, kinds=kinds)['times']
    for kind, label in zip(kinds, ('no checkpointing', 'checkpointing')):
        mem = benchmark.run_worker('memory', bargs, kind=kind)
        res[kind] = dict(mem, times=speed[kind])
        rows.append((f'300M full-tuning step, batch 1, {label}',
                     fmt_mm(min_median(speed[kind])),
                     f"peak {mem['peak_bytes'] / GIB:.2f} GiB over the model (activations "
                     f"{mem['activation_bytes'] / GIB:.2f} GiB)", ''))
    ratio = paired_ratio(speed['train:full:opt:cp'], speed['train:full:opt'])
    res['cp_time_ratio'] = ratio
    res['cp_memory_ratio'] = (res['train:full:opt:cp']['peak_bytes'] /
                              res['train:full:opt']['peak_bytes'])
    rows.append(('300M checkpointing vs not', f"time {ratio['min']:.2f}x / "
                 f"{ratio['median']:.2f}x", f"peak memory {res['cp_memory_ratio']:.2f}x", ''))
    return res, rows


def measure_6b(args) -> Tuple[dict, list]:
    overrides = json.loads(args.arch_overrides)
    if not overrides and available_bytes() < args.min_free_gib * GIB:
        raise SystemExit(f'the 6B part needs about {args.min_free_gib:.0f} GiB of available '
                         f'memory; {available_bytes() / GIB:.1f} GiB is available now '
                         '(--skip-6b to run the 300M part alone)')
    tmp = tempfile.mkdtemp(prefix='internvit6b_', dir=args.tmpdir)
    try:
        t = time.perf_counter()
        write_random_hf_checkpoint(tmp, **overrides)
        write_s = time.perf_counter() - t
        files = sorted(os.listdir(tmp))
        disk = sum(osp.getsize(osp.join(tmp, f)) for f in files)
        spec = dict(config=PROBE_CONFIG, checkpoint=tmp, probe_size=args.probe_size,
                    batch=1, repeats=args.repeats, arch_overrides=overrides)
        res = run_in_worker('probe_worker', spec)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res.update(write_s=write_s, checkpoint_bytes=disk, checkpoint_files=files)
    w = res['weight_bytes']
    ok = res['anon_ratio'] <= ANON_BOUND
    rows = [
        ('6B checkpoint written (HF sharded bf16 safetensors)', f'{write_s:.0f} s',
         f"{len(files) - 1} shards + index, {disk / GIB:.2f} GiB", ''),
        ('6B build from config (frozen, bf16)', f"{res['build_s']:.1f} s", '', ''),
        ('6B init_weights() (load through init_cfg)', f"{res['load_s']:.1f} s",
         f"of which the loader {res['loader_s']:.1f} s ({w / GIB:.2f} GiB of bf16 weights, "
         f"{w / GIB / res['loader_s']:.2f} GiB/s), mmengine's init bookkeeping "
         f"{res['load_s'] - res['loader_s']:.1f} s", ''),
        ('6B peak anonymous memory, build + load', f"{res['anon_growth'] / GIB:.2f} GiB",
         f"{res['anon_ratio']:.3f}x the bf16 weights"
         f"{'' if ok else ' (ABOVE the bound)'}; process total "
         f"{res['peak_anon'] / GIB:.2f} GiB", f'<= {ANON_BOUND}x'),
        ('6B peak resident set (VmHWM), build + load', f"{res['peak_rss'] / GIB:.2f} GiB",
         f"mapped checkpoint pages after load {res['file_after_load'] / GIB:.2f} GiB", ''),
        (f'6B linear-probe step, batch 1, {args.probe_size} px', fmt_mm(res['step_s']),
         f"peak +{res['step_anon_growth'] / GIB:.2f} GiB anonymous, "
         f"+{res['step_rss_growth'] / GIB:.2f} GiB resident over the loaded model", ''),
    ]
    return res, rows


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        fn, spec = args.worker
        print(json.dumps(globals()[fn](json.loads(spec))))
        return None
    import platform
    print(f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores, '
          f'{available_bytes() / GIB:.1f} GiB available | torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads')
    res, rows = {}, []
    if not args.skip_300m:
        r, new = measure_300m(args)
        res['300m'] = r
        rows += new
    if not args.skip_6b:
        r, new = measure_6b(args)
        res['6b'] = r
        rows += new
    print()
    print('\n'.join(markdown_table(rows, ('measurement', 'figure', 'detail', 'bound'))))
    if args.json:
        write_json(args.json, res)
    return res


if __name__ == '__main__':
    main()
