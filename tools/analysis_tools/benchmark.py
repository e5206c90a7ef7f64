"""Speed and memory of the InternViT backbone, each figure next to its comparison.

    python tools/analysis_tools/benchmark.py              # CPU, width 768 / depth 12 @ 448
    python tools/analysis_tools/benchmark.py --arch internvit-6b-224px --img-size 504 \\
        --batch 1 --device cuda --dtype bfloat16 --full-size --skip-mmseg  # a GPU, 6B sizes
    python tools/analysis_tools/benchmark.py --real-size  # full-size models on this CPU
                                        # (runs tools/analysis_tools/benchmark_real_size.py)

Measured side by side in one run:
  * forward throughput: SDPA vs the plain reference attention (vs flash-attn on CUDA);
  * ours vs mmseg's ``VisionTransformer`` at the same width / depth / tokens;
  * achieved FLOP/s of the forward (FLOPs counted analytically) vs the practical limit:
    the forward's own linears (qkv, proj, fc1 + GELU, fc2 at its token count, through
    the very kernels the forward calls) run alone;
  * a training step (forward + backward + AdamW) with a frozen vs a trainable backbone
    and the same linear head: time and peak memory;
  * gradient checkpointing on vs off: the backbone's peak activation memory and time
    (forward + backward of the backbone alone);
  * sliding-window inference of a segmentor: windows batched into one backbone call
    (``BatchedSlideEncoderDecoder``) vs mmseg's own ``slide_inference`` (one call per
    window), same model, same image, and the largest difference of their outputs.

``--sweep`` measures instead a probing sweep (``SweepEncoderDecoder``): a training
iteration and the slide evaluation of one image with the 24 heads of
configs/internvit_sweep/ next to the single head, on the same frozen backbone
(``sweep_comparison``; ``--full-size --arch internvit-300m-448px --img-size 504`` for
the real 300M).

``--adapter`` measures instead an ``InternViTAdapter`` training step next to the plain
backbone + mmseg's ``Feature2Pyramid`` (same ViT at patch 16, same input and head), with
the ViT trainable and frozen: time and peak-memory ratios (``adapter_comparison``).

How the figures are made (the same for every measurement):
  * the variants compared run in ONE worker process, interleaved: each repeat times
    every variant once, in rotated order, so that a slow moment of a shared machine
    hits all of them alike. Every time is reported as min / median over the repeats,
    every ratio as min / median of the per-repeat ratios (each from adjacent runs);
  * the practical limit is the best of its interleaved runs (a limit is what the
    machine can do; a run that comes out slow measures the noise, not the machine),
    with its spread printed. The forward runs the limit's GEMMs plus attention and
    the rest, so a forward above 100% of it cannot be real: such a figure is printed
    with a NOISE flag instead of being believed;
  * memory comes from a fresh worker process per measurement: on CPU (Linux) the peak
    resident set (VmHWM, reset just before the steps) minus the resident set at that
    moment, with glibc's mmap threshold fixed so that freed tensors leave the resident
    set; on CUDA ``torch.cuda.max_memory_allocated`` over the allocation before the
    steps. Activation memory is that peak minus the bytes of the parameter gradients
    (and of AdamW's two moments for an optimizer step).

Adding a measurement: write a worker (``def my_worker(args, spec) -> dict``, returning
``times`` lists of seconds per variant, all measured interleaved in that one call) and
register it in ``WORKERS``; in :func:`main`, run it with :func:`run_worker` and make its
rows with ``report``'s :func:`summary` / :func:`paired_ratio` (report.py, beside this
file, which benchmark_real_size.py and gpu_check.py share), as the sections there do.
"""
import argparse
import json
import math
import os
import os.path as osp
import platform
import resource
import subprocess
import sys
import time
from typing import Callable, Dict, List

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/: common.py
import common  # noqa: E402, F401  (puts the repository on sys.path)
from report import (  # noqa: E402
    fmt_rate,
    fmt_ratio,
    fmt_times,
    gib,
    markdown_table,
    paired_ratio,
    summary,
    write_json,
)


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
    p.add_argument('--skip-mmseg', action='store_true',
                   help="skip the comparison with mmseg's VisionTransformer")
    p.add_argument('--skip-slide', action='store_true',
                   help='skip the batched sliding-window comparison')
    p.add_argument('--slide-width', type=int, default=None,
                   help='width of the sliding-window test image (default: 2x img-size, '
                   'i.e. 3 windows at the ADE20K crop / stride proportions)')
    p.add_argument('--slide-batch-size', type=int, default=4,
                   help='test_cfg.slide_batch_size of the batched path')
    p.add_argument('--real-size', action='store_true',
                   help='run benchmark_real_size.py beside this file (full-size 300M and 6B '
                   'on this machine) with the remaining arguments')
    p.add_argument('--json', help='also write the figures to this file')
    p.add_argument('--adapter', action='store_true',
                   help='only the InternViTAdapter vs plain ViT + Feature2Pyramid '
                   'comparison (see adapter_comparison)')
    p.add_argument('--sweep', action='store_true',
                   help='only the probing sweep: 24 heads vs 1 on one frozen backbone, a '
                   'training iteration and the evaluation of one image (sweep_comparison)')
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
    """Built directly on ``args.device`` (a 6B model never passes through host memory
    in fp32); ``frozen=True`` with a half ``--dtype`` holds the weights in that dtype,
    as our frozen configs do."""
    from internvit_dense import InternViT
    if extra.get('frozen') and args.dtype != 'float32':
        extra.setdefault('param_dtype', args.dtype)
    torch.manual_seed(0)
    with torch.device(args.device):
        m = InternViT(**backbone_kwargs(args, **extra))
    m.init_weights()
    return m


