"""GPU check: the real-size GPU figures of the README, from a bare GPU machine.

Run through ``tools/gpu_check.sh`` (it installs the carried wheels and builds mmcv);
the phases are:

``--phase backbone`` (needs torch, mmengine and mmcv-lite only; no ``mmseg.models``):
  * InternViT-6B-224px at 504 px in bf16: forward images/s, SDPA vs the reference
    attention path (vs flash-attn when importable), MFU against the GPU's bf16 dense
    peak (datasheet) and against a bf16 matmul measured here, and the fraction of the
    forward's own linears run alone (benchmark.py's practical limit);
  * peak GPU memory and time of a frozen linear-probe training step at batch 2 (bf16
    frozen backbone, BN + 1x1-conv head, AdamW);
  * a 300M full-tuning step with AMP bf16 and gradient checkpointing at batch 2 (and
    without checkpointing, for comparison): time and peak memory.

``--phase seg`` (needs mmcv compiled with its ops, for ``mmseg.models``):
  * peak memory and time of one training step of the frozen head-tuning config
    (``upernet_internvit-6b-224px-frozen``, Feature2Pyramid + UPerHead) and of the
    frozen linear-probing config, batch 2, built from the configs through mmseg;
  * batched sliding-window inference vs mmseg's ``slide_inference`` on the 6B model
    (504 px crops, a 504 x 896 image: 3 windows);
  * ``tools/train.py --amp`` on the embedded demo data with a frozen bf16 backbone and
    fp32 heads: a smoke test of the AMP path end to end.

``--cpu`` runs the same code at tiny sizes on the CPU (no AMP optimizer wrapper, which
mmengine allows on CUDA only): the fallback that CI and tests/test_gpu_check.py run.
Every time is min / median over the repeats (benchmark.py's interleaved workers).
A measurement that fails is reported as FAILED with its error; the others still run,
and the exit status is 1.
"""
import argparse
import json
import math
import os
import os.path as osp
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

import torch

TOOLS = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, TOOLS)  # tools/: common.py

import benchmark  # noqa: E402  (beside this file: the measurements' workers)
import report  # noqa: E402  (beside this file: how the figures are told)
from common import REPO_ROOT  # noqa: E402

GIB = 2**30
# Dense bf16 tensor-core peaks (no sparsity), from NVIDIA's datasheets.
BF16_PEAK = (('H100 PCIe', 756e12), ('H100 NVL', 835e12), ('H100', 989e12),
             ('H200', 989e12), ('H800', 989e12), ('GH200', 989e12), ('A100', 312e12),
             ('L40S', 362e12), ('L4', 121e12), ('A10', 125e12))
