"""Speed and memory of the InternViT backbone, each figure next to its comparison.

    python tools/benchmark.py                                  # CPU, width 768 / depth 12 @ 448
    python tools/benchmark.py --arch internvit-6b-224px --img-size 504 --batch 1 \\
        --device cuda --dtype bfloat16 --full-size           # a GPU, real 6B sizes

Measured side by side in one run:
  * forward throughput: SDPA vs the plain reference attention (vs flash-attn on CUDA);
  * ours vs mmseg's ``VisionTransformer`` at the same width / depth / tokens;
  * achieved FLOP/s of the forward (FLOPs counted analytically) vs this machine's dense
    matmul FLOP/s measured now (the practical limit);
  * a training step (forward + backward + AdamW) with a frozen vs a trainable backbone
    and the same linear head: time and peak memory;
  * gradient checkpointing on vs off: the backbone's peak activation memory and time
    (forward + backward of the backbone alone).

``--adapter`` measures instead an ``InternViTAdapter`` training step next to the plain
backbone + mmseg's ``Feature2Pyramid`` (same ViT at patch 16, same input and head), with
the ViT trainable and frozen: time and peak-memory ratios (``adapter_comparison``).

Every memory figure comes from a fresh worker process: on CPU (Linux) the peak resident
set (VmHWM, reset just before the steps) minus the resident set at that moment, with
glibc's mmap threshold fixed so that freed tensors leave the resident set; on CUDA
``torch.cuda.max_memory_allocated`` over the allocation before the steps. Activation memory is that peak minus the bytes of the
parameter gradients.
"""
import argparse
import json
import math
import os
import os.path as osp
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--arch', default='internvit-300m-448px',
                   help='preset; the mid-size defaults below override its sizes')
    p.add_argument('--embed-dims', type=int, default=768)
    p.add_argument('--depth', type=int, default=12)
    p.add_argument('--heads', type=int, default=12)
    p.add_argument('--mlp', type=int, default=3072)
    p.add_argument('--full-size', action='store_true',
                   help="use the preset's own sizes instead of the four above")
    p.add_argument('--img-size', type=int, default=448)
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--dtype', default='float32', choices=['float32', 'bfloat16', 'float16'])
    p.add_argument('--device', default='cpu')
    p.add_argument('--repeats', type=int, default=5, help='timed repetitions')
    p.add_argument('--num-classes', type=int, default=150)
    p.add_argument('--skip-mmseg', action='store_true')
    p.add_argument('--json', help='also write the figures to this file')
    p.add_argument('--adapter', action='store_true',
                   help='only the InternViTAdapter vs plain ViT + Feature2Pyramid '
                   'comparison (see adapter_comparison)')
    p.add_argument('--worker', help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- models
def backbone_kwargs(args, **extra):
    kw = dict(arch=args.arch, img_size=args.img_size, out_indices=[-1])
    if not args.full_size:
        kw.update(embed_dims=args.embed_dims, num_layers=args.depth, num_heads=args.heads,
                  mlp_hidden_dims=args.mlp)
    kw.update(extra)
    return kw


def build_internvit(args, **extra):
    from internvit_dense import InternViT
    torch.manual_seed(0)
    m = InternViT(**backbone_kwargs(args, **extra))
    m.init_weights()
    return m


def build_mmseg_vit(args, ours):
    """mmseg's VisionTransformer with the same width, depth, heads, MLP and tokens."""
    from mmseg.models.backbones import VisionTransformer
    a = ours.arch_settings
    if a['mlp_hidden_dims'] % a['embed_dims']:
        raise ValueError('mmseg VisionTransformer needs an integer mlp ratio; '
                         'use --skip-mmseg for this size')
    torch.manual_seed(0)
    return VisionTransformer(
        img_size=args.img_size, patch_size=a['patch_size'], embed_dims=a['embed_dims'],
        num_layers=a['num_layers'], num_heads=a['num_heads'],
        mlp_ratio=a['mlp_hidden_dims'] // a['embed_dims'], out_indices=a['num_layers'] - 1,
        qkv_bias=a['qkv_bias'], with_cls_token=True, final_norm=False,
        patch_pad=0, interpolate_mode='bicubic')


def forward_flops(backbone, img_size: int) -> float:
    """Multiply-adds x 2 of the matmuls and convolutions of one image's forward."""
    a = backbone.arch_settings
    C, H, L, p = a['embed_dims'], a['mlp_hidden_dims'], a['num_layers'], a['patch_size']
    n = math.ceil(img_size / p)**2
    N = n + 1
    patch = 2 * n * C * 3 * p * p
    per_block = 2 * N * (3 * C * C + C * C + 2 * C * H) + 2 * 2 * N * N * C
    return patch + L * per_block


# ----------------------------------------------------------------------------- timing
def sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def timeit(fn, device, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def matmul_flops_per_s(args, tokens: int, C: int, H: int) -> float:
    """Dense GEMM throughput at the backbone's own MLP shape (tokens x C @ C x H),
    timed in blocks of >= 0.5 s so that it runs as long and as hot as the forward
    it is compared with (short bursts read high on CPUs with turbo clocks)."""
    dt = getattr(torch, args.dtype)
    a = torch.randn(tokens, C, device=args.device, dtype=dt)
    b = torch.randn(C, H, device=args.device, dtype=dt)
    out = torch.empty(tokens, H, device=args.device, dtype=dt)
    one = timeit(lambda: torch.mm(a, b, out=out), args.device, 3)
    reps = max(1, math.ceil(0.5 / one))

    def block():
        for _ in range(reps):
            torch.mm(a, b, out=out)
    sec = timeit(block, args.device, max(args.repeats, 5)) / reps
    return 2 * tokens * C * H / sec


# ----------------------------------------------------------------------------- workers
def _proc_status_bytes(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024  # kB
    raise KeyError(field)


def reset_peak(device) -> int:
    """Start a peak-memory window; return the memory in use now."""
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    try:  # Linux: reset the resident-set high-water mark (VmHWM) to the current RSS
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return _proc_status_bytes('VmRSS')
    except OSError:  # elsewhere: the process-lifetime peak is the best there is
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_bytes(device) -> int:
    if device.startswith('cuda'):
        return torch.cuda.max_memory_allocated()
    try:
        return _proc_status_bytes('VmHWM')
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def ratio(a: float, b: float) -> float:
    return a / b if b else float('nan')


def worker(spec: dict) -> dict:
    """One measurement in a fresh process, so that peak memory belongs to it alone."""
    args = argparse.Namespace(**spec['args'])
    kind = spec['kind']
    if kind.startswith('adapter:'):
        return adapter_worker(args, kind)
    dev, dt = args.device, getattr(torch, args.dtype)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.img_size, args.img_size, device=dev)
    if kind.startswith('forward'):
        impl = kind.split(':')[1]
        if impl == 'mmseg':
            model = build_mmseg_vit(args, build_internvit(args, init_cfg=None))
        else:
            model = build_internvit(args, attn_impl=impl)
        model.to(dev, dt)
        model.eval()  # not chained: mmseg's VisionTransformer.train() returns None
        x = x.to(dt)

        def step():
            with torch.no_grad():
                model(x)
        sec = timeit(step, dev, args.repeats)
        return dict(seconds=sec, images_per_s=args.batch / sec)

    # training steps: backbone + BN/1x1-conv linear head, CE loss, AdamW
    from mmseg_internvit import BNLinearHead
    frozen, with_cp = 'frozen' in kind, 'cp' in kind
    backbone = build_internvit(args, frozen=frozen, with_cp=with_cp, drop_path_rate=0.0)
    head = BNLinearHead(in_channels=backbone.embed_dims, num_classes=args.num_classes,
                        norm_cfg=dict(type='BN'))
    model = torch.nn.ModuleDict(dict(backbone=backbone, head=head)).to(dev).train()
    if 'backbone' in kind:
        model = backbone
    params = [p for p in model.parameters() if p.requires_grad]
    grad_bytes = sum(p.numel() * p.element_size() for p in params)
    opt = torch.optim.AdamW(params, lr=1e-4) if 'opt' in kind else None
    labels = torch.randint(0, args.num_classes, (args.batch, args.img_size, args.img_size),
                           device=dev)
    use_amp = args.dtype != 'float32'

    def step():
        with torch.autocast(dev.split(':')[0], dtype=dt, enabled=use_amp):
            if 'backbone' in kind:
                # checkpointing acts on the backbone: measure its activations alone,
                # not the head's full-resolution logits, which are the same either way
                loss = backbone(x)[-1].float().pow(2).mean()
            else:
                logits = head(backbone(x))
                logits = torch.nn.functional.interpolate(
                    logits, size=labels.shape[-2:], mode='bilinear')
                loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        loss.backward()
        if opt is not None:
            opt.step()
            opt.zero_grad(set_to_none=False)  # keep grads allocated: steady state

    base = reset_peak(dev)  # model, head and inputs are already there
    sec = timeit(step, dev, args.repeats, warmup=1)
    peak = max(peak_bytes(dev) - base, 0)
    return dict(seconds=sec, peak_bytes=peak, grad_bytes=grad_bytes,
                activation_bytes=max(peak - grad_bytes * (2 if opt else 1), 0))


def run_worker(kind: str, args, memory: bool = False) -> dict:
    """Run one measurement in a fresh process. ``memory=True`` measures peak memory
    (one timed step is enough for the peak); otherwise the figures are for speed."""
    spec_args = {k: v for k, v in vars(args).items() if k not in ('worker', 'json')}
    if memory:
        spec_args['repeats'] = 1
    spec = dict(kind=kind, args=spec_args)
    # A fixed mmap threshold makes glibc return every large tensor to the OS when it
    # is freed; with its default dynamic threshold, freed activations stay in the heap
    # and peak RSS measures the allocator's history rather than the live tensors.
    # Speed workers keep the default (faster) allocator behaviour.
    env = dict(os.environ)
    if memory:
        env['MALLOC_MMAP_THRESHOLD_'] = '131072'

    proc = subprocess.run([sys.executable, osp.abspath(__file__), '--worker',
                           json.dumps(spec)], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f'benchmark worker {kind!r} failed:\n{proc.stderr[-3000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- adapter
# InternViTAdapter against the plain backbone + mmseg's Feature2Pyramid: the same ViT
# (patch 16, so both give strides 4-32 on the same grid), the same input, the same
# light head on the four levels, one training step (forward, backward, AdamW), with the
# ViT trainable and frozen. Frozen, the plain ViT runs without autograd; the adapter's
# frozen ViT has no parameter gradients but keeps its blocks' activations, through which
# the injectors' gradients pass (with_cp trades them for recomputation).
ADAPTER_KINDS = ('adapter:plain:full', 'adapter:adapter:full', 'adapter:plain:frozen',
                 'adapter:adapter:frozen', 'adapter:adapter:frozen:cp')


def adapter_worker(args, kind: str) -> dict:
    from mmseg.models.necks import Feature2Pyramid

    from internvit_dense import InternViT, InternViTAdapter, resolve_preset
    dev = args.device
    _, which, mode, *cp_flag = kind.split(':')
    frozen = mode == 'frozen'
    kw = backbone_kwargs(args, patch_size=16, drop_path_rate=0.0, with_cp=bool(cp_flag))
    kw.pop('out_indices')
    if frozen and args.dtype != 'float32':
        kw['param_dtype'] = args.dtype
    depth = kw.get('num_layers') or resolve_preset(args.arch)['num_layers']
    ends = [depth * (i + 1) // 4 - 1 for i in range(4)]
    torch.manual_seed(0)
    if which == 'adapter':
        backbone = InternViTAdapter(freeze_vit=frozen, deform_ratio=0.25, **kw)
        neck = torch.nn.Identity()
    else:
        backbone = InternViT(frozen=frozen, out_indices=ends, **kw)
        neck = Feature2Pyramid(backbone.embed_dims, rescales=[4, 2, 1, 0.5],
                               norm_cfg=dict(type='BN', requires_grad=True))
    backbone.init_weights()
    head = torch.nn.ModuleList(torch.nn.Conv2d(backbone.embed_dims, args.num_classes, 1)
                               for _ in range(4))
    model = torch.nn.ModuleList([backbone, neck, head]).to(dev).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    x = torch.randn(args.batch, 3, args.img_size, args.img_size, device=dev)
    size = (math.ceil(args.img_size / 4), ) * 2
    labels = torch.randint(0, args.num_classes, (args.batch, *size), device=dev)
    use_amp = args.dtype != 'float32'

    def step():
        with torch.autocast(dev.split(':')[0], dtype=getattr(torch, args.dtype),
                            enabled=use_amp):
            feats = neck(backbone(x))
            logits = sum(torch.nn.functional.interpolate(
                conv(f), size=size, mode='bilinear') for conv, f in zip(head, feats))
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=False)

    base = reset_peak(dev)
    sec = timeit(step, dev, args.repeats, warmup=1)
    return dict(seconds=sec, peak_bytes=max(peak_bytes(dev) - base, 0),
                trainable=sum(p.numel() for p in params))


def adapter_comparison(args) -> dict:
    """Time and peak memory of an adapter training step next to the plain ViT +
    Feature2Pyramid, trainable and frozen; prints a table and returns the figures."""
    res = {}
    for kind in ADAPTER_KINDS:
        speed, mem = run_worker(kind, args), run_worker(kind, args, memory=True)
        res[kind] = dict(speed, peak_bytes=mem['peak_bytes'])
    rows = []
    for mode in ('full', 'frozen'):
        plain, ada = res[f'adapter:plain:{mode}'], res[f'adapter:adapter:{mode}']
        t, m = ratio(ada['seconds'], plain['seconds']), ratio(ada['peak_bytes'],
                                                              plain['peak_bytes'])
        res[f'adapter_{mode}_time_ratio'], res[f'adapter_{mode}_memory_ratio'] = t, m
        vit = 'trainable ViT' if mode == 'full' else 'frozen ViT'
        rows.append((f'plain + Feature2Pyramid, {vit}', f"{plain['seconds'] * 1e3:.0f} ms",
                     f"peak {gib(plain['peak_bytes'])}, {plain['trainable'] / 1e6:.1f}M "
                     'trained'))
        rows.append((f'adapter, {vit}', f"{ada['seconds'] * 1e3:.0f} ms",
                     f"{t:.2f}x time, {m:.2f}x peak ({gib(ada['peak_bytes'])}), "
                     f"{ada['trainable'] / 1e6:.1f}M trained"))
    cp_run, frozen = res['adapter:adapter:frozen:cp'], res['adapter:adapter:frozen']
    res['adapter_frozen_cp_memory_ratio'] = ratio(cp_run['peak_bytes'],
                                                  res['adapter:plain:frozen']['peak_bytes'])
    rows.append(('adapter, frozen ViT, with_cp', f"{cp_run['seconds'] * 1e3:.0f} ms",
                 f"{ratio(cp_run['seconds'], res['adapter:plain:frozen']['seconds']):.2f}x "
                 f"time, {res['adapter_frozen_cp_memory_ratio']:.2f}x peak "
                 f"({gib(cp_run['peak_bytes'])}) of plain frozen; "
                 f"{ratio(cp_run['peak_bytes'], frozen['peak_bytes']):.2f}x of no cp"))
    print(f'adapter vs plain ViT + Feature2Pyramid: width {args.embed_dims}, depth '
          f'{args.depth} (or the preset with --full-size), patch 16, '
          f'{args.batch}x3x{args.img_size}x{args.img_size}, {args.dtype} on {args.device}, '
          'one training step (AdamW)')
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    print(f"| {'train step':<{w[0]}} | {'time':<{w[1]}} | {'memory / comparison':<{w[2]}} |")
    print(f"|{'-' * (w[0] + 2)}|{'-' * (w[1] + 2)}|{'-' * (w[2] + 2)}|")
    for r in rows:
        print('| ' + ' | '.join(f'{c:<{w[i]}}' for i, c in enumerate(r)) + ' |')
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(res, f, indent=1)
    return res


# ----------------------------------------------------------------------------- report
def gib(n):
    return f'{n / 2**30:.2f} GiB'


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return None
    if args.adapter:
        return adapter_comparison(args)
    from internvit_dense import InternViT
    with torch.device('meta'):
        meta = InternViT(**backbone_kwargs(args))
    a = meta.arch_settings
    n_params = sum(p.numel() for p in meta.parameters())
    tokens = math.ceil(args.img_size / a['patch_size'])**2 + 1
    dev_name = torch.cuda.get_device_name() if args.device.startswith('cuda') else \
        f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads'
    print(f"InternViT {a['embed_dims']}w x {a['num_layers']} blocks, {a['num_heads']} heads, "
          f"mlp {a['mlp_hidden_dims']}, {n_params / 1e6:.1f}M params | input "
          f"{args.batch}x3x{args.img_size}x{args.img_size} ({tokens} tokens) | "
          f"{args.dtype} on {args.device} ({dev_name}) | torch {torch.__version__}")
    res = {}
    rows = []

    # forward paths
    impls = ['sdpa', 'reference']
    from internvit_dense.models.internvit import flash_attn_func
    if args.device.startswith('cuda') and flash_attn_func is not None \
            and args.dtype != 'float32':
        impls.append('flash')
    if not args.skip_mmseg:
        impls.append('mmseg')
    for impl in impls:
        res[f'fwd_{impl}'] = run_worker(f'forward:{impl}', args)
    sdpa = res['fwd_sdpa']['seconds']
    flops = forward_flops(meta, args.img_size) * args.batch
    gemm = matmul_flops_per_s(args, args.batch * tokens, a['embed_dims'],
                              a['mlp_hidden_dims'])
    achieved = flops / sdpa
    res.update(forward_flops=flops, matmul_flops_per_s=gemm, achieved_flops_per_s=achieved)
    rows.append(('forward, SDPA attention', f"{res['fwd_sdpa']['images_per_s']:.2f} img/s",
                 '', ''))
    for impl, label, target in (('reference', 'plain reference attention', 1.4),
                                ('flash', 'flash-attn', None),
                                ('mmseg', "mmseg VisionTransformer (same size)", 1.3)):
        if f'fwd_{impl}' in res:
            r = res[f'fwd_{impl}']['seconds'] / sdpa
            res[f'speedup_vs_{impl}'] = r
            rows.append((f'forward, {label}', f"{res[f'fwd_{impl}']['images_per_s']:.2f} img/s",
                         f'SDPA is {r:.2f}x faster', f'>= {target}x' if target else ''))
    frac = achieved / gemm
    res['fraction_of_matmul'] = frac
    rows.append(('forward FLOP/s (analytic FLOPs / time)', f'{achieved / 1e9:.1f} GFLOP/s',
                 f'{100 * frac:.0f}% of matmul {gemm / 1e9:.1f} GFLOP/s', '>= 80%'))

    # training steps
    for kind in ('train:full:opt', 'train:frozen:opt', 'backbone:full', 'backbone:full:cp'):
        speed, mem = run_worker(kind, args), run_worker(kind, args, memory=True)
        res[kind] = dict(speed, **{k: v for k, v in mem.items() if k != 'seconds'})
    full, frozen = res['train:full:opt'], res['train:frozen:opt']
    t_ratio = ratio(frozen['seconds'], full['seconds'])
    m_ratio = ratio(frozen['peak_bytes'], full['peak_bytes'])
    res.update(frozen_time_ratio=t_ratio, frozen_memory_ratio=m_ratio)
    rows.append(('train step, trainable backbone', f"{full['seconds'] * 1e3:.0f} ms",
                 f"peak {gib(full['peak_bytes'])}", ''))
    rows.append(('train step, frozen backbone', f"{frozen['seconds'] * 1e3:.0f} ms",
                 f"{100 * t_ratio:.0f}% time, {100 * m_ratio:.0f}% peak memory "
                 f"({gib(frozen['peak_bytes'])})", '<= 50% / <= 40%'))
    off, on = res['backbone:full'], res['backbone:full:cp']
    act_ratio = ratio(off['activation_bytes'], on['activation_bytes'])
    res.update(checkpoint_activation_reduction=act_ratio,
               checkpoint_time_ratio=ratio(on['seconds'], off['seconds']))
    rows.append(('backbone fwd+bwd, no checkpointing', f"{off['seconds'] * 1e3:.0f} ms",
                 f"activations {gib(off['activation_bytes'])}", ''))
    rows.append(('backbone fwd+bwd, checkpointing', f"{on['seconds'] * 1e3:.0f} ms",
                 f"activations {gib(on['activation_bytes'])}: {act_ratio:.1f}x less, "
                 f"{on['seconds'] / off['seconds']:.2f}x time", '>= 3x less'))

    w = [max(len(r[i]) for r in rows) for i in range(4)]
    print()
    print(f"| {'measurement':<{w[0]}} | {'figure':<{w[1]}} | {'comparison':<{w[2]}} | "
          f"{'target':<{w[3]}} |")
    print(f"|{'-' * (w[0] + 2)}|{'-' * (w[1] + 2)}|{'-' * (w[2] + 2)}|{'-' * (w[3] + 2)}|")
    for r in rows:
        print('| ' + ' | '.join(f'{c:<{w[i]}}' for i, c in enumerate(r)) + ' |')
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(res, f, indent=1)
    return res


if __name__ == '__main__':
    main()