def linear_probe_head(in_channels: int, num_classes: int) -> torch.nn.Module:
    """The computation of ``BNLinearHead`` (BatchNorm + 1x1 conv) in plain torch, so that
    the backbone measurements need no ``mmseg.models`` (which needs mmcv's compiled
    ops): they run with mmcv-lite on a bare GPU machine (tools/gpu_check.sh)."""
    return torch.nn.Sequential(torch.nn.BatchNorm2d(in_channels),
                               torch.nn.Conv2d(in_channels, num_classes, 1))


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


class LinearsAlone:
    """The practical limit of a forward: its linears alone. One run is what the forward
    does in its linears: ``qkv``, ``proj``, ``fc1`` + GELU and ``fc2`` of every block, on
    (batch, tokens, width) inputs, through ``internvit.linear`` (on the CPU the fused
    oneDNN kernels) with each block's own weights: the same GEMM shapes, kernels and
    weight traffic, without attention, norms and residuals."""

    def __init__(self, backbone, batch: int, tokens: int, device, dtype) -> None:
        from internvit_dense.models.internvit import linear
        self.linear = linear
        self.layers = [(layer, act, width) for blk in backbone.blocks
                       for layer, act, width in ((blk.attn.qkv, None, 'C'),
                                                 (blk.attn.proj, None, 'C'),
                                                 (blk.mlp.fc1, blk.mlp.act, 'C'),
                                                 (blk.mlp.fc2, None, 'H'))]
        C, H = backbone.embed_dims, backbone.blocks[0].mlp.fc1.out_features
        gen = torch.Generator(device=device).manual_seed(0)
        self.inputs = {w: torch.randn(batch, tokens, n, device=device, dtype=dtype,
                                      generator=gen) for w, n in (('C', C), ('H', H))}
        self.flops = len(backbone.blocks) * 2 * batch * tokens * (4 * C * C + 2 * C * H)

    def __call__(self) -> None:
        with torch.no_grad():
            for layer, act, width in self.layers:
                self.linear(self.inputs[width], layer, act=act)