CONFIGS = {
    'upernet-frozen': 'configs/internvit/upernet_internvit-6b-224px-frozen_8xb2-80k_'
                      'ade20k-504x504.py',
    'linear-frozen': 'configs/internvit/linear_internvit-6b-224px-frozen_8xb2-80k_'
                     'ade20k-504x504.py',
}
DEMO_CONFIG = 'configs/demo/upernet_internvit-tiny_1xb4-600it_demo-ade20k-196x196.py'
TINY = dict(embed_dims=64, num_layers=2, num_heads=2, mlp_hidden_dims=128)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--phase', choices=['backbone', 'seg', 'all'], default='all')
    p.add_argument('--cpu', action='store_true', help='tiny sizes on the CPU (fallback)')
    p.add_argument('--repeats', type=int, default=None,
                   help='timed runs per figure (default 10 on a GPU, 2 on the CPU)')
    p.add_argument('--forward-batch', type=int, default=4)
    p.add_argument('--out', default=os.environ.get('OUT') or 'work_dirs/gpu_check',
                   help='where the JSON and the table go ($OUT on the device machine)')
    p.add_argument('--worker', nargs=2, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- sizes
def bench_args(opts, arch: str, img: int, batch: int, dtype: str = 'bfloat16'):
    """benchmark.py arguments for one measurement: the preset's real sizes on a
    GPU, the tiny stand-in on the CPU (same code path)."""
    argv = ['--arch', arch, '--batch', str(batch), '--dtype', dtype,
            '--repeats', str(opts.repeats), '--skip-mmseg']
    if opts.cpu:
        argv += ['--device', 'cpu', '--img-size', '56', '--embed-dims',
                 str(TINY['embed_dims']), '--depth', str(TINY['num_layers']), '--heads',
                 str(TINY['num_heads']), '--mlp', str(TINY['mlp_hidden_dims'])]
    else:
        argv += ['--device', 'cuda', '--img-size', str(img), '--full-size']
    return benchmark.parse_args(argv)


def bf16_peak(name: str):
    for key, peak in BF16_PEAK:
        if key in name:
            return peak
    return None


def measured_matmul(device: str, n: int) -> float:
    """Best FLOP/s of an n x n x n bf16 matmul on random data (10 timed runs)."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    best = min(benchmark.timed(lambda: a @ b, device) for _ in range(10))
    return 2 * n**3 / best


# ----------------------------------------------------------------------------- phase 1
def fmt_flops(x: float) -> str:
    return f'{x / 1e12:.1f} TFLOP/s' if x >= 1e12 else f'{x / 1e9:.1f} GFLOP/s'


def check_forward(opts, res, rows):
    args = bench_args(opts, 'internvit-6b-224px', 504, opts.forward_batch)
    impls = ['sdpa', 'reference']
    from internvit_dense.models.internvit import flash_attn_func
    if flash_attn_func is not None and not opts.cpu:
        impls.append('flash')
    fwd = benchmark.run_worker('forward', args, impls=impls)
    t = fwd['times']
    res['forward'] = fwd
    dev = args.device
    name = torch.cuda.get_device_name() if dev == 'cuda' else platform.machine()
    mm = measured_matmul(dev, 256 if opts.cpu else 8192)  # CPU bf16 matmuls are slow
    peak = None if opts.cpu else bf16_peak(name)
    res.update(matmul_bf16_flops_per_s=mm, datasheet_bf16_peak=peak)
    for impl in impls:
        s = report.summary([fwd['forward_flops'] / x for x in t[impl]])
        rate = [s['min'], s['median']]  # FLOP/s of the slowest and the median run
        res[f'mfu_{impl}'] = dict(datasheet=[r / peak for r in rate] if peak else None,
                                  measured_matmul=[r / mm for r in rate])
        mfu = (f"MFU {100 * rate[0] / peak:.0f}% / {100 * rate[1] / peak:.0f}% of "
               f"{peak / 1e12:.0f} TFLOP/s; " if peak else '')
        rows.append((f'6B forward bf16, batch {args.batch}, {impl}',
                     report.fmt_rate(t[impl], args.batch),
                     mfu + f"{100 * rate[0] / mm:.0f}% / {100 * rate[1] / mm:.0f}% of "
                     f"a bf16 matmul ({fmt_flops(mm)} here)"))
    for impl in impls[1:]:
        r = report.paired_ratio(t[impl], t['sdpa'])
        res[f'speedup_vs_{impl}'] = r
        rows.append((f'6B forward: SDPA vs {impl}', report.fmt_ratio(r), 'faster'))
    lin, limit, achieved, frac, flag = benchmark.fraction_of_limit(fwd)
    res['fraction_of_linears'] = frac
    rows.append(('6B forward vs its linears alone',
                 f"{100 * frac['min']:.0f}% / {100 * frac['median']:.0f}%",
                 f"limit {fmt_flops(limit)} (best of {lin['n']}){flag}"))


def check_steps(opts, res, rows, arch, img, kinds, label):
    args = bench_args(opts, arch, img, 2)
    speed = benchmark.run_worker('train', args, kinds=kinds)['times']
    for kind in kinds:
        mem = benchmark.run_worker('memory', args, kind=kind)
        res[f'{label}:{kind}'] = dict(mem, times=speed[kind])
        rows.append((f'{label} {kind}, batch 2', report.fmt_times(speed[kind]),
                     f"peak {mem['peak_bytes'] / GIB:.2f} GiB over the model, "
                     f"{mem['peak_total_bytes'] / GIB:.2f} GiB in all"))


def phase_backbone(opts, res, rows):
    run_checked('forward', res, rows, check_forward, opts, res, rows)
    run_checked('linear-probe step', res, rows, check_steps, opts, res, rows,
                'internvit-6b-224px', 504, ['train:frozen:opt'], '6B frozen linear probe')
    run_checked('300M AMP step', res, rows, check_steps, opts, res, rows,
                'internvit-300m-448px', 504, ['train:full:opt:cp', 'train:full:opt'],
                '300M AMP bf16')


# ----------------------------------------------------------------------------- phase 2
def seg_step_worker(spec: dict) -> dict:
    """One config's training step, built through mmseg as a run builds it (backbone
    randomly initialised: no released weights here), on ``spec['device']``."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    import mmseg_internvit  # noqa: F401
    dev, size, batch = spec['device'], spec['size'], spec['batch']
    cfg = Config.fromfile(osp.join(REPO_ROOT, spec['config']))
    cfg.model.backbone.init_cfg = None
    _no_syncbn(cfg.model)
    if spec['tiny']:
        shrink(cfg)
    wrapper = cfg.optim_wrapper.copy()
    if dev == 'cpu' and wrapper.get('type') == 'AmpOptimWrapper':
        wrapper.type = 'OptimWrapper'  # mmengine's AMP wrapper is CUDA-only
        wrapper.pop('dtype', None)
    init_default_scope('mmseg')
    torch.manual_seed(0)
    with torch.device(dev):
        model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(dev).train()
    optim_wrapper = build_optim_wrapper(model, wrapper)
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch, 3, size, size, generator=gen).to(dev)
    samples = []
    for _ in range(batch):
        s = SegDataSample(gt_sem_seg=PixelData(
            data=torch.randint(0, 150, (1, size, size), generator=gen).to(dev)))
        s.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size),
                            pad_shape=(size, size)))
        samples.append(s)
    losses = []

    def step():
        with optim_wrapper.optim_context(model):
            loss, _ = model.parse_losses(model.loss(inputs, samples))
        optim_wrapper.update_params(loss)
        losses.append(loss.item())
    base = benchmark.reset_peak(dev)
    times = [benchmark.timed(step, dev) for _ in range(spec['repeats'] + 1)]
    peak = benchmark.peak_bytes(dev)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return dict(times=times[1:], first_step_s=times[0], peak_bytes=peak - base,
                peak_total_bytes=peak, losses=losses, trainable=trainable,
                total=sum(p.numel() for p in model.parameters()),
                wrapper=type(optim_wrapper).__name__,
                backbone_dtype=str(next(model.backbone.parameters()).dtype),
                head_dtype=str(next(model.decode_head.parameters()).dtype))