# ----------------------------------------------------------------------------- timing
def sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def timed(fn: Callable, device: str) -> float:
    """Seconds of one call, device work included."""
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def interleaved(fns: Dict[str, Callable], device: str, repeats: int,
                warmup: int = 1) -> Dict[str, List[float]]:
    """Time every function once per repeat, in an order rotated each repeat."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times = {name: [] for name in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            times[name].append(timed(fns[name], device))
    return times


# ----------------------------------------------------------------------------- memory
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


# ----------------------------------------------------------------------------- workers
def forward_worker(args, spec: dict) -> dict:
    """Eval forwards of every attention path / implementation and the linears-alone
    limit, interleaved. The attention paths share one model (and its weights)."""
    dev, dt = args.device, getattr(torch, args.dtype)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.img_size, args.img_size, device=dev).to(dt)
    ours = build_internvit(args, frozen=True).to(dev, dt)  # eval, no autograd
    fns = {}
    for impl in spec['impls']:
        if impl == 'mmseg':
            theirs = build_mmseg_vit(args, ours).to(dev, dt)
            theirs.eval()  # not chained: mmseg's VisionTransformer.train() returns None
            fns[impl] = _no_grad(theirs, x)
        else:
            fns[impl] = _no_grad(ours, x, attn_impl=impl)
    tokens = math.ceil(args.img_size / ours.patch_size)**2 + 1
    limit = LinearsAlone(ours, args.batch, tokens, dev, dt)
    fns['linears'] = limit
    times = interleaved(fns, dev, args.repeats)
    return dict(times=times, linear_flops=limit.flops,
                forward_flops=forward_flops(ours, args.img_size) * args.batch)


def _no_grad(model, x, attn_impl=None):
    def run():
        if attn_impl is not None:
            for blk in model.blocks:
                blk.attn.attn_impl = attn_impl
        with torch.no_grad():
            model(x)
    return run


def _parse_kind(kind: str) -> dict:
    """'train:full:opt', 'train:frozen:opt', 'backbone:full', '...:cp'."""
    parts = kind.split(':')
    return dict(backbone_only=parts[0] == 'backbone', frozen='frozen' in parts,
                with_cp='cp' in parts, opt='opt' in parts)


def make_step(args, kind: str, cache: dict):
    """One training step of ``kind`` (backbone + BN/1x1-conv linear head, CE loss,
    AdamW; or the backbone alone with a squared-mean loss). Trainable backbones keep
    fp32 weights (with a half ``--dtype``: autocast, i.e. AMP), frozen ones are held in
    the half dtype. Kinds that differ only in
    checkpointing share one model: ``with_cp`` is read at forward time."""
    k = _parse_kind(kind)
    dev, dt = args.device, getattr(torch, args.dtype)
    key = (k['backbone_only'], k['frozen'], k['opt'])
    if key not in cache:
        backbone = build_internvit(args, frozen=k['frozen'], drop_path_rate=0.0)
        head = linear_probe_head(backbone.embed_dims, args.num_classes)
        model = torch.nn.ModuleDict(dict(backbone=backbone, head=head)).to(dev).train()
        if k['backbone_only']:
            model = backbone
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4) if k['opt'] else None
        cache[key] = (backbone, head, params, opt)
    backbone, head, params, opt = cache[key]
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.img_size, args.img_size, device=dev)
    labels = torch.randint(0, args.num_classes, (args.batch, args.img_size, args.img_size),
                           device=dev)
    use_amp = args.dtype != 'float32'

    def step():
        backbone.with_cp = k['with_cp']
        with torch.autocast(dev.split(':')[0], dtype=dt, enabled=use_amp):
            if k['backbone_only']:
                # checkpointing acts on the backbone: measure its activations alone,
                # not the head's full-resolution logits, which are the same either way
                loss = backbone(x)[-1].float().pow(2).mean()
            else:
                logits = head(backbone(x)[-1])
                logits = torch.nn.functional.interpolate(
                    logits, size=labels.shape[-2:], mode='bilinear')
                loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        loss.backward()
        if opt is not None:
            opt.step()
            opt.zero_grad(set_to_none=False)  # keep grads allocated: steady state

    grad_bytes = sum(p.numel() * p.element_size() for p in params)
    state_bytes = grad_bytes * (3 if opt else 1)  # grads (+ AdamW's two moments)
    return step, state_bytes


def train_worker(args, spec: dict) -> dict:
    """Training steps of several kinds, interleaved (speed)."""
    cache = {}
    fns = {kind: make_step(args, kind, cache)[0] for kind in spec['kinds']}
    return dict(times=interleaved(fns, args.device, args.repeats))


def memory_worker(args, spec: dict) -> dict:
    """Peak memory of one training step of one kind, alone in its process (the first
    step, which also allocates gradients and optimizer state, and one more)."""
    step, state_bytes = make_step(args, spec['kind'], {})
    base = reset_peak(args.device)  # model, head and inputs are already there
    step()
    step()
    total = peak_bytes(args.device)
    peak = max(total - base, 0)
    return dict(peak_bytes=peak, peak_total_bytes=total, state_bytes=state_bytes,
                activation_bytes=max(peak - state_bytes, 0))


def slide_worker(args, spec: dict) -> dict:
    """Sliding-window inference of one image by a segmentor (backbone + linear head):
    batched windows vs mmseg's own ``EncoderDecoder.slide_inference`` on the same
    model object, interleaved; and the largest difference of their logits."""
    from mmengine.registry import init_default_scope
    from mmseg.models.segmentors import EncoderDecoder
    from mmseg.registry import MODELS

    import mmseg_internvit  # noqa: F401
    from mmseg_internvit.models.segmentors import slide_windows
    init_default_scope('mmseg')
    dev = args.device
    crop = args.img_size
    stride = round(crop * 322 / 504)  # the ADE20K configs' proportions
    half = args.dtype != 'float32'
    backbone = dict(type='InternViT', **backbone_kwargs(args), init_cfg=None)
    if half:  # as our frozen configs hold a half-precision backbone
        backbone.update(frozen=True, param_dtype=args.dtype)
    torch.manual_seed(0)
    with torch.device(dev):  # a 6B backbone is made on the GPU, not in host memory
        model = MODELS.build(_slide_model_cfg(backbone, args, crop, stride,
                                              spec['slide_batch_size']))
    model.init_weights()
    model.to(dev).eval()
    width = spec['width']
    x = torch.randn(1, 3, crop, width, device=dev)
    metas = [dict(ori_shape=(crop, width), img_shape=(crop, width),
                  pad_shape=(crop, width))]
    out = {}

    def ours():
        with torch.no_grad():
            out['batched'] = model.slide_inference(x, [dict(m) for m in metas])

    def theirs():
        with torch.no_grad():
            out['mmseg'] = EncoderDecoder.slide_inference(model, x, [dict(m) for m in metas])
    times = interleaved(dict(batched=ours, mmseg=theirs), dev, args.repeats)
    diff = (out['batched'].float() - out['mmseg'].float()).abs().max().item()
    return dict(times=times, max_abs_diff=diff, crop=crop, stride=stride, width=width,
                windows=len(slide_windows(crop, width, crop, crop, stride, stride)))


def _slide_model_cfg(backbone, args, crop, stride, slide_batch_size):
    from internvit_dense.models.internvit import resolve_preset
    width = args.embed_dims if not args.full_size else resolve_preset(args.arch)['embed_dims']
    return dict(
        type='BatchedSlideEncoderDecoder', backbone=backbone,
        decode_head=dict(type='BNLinearHead', in_channels=width, in_index=0,
                         num_classes=args.num_classes, norm_cfg=dict(type='BN')),
        test_cfg=dict(mode='slide', crop_size=(crop, crop), stride=(stride, stride),
                      slide_batch_size=slide_batch_size))


WORKERS = dict(forward=forward_worker, train=train_worker, memory=memory_worker,
               slide=slide_worker)


# ----------------------------------------------------------------------------- sweep
# The 24-head grid of configs/internvit_sweep/ (6 lrs x last / second-last /
# fourth-last / last four blocks) against its single head (the last block), each a
# SweepEncoderDecoder on the same frozen backbone, through mmseg's registry.
SWEEP_GRID = dict(lr=[1e-5, 4e-5, 1e-4, 4e-4, 1e-3, 4e-3],
                  blocks=[[-1], [-2], [-4], [-4, -3, -2, -1]])


def sweep_worker(args, spec: dict) -> dict:
    """A training iteration (forward, the heads' losses at the crop resolution,
    backward, AdamW) and the slide evaluation of one image, of the 24-head sweep and of
    the single head, interleaved in this one process."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    import mmseg_internvit  # noqa: F401
    init_default_scope('mmseg')
    dev, crop = args.device, args.img_size
    backbone = dict(type='InternViT', **backbone_kwargs(args), frozen=True, with_cp=False,
                    init_cfg=None)
    if args.dtype != 'float32':
        backbone['param_dtype'] = args.dtype
    head = dict(type='BNLinearHead', num_classes=args.num_classes, dropout_ratio=0.0,
                norm_cfg=dict(type='BN'), align_corners=False,
                loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                 loss_weight=1.0))
    stride = round(crop * 322 / 504)
    test_cfg = dict(mode='slide', crop_size=(crop, crop), stride=(stride, stride),
                    slide_batch_size=4)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, crop, crop, generator=g).to(dev)
    samples = []
    for _ in range(args.batch):
        s = SegDataSample(metainfo=dict(img_shape=(crop, crop), pad_shape=(crop, crop),
                                        ori_shape=(crop, crop)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, args.num_classes, (1, crop, crop),
                                                    generator=g).to(dev))
        samples.append(s)
    width = round(crop * 4 / 3)  # an ADE20K-like 4:3 test image: 2 windows
    image = torch.randn(1, 3, crop, width, generator=g).to(dev)
    meta = dict(img_shape=(crop, width), pad_shape=(crop, width), ori_shape=(crop, width))
    fns, heads = {}, {}
    for name, grid in (('1', dict(heads=[dict(blocks=[-1], lr=4e-5)])),
                       ('24', dict(sweep=SWEEP_GRID))):
        torch.manual_seed(0)
        with torch.device(dev):
            model = MODELS.build(dict(type='SweepEncoderDecoder', backbone=backbone,
                                      decode_head=head, test_cfg=test_cfg,
                                      fp32_heads=True, **grid))
        model.init_weights()
        model.to(dev)
        heads[name] = len(model.heads)
        wrapper = build_optim_wrapper(model, dict(
            type='OptimWrapper', optimizer=dict(type='AdamW', lr=4e-5, weight_decay=0.0),
            constructor='SweepOptimWrapperConstructor'))

        def step(model=model, wrapper=wrapper):
            model.train()
            loss, _ = model.parse_losses(model.loss(x, samples))
            wrapper.update_params(loss)

        def evaluate(model=model):
            model.eval()
            with torch.no_grad():
                model.predict(image, [SegDataSample(metainfo=dict(meta))])
        fns[f'train:{name}'], fns[f'eval:{name}'] = step, evaluate
    times = interleaved(fns, dev, args.repeats)
    return dict(times=times, heads=heads, crop=crop, width=width)


WORKERS['sweep'] = sweep_worker


def sweep_comparison(args) -> dict:
    """The sweep's cost next to one head's, printed as a table: the 24-head training
    iteration and evaluation against the single head's (target: within 1.3x, i.e. at
    least 18x cheaper than 24 separate runs)."""
    out = run_worker('sweep', args)
    t, n = out['times'], out['heads']['24']
    res, rows = dict(times={k: summary(v) for k, v in t.items()}, heads=out['heads']), []
    for kind, label, target in (('train', 'training iteration', '<= 1.3x'),
                                ('eval', f"evaluation, {out['crop']}x{out['width']} "
                                 'image, slide', '')):
        r = paired_ratio(t[f'{kind}:24'], t[f'{kind}:1'])
        res[f'{kind}_ratio'] = r
        res[f'{kind}_cheaper_than_runs'] = n / r['median']
        rows.append((f'{label}, 1 head', fmt_times(t[f'{kind}:1']), '', ''))
        rows.append((f'{label}, {n} heads', fmt_times(t[f'{kind}:24']),
                     f'{fmt_ratio(r)} of one head: {n / r["median"]:.1f}x cheaper than '
                     f'{n} runs', target))
    from internvit_dense.models.internvit import resolve_preset
    arch = (resolve_preset(args.arch) if args.full_size else
            dict(embed_dims=args.embed_dims, num_layers=args.depth))
    print(f"probing sweep: frozen InternViT {arch['embed_dims']}w x {arch['num_layers']} "
          f"blocks ({args.arch if args.full_size else 'custom size'}), {args.dtype} on "
          f'{args.device}, batch {args.batch} at {args.img_size}, {args.num_classes} '
          f'classes; {n} BN + linear heads ({SWEEP_GRID}) vs 1 (the last block); times '
          'min / median over the interleaved repeats')
    print_table(rows)
    if args.json:
        write_json(args.json, res)
    return res