def _no_syncbn(node) -> None:
    """SyncBN -> BN: one process, no process group."""
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
        for v in node.values():
            _no_syncbn(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            _no_syncbn(v)


def shrink(cfg, width: int = 32) -> None:
    """The tiny stand-in of a config (CPU fallback): same classes, small widths (the
    neck's and heads' input widths follow the backbone's, derived by the segmentor)."""
    b = cfg.model.backbone
    out = b.get('out_indices', -1)
    n = 4 if out == 'stages' else 1 if isinstance(out, int) else len(out)
    b.update(embed_dims=width, num_heads=2, mlp_hidden_dims=2 * width, num_layers=n,
             out_indices=list(range(n)), img_size=56)
    head = cfg.model.decode_head
    if head.type == 'BNLinearHead':
        head.pop('channels', None)
    else:
        head.channels = 16
    if 'auxiliary_head' in cfg.model:
        cfg.model.auxiliary_head.channels = 8


def run_in_worker(fn: str, spec: dict) -> dict:
    proc = subprocess.run([sys.executable, osp.abspath(__file__), '--worker', fn,
                           json.dumps(spec)], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f'{fn} failed:\n{proc.stderr[-3000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_seg_step(opts, res, rows, key):
    dev = 'cpu' if opts.cpu else 'cuda'
    out = run_in_worker('seg_step_worker', dict(
        config=CONFIGS[key], device=dev, size=56 if opts.cpu else 504, batch=2,
        repeats=opts.repeats, tiny=opts.cpu))
    res[f'seg_step:{key}'] = out
    finite = all(math.isfinite(v) for v in out['losses'])
    rows.append((f'{key} config step, batch 2', report.fmt_times(out['times']),
                 f"peak {out['peak_bytes'] / GIB:.2f} GiB over the model, "
                 f"{out['peak_total_bytes'] / GIB:.2f} GiB in all; "
                 f"{out['trainable'] / 1e6:.2f}M of {out['total'] / 1e6:.1f}M trained; "
                 f"backbone {out['backbone_dtype']}, head {out['head_dtype']}, "
                 f"{out['wrapper']}{'' if finite else '; LOSS NOT FINITE'}"))
    if not finite:
        raise RuntimeError(f'non-finite losses {out["losses"]}')


def check_slide(opts, res, rows):
    args = bench_args(opts, 'internvit-6b-224px', 504, 1)
    width = 100 if opts.cpu else 896
    sl = benchmark.run_worker('slide', args, width=width, slide_batch_size=4)
    r = report.paired_ratio(sl['times']['mmseg'], sl['times']['batched'])
    res['slide'] = dict(sl, speedup=r)
    rows.append((f"6B slide inference, {sl['crop']}x{width}, {sl['windows']} windows",
                 f"batched {report.fmt_times(sl['times']['batched'])}, mmseg "
                 f"{report.fmt_times(sl['times']['mmseg'])}",
                 f"{report.fmt_ratio(r)} mmseg's speed; max |diff| "
                 f"{sl['max_abs_diff']:.1e}"))


def check_train_smoke(opts, res, rows):
    # run outside --out: the device tool brings back a few files of $OUT, not a run's
    # work dir; the log is copied there
    work = tempfile.mkdtemp(prefix='gpu_check_train_')
    try:
        _train_smoke(opts, res, rows, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _train_smoke(opts, res, rows, work):
    data = osp.join(work, 'demo_ade20k')
    prepare = osp.join(TOOLS, 'dataset_converters', 'prepare_demo_data.py')
    run = subprocess.run([sys.executable, prepare, '--task', 'seg', '--out', data,
                          '--min-images', '1'], capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f'prepare_demo_data failed:\n{run.stderr[-2000:]}')
    root = osp.join(data, 'ADEChallengeData2016')
    iters = 4 if opts.cpu else 20
    cmd = [sys.executable, osp.join(TOOLS, 'train.py'), osp.join(REPO_ROOT, DEMO_CONFIG),
           '--work-dir', osp.join(work, 'run'), '--cfg-options',
           'model.backbone.frozen=True', 'model.backbone.param_dtype=bfloat16',
           f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
           'default_hooks.logger.interval=1', f'default_hooks.checkpoint.interval={iters}',
           'train_dataloader.batch_size=2', 'custom_hooks=[]',
           'val_dataloader.dataset.indices=2']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cmd += [f'{loader}.dataset.data_root={root}', f'{loader}.num_workers=0',
                f'{loader}.persistent_workers=False']
    if not opts.cpu:
        cmd.insert(3, '--amp')
    t = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
    wall = time.perf_counter() - t
    log = run.stdout + run.stderr
    with open(osp.join(opts.out, 'train_smoke.log'), 'w') as f:
        f.write(log)
    if run.returncode:
        raise RuntimeError(f'tools/train.py failed ({run.returncode}):\n{log[-3000:]}')
    losses = [float(x) for x in re.findall(r'\bloss: ([0-9.naif]+)', log)]
    miou = re.findall(r'mIoU: ([0-9.]+)', log)
    res['train_smoke'] = dict(losses=losses, miou=miou, wall_s=wall, amp=not opts.cpu)
    if not losses or not all(math.isfinite(v) for v in losses):
        raise RuntimeError(f'losses not finite or not logged: {losses}')
    rows.append((f"tools/train.py{' --amp' if not opts.cpu else ''} demo, frozen bf16 "
                 f'backbone, {iters} iters', f'{wall:.0f} s',
                 f"loss {losses[0]:.3f} -> {losses[-1]:.3f}, mIoU "
                 f"{miou[-1] if miou else '-'}"))


def phase_seg(opts, res, rows):
    for key in CONFIGS:
        run_checked(f'{key} step', res, rows, check_seg_step, opts, res, rows, key)
    run_checked('slide inference', res, rows, check_slide, opts, res, rows)
    run_checked('train.py smoke', res, rows, check_train_smoke, opts, res, rows)


# ----------------------------------------------------------------------------- main
def run_checked(name, res, rows, fn, *args):
    t = time.perf_counter()
    try:
        fn(*args)
    except Exception as exc:  # report it and go on with the other measurements
        res.setdefault('failed', {})[name] = ''.join(
            traceback.format_exception_only(type(exc), exc))[-2000:]
        rows.append((name, 'FAILED', str(exc).strip().splitlines()[-1][:200]))
    res.setdefault('seconds', {})[name] = time.perf_counter() - t


def describe_machine(opts) -> str:
    if opts.cpu or not torch.cuda.is_available():
        return (f'CPU fallback (tiny sizes): {platform.machine()}, '
                f'{torch.get_num_threads()} threads, torch {torch.__version__}')
    p = torch.cuda.get_device_properties(0)
    return (f'{p.name}, {p.total_memory / GIB:.0f} GiB, sm_{p.major}{p.minor}, '
            f'{p.multi_processor_count} SMs | torch {torch.__version__}, CUDA '
            f'{torch.version.cuda}')


def main(argv=None):
    opts = parse_args(argv)
    if opts.worker:
        fn, spec = opts.worker
        print(json.dumps(globals()[fn](json.loads(spec))))
        return None
    if opts.repeats is None:
        opts.repeats = 2 if opts.cpu else 10
    if not opts.cpu and not torch.cuda.is_available():
        raise SystemExit('no CUDA device: run with --cpu for the CPU fallback')
    os.makedirs(opts.out, exist_ok=True)
    opts.out = osp.abspath(opts.out)
    head = describe_machine(opts)
    print(head, flush=True)
    res, rows = dict(machine=head), []
    phases = ['backbone', 'seg'] if opts.phase == 'all' else [opts.phase]
    for phase in phases:
        if phase == 'backbone':
            phase_backbone(opts, res, rows)
        else:
            phase_seg_checked(opts, res, rows)
    if opts.cpu:  # the stand-ins are tiny: say so in every row
        rows = [(r[0].replace('6B', 'tiny 6B-family').replace('300M', 'tiny 300M-family'),
                 *r[1:]) for r in rows]
    lines = [head, ''] + report.markdown_table(rows, ('measurement', 'figure', 'detail'))
    print('\n'.join(lines))
    tag = '_'.join(phases) + ('_cpu' if opts.cpu else '')
    with open(osp.join(opts.out, f'gpu_check_{tag}.json'), 'w') as f:
        json.dump(res, f, indent=1)
    with open(osp.join(opts.out, f'gpu_check_{tag}.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    if res.get('failed'):
        sys.exit(1)
    return res


def phase_seg_checked(opts, res, rows):
    try:
        import mmseg.models  # noqa: F401
    except Exception as exc:  # mmcv without ops (mmcv-lite) or a failed mmcv build
        res.setdefault('failed', {})['import mmseg.models'] = repr(exc)
        rows.append(('import mmseg.models', 'FAILED', f'{exc!r} (mmcv built with ops?)'))
        return
    phase_seg(opts, res, rows)


if __name__ == '__main__':
    main()