def run_worker(name: str, args, **spec) -> dict:
    """Run ``WORKERS[name](args, spec)`` in a fresh process: its memory is its own."""
    spec_args = {k: v for k, v in vars(args).items() if k not in ('worker', 'json')}
    env = dict(os.environ)
    if name == 'memory' or spec.get('memory'):
        # A fixed mmap threshold makes glibc return every large tensor to the OS when
        # it is freed; with its default dynamic threshold, freed activations stay in
        # the heap and peak RSS measures the allocator's history rather than the live
        # tensors. Speed workers keep the default (faster) allocator behaviour.
        env['MALLOC_MMAP_THRESHOLD_'] = '131072'
    payload = json.dumps(dict(name=name, args=spec_args, spec=spec))
    proc = subprocess.run([sys.executable, osp.abspath(__file__), '--worker', payload],
                          capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f'benchmark worker {name} {spec} failed:\n{proc.stderr[-3000:]}')
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


def adapter_step(args, kind: str):
    """``(step, trainable params)`` of one ``ADAPTER_KINDS`` training step."""
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

    return step, sum(p.numel() for p in params)


def adapter_worker(args, spec: dict) -> dict:
    """Speed: every ``ADAPTER_KINDS`` step interleaved in this one process. Memory
    (``spec['kind']``): the peak of two steps of one kind, alone in its process."""
    if 'kind' in spec:
        step, trainable = adapter_step(args, spec['kind'])
        base = reset_peak(args.device)
        step()
        step()
        return dict(peak_bytes=max(peak_bytes(args.device) - base, 0),
                    trainable=trainable)
    steps = {kind: adapter_step(args, kind)[0] for kind in ADAPTER_KINDS}
    return dict(times=interleaved(steps, args.device, args.repeats))


WORKERS['adapter'] = adapter_worker


def adapter_comparison(args) -> dict:
    """Time and peak memory of an adapter training step next to the plain ViT +
    Feature2Pyramid, trainable and frozen; prints a table and returns the figures."""
    times = run_worker('adapter', args)['times']
    mem = {kind: run_worker('adapter', args, kind=kind, memory=True)
           for kind in ADAPTER_KINDS}
    res, rows = dict(times={k: summary(v) for k, v in times.items()}), []

    def row(label, kind, ref):
        t = paired_ratio(times[kind], times[ref])
        m = mem[kind]['peak_bytes'] / max(mem[ref]['peak_bytes'], 1)
        res[f'{kind}_vs_{ref}'] = dict(time_ratio=t, memory_ratio=m)
        rows.append((label, fmt_times(times[kind]),
                     f"{fmt_ratio(t)} time, {m:.2f}x peak ({gib(mem[kind]['peak_bytes'])}), "
                     f"{mem[kind]['trainable'] / 1e6:.1f}M trained", ''))
        return t, m

    for mode, vit in (('full', 'trainable ViT'), ('frozen', 'frozen ViT')):
        plain = f'adapter:plain:{mode}'
        rows.append((f'plain + Feature2Pyramid, {vit}', fmt_times(times[plain]),
                     f"peak {gib(mem[plain]['peak_bytes'])}, "
                     f"{mem[plain]['trainable'] / 1e6:.1f}M trained", ''))
        t, m = row(f'adapter, {vit}', f'adapter:adapter:{mode}', plain)
        res[f'adapter_{mode}_time_ratio'], res[f'adapter_{mode}_memory_ratio'] = (
            t['median'], m)
    t, m = row('adapter, frozen ViT, with_cp (vs plain frozen)',
               'adapter:adapter:frozen:cp', 'adapter:plain:frozen')
    res['adapter_frozen_cp_memory_ratio'] = m
    print(f'adapter vs plain ViT + Feature2Pyramid: width {args.embed_dims}, depth '
          f'{args.depth} (or the preset with --full-size), patch 16, '
          f'{args.batch}x3x{args.img_size}x{args.img_size}, {args.dtype} on {args.device}, '
          'one training step (AdamW); times min / median over the interleaved repeats')
    print_table(rows)
    if args.json:
        write_json(args.json, res)
    return res


# ----------------------------------------------------------------------------- report
def fraction_of_limit(fwd: dict):
    """The forward's FLOP/s against the practical limit (the best of the interleaved
    linears-alone runs). Returns (linears FLOP/s summary, limit, forward FLOP/s
    summary, fractions min / median / best, noise flag text or '')."""
    t = fwd['times']
    lin = summary([fwd['linear_flops'] / s for s in t['linears']])  # FLOP/s of each run
    limit = lin['max']
    achieved = summary([fwd['forward_flops'] / s for s in t['sdpa']])
    frac = dict(min=achieved['min'] / limit, median=achieved['median'] / limit,
                best=achieved['max'] / limit)
    flag = ''
    if frac['best'] > 1.0:  # the forward runs these GEMMs and more: cannot be real
        flag = (f" NOISE: best forward {100 * frac['best']:.0f}% of the limit, above "
                'what the forward can reach (the limit ran slow throughout); rerun')
    return lin, limit, achieved, frac, flag


def print_table(rows) -> None:
    print()
    print('\n'.join(markdown_table(rows, ('measurement', 'figure (min / median)',
                                          'comparison (min / median)', 'target'))))


def run_real_size(argv) -> None:
    """``--real-size``: run benchmark_real_size.py (beside this file) with ``argv``, and
    exit with its status if it fails. It is run, not imported: it builds on this file's
    workers, and this file does not import it back."""
    real_size = osp.join(osp.dirname(osp.abspath(__file__)), 'benchmark_real_size.py')
    code = subprocess.run([sys.executable, real_size, *argv]).returncode
    if code:
        raise SystemExit(code)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if '--real-size' in argv:
        return run_real_size([a for a in argv if a != '--real-size'])
    args = parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        wargs = argparse.Namespace(**job['args'])
        print(json.dumps(WORKERS[job['name']](wargs, job['spec'])))
        return None
    if args.adapter:
        return adapter_comparison(args)
    if args.sweep:
        return sweep_comparison(args)
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
          f"{args.dtype} on {args.device} ({dev_name}) | torch {torch.__version__} | "
          f"{args.repeats} repeats, interleaved")
    res, rows = {}, []

    # -- forward: attention paths, mmseg's ViT, and the linears-alone limit
    impls = ['sdpa', 'reference']
    from internvit_dense.models.internvit import flash_attn_func
    if args.device.startswith('cuda') and flash_attn_func is not None \
            and args.dtype != 'float32':
        impls.append('flash')
    if not args.skip_mmseg:
        impls.append('mmseg')
    fwd = run_worker('forward', args, impls=impls)
    t = fwd['times']
    res['forward'] = fwd
    res['forward_flops'] = fwd['forward_flops']
    rows.append(('forward, SDPA attention', fmt_rate(t['sdpa'], args.batch),
                 fmt_times(t['sdpa']), ''))
    for impl, label, target in (('reference', 'plain reference attention', 1.4),
                                ('flash', 'flash-attn', None),
                                ('mmseg', "mmseg VisionTransformer (same size)", 1.3)):
        if impl in t:
            r = paired_ratio(t[impl], t['sdpa'])
            res[f'speedup_vs_{impl}'] = r
            rows.append((f'forward, {label}', fmt_rate(t[impl], args.batch),
                         f'SDPA is {fmt_ratio(r)} faster', f'>= {target}x' if target else ''))
    lin, limit, achieved, frac, flag = fraction_of_limit(fwd)
    res.update(linears_flops_per_s=lin, achieved_flops_per_s=achieved,
               fraction_of_matmul=frac, matmul_flops_per_s=limit,
               fraction_noise=bool(flag))
    rows.append(('practical limit: the forward\'s linears alone',
                 f"{limit / 1e9:.1f} GFLOP/s (best)",
                 f"spread {lin['min'] / 1e9:.1f} / {lin['median'] / 1e9:.1f} / "
                 f"{lin['max'] / 1e9:.1f} (min / median / max)", ''))
    rows.append(('forward FLOP/s (analytic FLOPs / time)',
                 f"{achieved['min'] / 1e9:.1f} / {achieved['median'] / 1e9:.1f} GFLOP/s",
                 f"{100 * frac['min']:.0f}% / {100 * frac['median']:.0f}% of the limit "
                 f"(best {100 * frac['best']:.0f}%){flag}", '>= 80%'))

    # -- training steps: frozen vs trainable backbone, checkpointing on vs off
    train = run_worker('train', args, kinds=['train:full:opt', 'train:frozen:opt'])['times']
    cp = run_worker('train', args, kinds=['backbone:full', 'backbone:full:cp'])['times']
    mem = {kind: run_worker('memory', args, kind=kind)
           for kind in ('train:full:opt', 'train:frozen:opt', 'backbone:full',
                        'backbone:full:cp')}
    for kind, times in list(train.items()) + list(cp.items()):
        res[kind] = dict(mem[kind], times=times)
    full, frozen = mem['train:full:opt'], mem['train:frozen:opt']
    t_ratio = paired_ratio(train['train:frozen:opt'], train['train:full:opt'])
    m_ratio = frozen['peak_bytes'] / full['peak_bytes'] if full['peak_bytes'] else math.nan
    res.update(frozen_time_ratio=t_ratio, frozen_memory_ratio=m_ratio)
    rows.append(('train step, trainable backbone', fmt_times(train['train:full:opt']),
                 f"peak {gib(full['peak_bytes'])}", ''))
    rows.append(('train step, frozen backbone', fmt_times(train['train:frozen:opt']),
                 f"time {100 * t_ratio['min']:.0f}% / {100 * t_ratio['median']:.0f}%, "
                 f"peak memory {100 * m_ratio:.0f}% ({gib(frozen['peak_bytes'])})",
                 '<= 50% / <= 40%'))
    off, on = mem['backbone:full'], mem['backbone:full:cp']
    act = off['activation_bytes'] / on['activation_bytes'] if on['activation_bytes'] \
        else math.nan
    cp_time = paired_ratio(cp['backbone:full:cp'], cp['backbone:full'])
    res.update(checkpoint_activation_reduction=act, checkpoint_time_ratio=cp_time)
    rows.append(('backbone fwd+bwd, no checkpointing', fmt_times(cp['backbone:full']),
                 f"activations {gib(off['activation_bytes'])}", ''))
    rows.append(('backbone fwd+bwd, checkpointing', fmt_times(cp['backbone:full:cp']),
                 f"activations {gib(on['activation_bytes'])}: {act:.1f}x less, "
                 f"time {fmt_ratio(cp_time)}", '>= 3x less'))

    # -- sliding-window inference: batched windows vs mmseg's loop
    if not args.skip_slide:
        width = args.slide_width or 2 * args.img_size
        sl = run_worker('slide', args, width=width, slide_batch_size=args.slide_batch_size)
        r = paired_ratio(sl['times']['mmseg'], sl['times']['batched'])
        res['slide'] = sl
        res['slide_speedup'] = r
        rows.append((f"slide inference, {sl['crop']}x{width} image, {sl['windows']} "
                     f"windows, mmseg (1 per call)", fmt_times(sl['times']['mmseg']), '', ''))
        rows.append((f'slide inference, batched ({args.slide_batch_size} per call)',
                     fmt_times(sl['times']['batched']),
                     f"{fmt_ratio(r)} mmseg's speed; max |diff| {sl['max_abs_diff']:.1e}",
                     ''))

    print_table(rows)
    if args.json:
        write_json(args.json, res)
    return res


if __name__ == '__main__':
    main()
