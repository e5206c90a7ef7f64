"""SweepEncoderDecoder: many probe heads on one frozen forward train as separate runs,
evaluate in one pass, and select on a held-out split."""
import copy
import json
from pathlib import Path

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.evaluation import IoUMetric
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from PIL import Image

import mmseg_internvit  # noqa: F401
from mmseg_internvit.engine.sweep import best_head, write_sweep_results
from mmseg_internvit.evaluation import SweepIoUMetric
from mmseg_internvit.models.segmentors.sweep import expand_sweep

ROOT = Path(__file__).resolve().parents[1]
CLASSES = 5
HEAD = dict(type='BNLinearHead', num_classes=CLASSES, dropout_ratio=0.0,
            norm_cfg=dict(type='BN', requires_grad=True), align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0))
BACKBONE = dict(type='InternViT', arch='internvit-300m-448px', embed_dims=32, num_layers=4,
                num_heads=2, mlp_hidden_dims=64, img_size=56, frozen=True, init_cfg=None)
ENTRIES = [dict(blocks=[-1], lr=1e-2), dict(blocks=[-2], lr=3e-3),
           dict(blocks=[-2, -1], lr=1e-2, weight_decay=0.1)]


def sweep_cfg(heads=None, sweep=None, **kw):
    return dict(type='SweepEncoderDecoder',
                data_preprocessor=dict(type='SegDataPreProcessor', mean=[0, 0, 0],
                                       std=[1, 1, 1], size=(56, 56)),
                backbone=dict(BACKBONE, **kw.pop('backbone', {})), decode_head=HEAD,
                heads=heads, sweep=sweep,
                test_cfg=dict(mode='slide', crop_size=(56, 56), stride=(28, 28),
                              slide_batch_size=8), **kw)


def build(cfg):
    init_default_scope('mmseg')
    torch.manual_seed(0)  # the same backbone in every model
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def batches(steps=4, size=56, batch=2):
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(steps):
        x = torch.randn(batch, 3, size, size, generator=g)
        samples = []
        for _ in range(batch):
            s = SegDataSample(metainfo=dict(img_shape=(size, size), pad_shape=(size, size),
                                            ori_shape=(size, size)))
            s.gt_sem_seg = PixelData(data=torch.randint(0, CLASSES, (1, size, size),
                                                        generator=g))
            samples.append(s)
        out.append((x, samples))
    return out


OPTIM = dict(type='OptimWrapper',
             optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01),
             paramwise_cfg=dict(norm_decay_mult=0.0))


def train(model, optim_cfg, data):
    wrapper = build_optim_wrapper(model, optim_cfg)
    model.train()
    for x, samples in data:
        loss, _ = model.parse_losses(model.loss(x, samples))
        wrapper.update_params(loss)
    return model


# ------------------------------------------------------------------------ the grid
def test_the_grid_expands_in_order_with_names_that_show_what_varies():
    entries = expand_sweep(dict(lr=[1e-4, 1e-3], blocks=[[-1], [-4, -3, -2, -1]]), None,
                           HEAD, 48)
    assert [e['name'] for e in entries] == ['b47_lr0.0001', 'b47_lr0.001',
                                            'b44-45-46-47_lr0.0001', 'b44-45-46-47_lr0.001']
    assert [e['blocks'] for e in entries] == [[47], [47], [44, 45, 46, 47], [44, 45, 46, 47]]
    assert all(e['head'] == HEAD and e['weight_decay'] is None for e in entries)
    every = expand_sweep(dict(blocks='all', lr=4e-4), None, HEAD, 6)
    assert [e['blocks'] for e in every] == [[i] for i in range(6)]
    assert [e['name'] for e in every] == [f'b{i}' for i in range(6)]


@pytest.mark.parametrize('sweep,heads,match', [
    (None, None, 'exactly one of'),
    (dict(lr=[1e-3], blocks=[[-1]]), [dict(blocks=[-1])], 'exactly one of'),
    (dict(lrs=[1e-3]), None, r"unknown keys \['lrs'\]"),
    (dict(blocks=[[7]]), None, 'out of range for 6 blocks'),
    (None, [dict(blocks=[-1], lr=1e-3), dict(blocks=[5], lr=1e-3)], 'two identical heads'),
    (None, [dict(blocks=[-1], lr=-1.0)], r'heads\[0\].lr must be a number'),
    (dict(lr=[]), None, 'sweep.lr must not be empty'),
])
def test_a_bad_grid_is_an_error_naming_it(sweep, heads, match):
    with pytest.raises((ValueError, TypeError), match=match):
        expand_sweep(sweep, heads, HEAD, 6)


def test_the_backbone_reads_the_union_of_the_blocks_once_per_batch():
    model = build(sweep_cfg(heads=ENTRIES))
    assert model.backbone.out_indices == [2, 3]
    calls = []
    model.backbone.register_forward_hook(lambda *a: calls.append(1))
    x, samples = batches(1)[0]
    losses = model.loss(x, samples)
    assert len(calls) == 1
    assert {k for k in losses if 'loss' in k} == {f'{n}.loss_ce' for n in model.head_names}
    model.eval()
    calls.clear()
    big = torch.randn(1, 3, 70, 90)  # 2 x 3 windows of 56 at stride 28, one call
    meta = dict(img_shape=(70, 90), pad_shape=(70, 90), ori_shape=(70, 90))
    out = model.predict(big, [SegDataSample(metainfo=meta)])
    assert len(calls) == 1
    assert out[0].sweep_pred_sem_seg.shape == (3, 70, 90)
    assert out[0].metainfo['sweep_head_names'] == tuple(model.head_names)


# ------------------------------------------------------------------ exact N runs
def test_each_head_ends_as_its_single_head_run():
    """Three heads (two lrs, a weight decay, a two-block concatenation, paramwise
    norm decay) trained together for 4 steps end with the weights of three separate
    runs: the single-head sweep of each entry, and mmseg's ordinary single-head model
    started from the same head weights."""
    data = batches(4)
    optim = dict(OPTIM, constructor='SweepOptimWrapperConstructor')
    sweep = train(build(sweep_cfg(heads=ENTRIES)), optim, data)
    for i, entry in enumerate(ENTRIES):
        alone = build(sweep_cfg(heads=[entry]))
        start = copy.deepcopy(alone.heads[0].state_dict())
        assert not torch.equal(start['conv_seg.weight'],
                               sweep.heads[i].state_dict()['conv_seg.weight'])
        train(alone, optim, data)
        for k, v in sweep.heads[i].state_dict().items():
            torch.testing.assert_close(alone.heads[0].state_dict()[k], v, rtol=1e-6,
                                       atol=1e-7, msg=f'head {i} {k}')
        # mmseg's own model: the head on its blocks, its own AdamW
        k = len(entry['blocks'])
        head = dict(HEAD, in_index=list(range(k)) if k > 1 else 0,
                    **(dict(input_transform='resize_concat') if k > 1 else {}))
        plain_cfg = sweep_cfg()
        for key in ('heads', 'sweep'):
            plain_cfg.pop(key)
        plain = build(dict(plain_cfg, type='BatchedSlideEncoderDecoder',
                           backbone=dict(BACKBONE, out_indices=entry['blocks']),
                           decode_head=head))
        # the same (in real use: pretrained) backbone, the same starting head
        plain.backbone.load_state_dict(alone.backbone.state_dict())
        plain.decode_head.load_state_dict(start)
        opt = copy.deepcopy(OPTIM)
        opt['optimizer'].update(lr=entry['lr'],
                                weight_decay=entry.get('weight_decay', 0.01))
        train(plain, opt, data)
        for k2, v in sweep.heads[i].state_dict().items():
            torch.testing.assert_close(plain.decode_head.state_dict()[k2], v, rtol=1e-6,
                                       atol=1e-7, msg=f'head {i} {k2} vs mmseg')


def test_a_head_starts_the_same_whatever_else_is_in_the_sweep():
    both = build(sweep_cfg(heads=ENTRIES))
    one = build(sweep_cfg(heads=[ENTRIES[2]], init_seed=0))
    torch.testing.assert_close(one.heads[0].state_dict(), both.heads[2].state_dict())
    other = build(sweep_cfg(heads=[ENTRIES[2]], init_seed=1))
    assert not torch.equal(other.heads[0].conv_seg.weight, one.heads[0].conv_seg.weight)


@pytest.mark.parametrize('change,match', [
    (dict(clip_grad=dict(max_norm=1.0)), 'clip_grad'),
    (dict(type='AmpOptimWrapper', dtype='float16'), 'loss scale'),
    (dict(type='AmpOptimWrapper'), 'loss scale'),
])
def test_what_would_couple_the_heads_is_refused(change, match):
    model = build(sweep_cfg(heads=ENTRIES))
    with pytest.raises(ValueError, match=match):
        build_optim_wrapper(model, dict(OPTIM, constructor='SweepOptimWrapperConstructor',
                                        **change))


@pytest.mark.parametrize('strategy, optim, match', [
    (dict(fp16=dict(enabled=True)), {}, 'loss scale'),
    ({}, dict(clip_grad=dict(max_norm=1.0)), 'couples the heads'),
    (dict(gradient_clipping=0.5), {}, 'couples the heads')])
def test_what_would_couple_the_heads_under_deepspeed_is_refused(tmp_path, strategy,
                                                                 optim, match):
    from internvit_dense.engine import InternViTDeepSpeedStrategy
    model = build(sweep_cfg(heads=ENTRIES))
    ds = InternViTDeepSpeedStrategy(work_dir=str(tmp_path),
                                    zero_optimization=dict(stage=2), **strategy)
    cfg = dict(OPTIM, constructor='SweepOptimWrapperConstructor', **optim)
    with pytest.raises(ValueError, match=match):
        ds.build_optim_wrapper(cfg, model)
    # the same settings on an ordinary single-head model are DeepSpeed's to apply
    ds = InternViTDeepSpeedStrategy(work_dir=str(tmp_path),
                                    zero_optimization=dict(stage=2), **strategy)
    ds._refuse_coupled_heads(torch.nn.Conv2d(3, 5, 1))


def test_a_trainable_backbone_neck_or_aux_head_is_refused():
    with pytest.raises(ValueError, match='backbone.frozen=True'):
        MODELS.build(sweep_cfg(heads=ENTRIES, backbone=dict(frozen=False)))
    with pytest.raises(ValueError, match='neck=None and auxiliary_head=None'):
        MODELS.build(sweep_cfg(heads=ENTRIES, neck=dict(type='Feature2Pyramid')))
    model = build(sweep_cfg(heads=ENTRIES))
    model.backbone.blocks[0].attn.proj.weight.requires_grad_(True)
    with pytest.raises(ValueError, match='blocks.0.attn.proj.weight'):
        build_optim_wrapper(model, dict(OPTIM, constructor='SweepOptimWrapperConstructor'))


def test_each_head_gets_its_own_lr_and_weight_decay_group():
    model = build(sweep_cfg(heads=ENTRIES))
    wrapper = build_optim_wrapper(model, dict(OPTIM, constructor='SweepOptimWrapperConstructor'))
    groups = wrapper.optimizer.param_groups
    for i, (entry, head) in enumerate(zip(ENTRIES, model.heads)):
        mine = [g for g in groups if g['sweep_head'] == model.head_names[i]]
        assert {id(p) for g in mine for p in g['params']} == {id(p) for p in head.parameters()}
        assert {g['lr'] for g in mine} == {entry['lr']}
        bn = [g for g in mine if g['params'][0] is head.bn.weight][0]
        assert bn['weight_decay'] == 0.0  # paramwise norm_decay_mult, inside the head
        conv = [g for g in mine if g['params'][0] is head.conv_seg.weight][0]
        assert conv['weight_decay'] == entry.get('weight_decay', 0.01)


# ------------------------------------------------------------------ evaluation
def test_one_pass_scores_every_head_as_iou_metric_scores_it_alone():
    model = build(sweep_cfg(heads=ENTRIES))
    train(model, dict(OPTIM, constructor='SweepOptimWrapperConstructor'), batches(3))
    model.eval()
    meta = dict(classes=tuple(f'c{i}' for i in range(CLASSES)))
    data = batches(2, size=70)
    sweep_metric = SweepIoUMetric()
    sweep_metric.dataset_meta = meta
    with torch.no_grad():
        for x, samples in data:
            sweep_metric.process({}, [s.to_dict() for s in model.predict(x, samples)])
    one_pass = sweep_metric.evaluate(len(data) * 2)
    for i, name in enumerate(model.head_names):
        model.select(i)
        alone = IoUMetric()
        alone.dataset_meta = meta
        with torch.no_grad():
            for x, samples in data:
                fresh = [SegDataSample(metainfo=s.metainfo, gt_sem_seg=s.gt_sem_seg)
                         for s in samples]
                alone.process({}, [s.to_dict() for s in model.predict(x, fresh)])
        assert alone.evaluate(len(data) * 2)['mIoU'] == one_pass[f'sweep/{name}/mIoU']
    assert one_pass['mIoU'] == one_pass[f'sweep/{model.head_names[0]}/mIoU']  # selected: 0


def test_the_best_head_is_picked_on_the_named_metric_and_written(tmp_path):
    entries = expand_sweep(dict(lr=[1e-3, 1e-2], blocks='all'), None, HEAD, 3)
    names = [e['name'] for e in entries]
    held = {f'sweep/{n}/mIoU': v for n, v in zip(names, [3, 9, 1, 9, 2, 5])}
    val = {f'sweep/{n}/mIoU': v for n, v in zip(names, [8, 1, 7, 6, 5, 4])}
    best = best_head(held, names)
    assert best == 1  # the first of the two 9s; never the val-best (0)
    with pytest.raises(KeyError, match='SweepIoUMetric'):
        best_head({'mIoU': 1.0}, names)
    rows = write_sweep_results(str(tmp_path), entries, held, val, best)
    table = json.loads((tmp_path / 'results.json').read_text())
    assert [r['held_out'] for r in table['heads']] == [3, 9, 1, 9, 2, 5]
    assert [r['selected'] for r in rows] == [False, True, False, False, False, False]
    assert (tmp_path / 'results.csv').read_text().count('\n') == 7
    assert f'| {names[1]} * |' in (tmp_path / 'results.md').read_text()
    assert (tmp_path / 'heatmap.png').stat().st_size > 1000
    assert (tmp_path / 'layers.png').stat().st_size > 1000


# ------------------------------------------------------------------ held-out split
def test_the_held_out_split_is_disjoint_seeded_and_complete(demo_root):
    from mmseg_internvit.datasets import HeldOutSplit
    ds = dict(type='ADE20KDataset', data_root=demo_root,
              data_prefix=dict(img_path='images/training',
                               seg_map_path='annotations/training'), pipeline=[])
    held = HeldOutSplit(ds, size=3, seed=0, part='held_out')
    rest = HeldOutSplit(ds, size=3, seed=0, part='train')
    names = lambda s: {s.get_data_info(i)['img_path'] for i in range(len(s))}  # noqa: E731
    assert len(held) == 3 and len(rest) == len(held.dataset) - 3
    assert not names(held) & names(rest)
    assert names(held) | names(rest) == names(held.dataset)
    assert names(HeldOutSplit(ds, size=3, seed=0)) == names(held)
    assert names(HeldOutSplit(ds, size=3, seed=1)) != names(held)
    with pytest.raises(ValueError, match='leaving none to train on'):
        HeldOutSplit(ds, size=len(held.dataset))
    with pytest.raises(ValueError, match="part must be 'held_out' or 'train'"):
        HeldOutSplit(ds, part='val')


# ------------------------------------------------------------------ end to end
DEMO_SWEEP = (ROOT / 'configs/demo' /
              'sweep-linear_internvit-tiny-frozen_1xb4-80it_demo-ade20k-196x196.py')


def test_train_select_and_test_through_the_tools(tmp_path, demo_root):
    """tools/train.py on the embedded photographs: the heads train, the held-out split
    selects one, the tables and plots are written; tools/test.py on the checkpoint
    reports the same selected head."""
    from conftest import load_tool, train_user_config
    root = repr(str(Path(demo_root)))
    # 3 of the demo's 12 heads: 3 single blocks at one lr (the layer curve still draws)
    body = (f"model = dict(backbone=dict(init_cfg=None), "
            f"sweep=dict(lr=[4e-3], blocks=[[1], [3], [5]]))\n"
            f"train_dataloader = dict(dataset=dict(dataset=dict(data_root={root})))\n"
            f"val_dataloader = dict(dataset=dict(data_root={root}))\n"
            f"test_dataloader = val_dataloader\n"
            f"select_dataloader = dict(dataset=dict(dataset=dict(data_root={root})))\n"
            f"val_cfg = dict(select_dataloader=select_dataloader)\n"
            f"test_cfg = dict(select_dataloader=select_dataloader)\n")
    cfg, ckpt, log = train_user_config(tmp_path, str(DEMO_SWEEP), body)
    table = json.loads((tmp_path / 'work' / 'sweep' / 'results.json').read_text())
    heads = table['heads']
    assert [h['head'] for h in heads] == ['b1', 'b3', 'b5']
    chosen = [h for h in heads if h['selected']]
    assert len(chosen) == 1
    assert chosen[0]['held_out'] == max(h['held_out'] for h in heads)
    assert f"sweep: selected head {chosen[0]['head']} (on the held-out split)" in log
    assert 'HeldOutSplit: train part, 7 of 10 images' in log
    for name in ('results.md', 'results.csv', 'heatmap.png', 'layers.png'):
        assert (tmp_path / 'work' / 'sweep' / name).is_file()
    # the checkpoint was written before its iteration's validation: tools/test.py
    # selects again, on the held-out split, with the checkpoint's weights
    test = load_tool('test')
    metrics = test.main([str(cfg), str(ckpt), '--work-dir', str(tmp_path / 'test')])
    assert metrics['mIoU'] == metrics[f"sweep/{chosen[0]['head']}/mIoU"]
    assert metrics['sweep/selected'] == heads.index(chosen[0])
    assert metrics[f"select/sweep/{chosen[0]['head']}/mIoU"] == chosen[0]['held_out']
    # the selected head as an ordinary model: mmseg's test and inferencer use it as is
    export = load_tool('export_sweep_head')
    single_cfg, single_ckpt = export.main([str(cfg), str(ckpt), str(tmp_path / 'best')])
    assert Path(single_cfg).name == f"{chosen[0]['head']}.py"
    plain = test.main([single_cfg, single_ckpt, '--work-dir', str(tmp_path / 'test1')])
    assert plain['mIoU'] == metrics['mIoU']
    from mmseg.apis import MMSegInferencer
    image = sorted(Path(demo_root, 'images', 'validation').glob('*.jpg'))[0]
    out = MMSegInferencer(single_cfg, single_ckpt, device='cpu')(str(image))
    assert out['predictions'].shape == Image.open(image).size[::-1]
    assert {f'sweep/{h["head"]}/mIoU' for h in heads} <= set(metrics)


# ------------------------------------------------------------------ the leaves
SWEEP_LEAVES = sorted((ROOT / 'configs' / 'internvit_sweep').glob('*.py'))


def test_there_is_a_sweep_leaf_per_release_and_dataset():
    names = {p.name for p in SWEEP_LEAVES}
    for release in ('6b-224px', '6b-448px-v1-0', '6b-448px-v1-2', '6b-448px-v1-5',
                    '6b-448px-v2-5', '300m-448px'):
        for dataset in ('ade20k', 'coco-stuff164k'):
            assert (f'sweep-linear_internvit-{release}-frozen_8xb2-80k_{dataset}-504x504.py'
                    in names)
    assert len(names) == 12


@pytest.mark.parametrize('path', SWEEP_LEAVES, ids=lambda p: p.name)
def test_a_sweep_leaf_is_its_linear_leaf_with_a_grid(path):
    """Each sweep leaf = the linear-probing leaf of the same release and dataset (same
    backbone, pipelines, schedule) with 24 heads whose grid holds that leaf's own head
    (its block, its lr), a held-out split taken from the training set, and the
    selection in validation and testing; built tiny, its heads train."""
    from conftest import assert_optimizer_holds_trainable_params, cached_config
    from mmseg.registry import MODELS
    from test_segmentation import tiny_model_cfg
    cfg = cached_config(path)
    linear = cached_config(ROOT / 'configs' / 'internvit' / path.name.replace(
        'sweep-linear_', 'linear_'))
    assert cfg.model.type == 'SweepEncoderDecoder'
    b, lb = dict(cfg.model.backbone), dict(linear.model.backbone)
    b.pop('out_indices'), lb.pop('out_indices')
    assert b == lb and b['frozen']
    assert cfg.model.decode_head == linear.model.decode_head
    num_layers = lb.get('num_layers') or mmseg_internvit.resolve_preset(lb['arch'])['num_layers']
    entries = expand_sweep(cfg.model.get('sweep'), cfg.model.get('heads'),
                           cfg.model.decode_head, num_layers)
    assert len(entries) == 24
    own = [i % num_layers for i in linear.model.backbone.out_indices]
    lr = linear.optim_wrapper.optimizer.lr
    assert any(e['blocks'] == own and e['lr'] == lr for e in entries), (own, lr)
    assert cfg.param_scheduler == linear.param_scheduler
    assert cfg.train_cfg == linear.train_cfg
    inner = cfg.train_dataloader.dataset
    assert inner.type == 'HeldOutSplit' and inner.part == 'train'
    assert inner.dataset == linear.train_dataloader.dataset
    for loop in (cfg.val_cfg, cfg.test_cfg):
        assert loop.select_on == 'held_out'
        held = loop.select_dataloader.dataset
        assert held.part == 'held_out' and (held.size, held.seed) == (inner.size, inner.seed)
        assert held.dataset.data_prefix == inner.dataset.data_prefix
        assert held.dataset.pipeline == linear.test_pipeline
    assert cfg.val_evaluator.type == cfg.test_evaluator.type == 'SweepIoUMetric'
    assert cfg.val_dataloader == linear.val_dataloader
    if path.name != SWEEP_LEAVES[0].name:
        return  # the other leaves build the same classes: one tiny build is enough
    # tiny: the blocks shrink with the backbone, the grid stays 24 heads
    cfg = tiny_model_cfg(cfg)
    cfg.model.backbone.out_indices = [-1]
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert len(model.heads) == 24
    assert_optimizer_holds_trainable_params(model, cfg.optim_wrapper)


# ------------------------------------------------------------------ distributed
def _head_losses(work: Path) -> dict:
    out = {}
    for path in sorted(work.glob('*/vis_data/scalars.json')):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            out.update({(rec['iter'], k): v for k, v in rec.items()
                        if k.endswith('.loss_ce')})
    return out


def test_a_sweep_trains_and_selects_under_ddp_and_zero2(tmp_path, demo_root):
    """tools/dist_train.sh with two processes (gloo): plain DDP and the ZeRO-2
    strategy train the same 3 heads to the same per-head losses, and both select
    and write the results table."""
    import os
    import subprocess
    import sys

    from safetensors.torch import save_file

    from internvit_dense.dist import free_port
    root = repr(str(Path(demo_root)))
    # one frozen "pretrained" backbone for both runs (runners draw random numbers in
    # different orders before building the model)
    tiny = dict(embed_dims=32, num_layers=4, num_heads=2, mlp_hidden_dims=64, img_size=56)
    torch.manual_seed(2)
    backbone = MODELS.build(dict(BACKBONE, **tiny))
    ckpt = str(tmp_path / 'backbone.safetensors')
    save_file({k: v.contiguous() for k, v in backbone.state_dict().items()}, ckpt)
    (tmp_path / 'ddp.py').write_text(
        f"_base_ = {str(DEMO_SWEEP)!r}\n"
        "crop_size = (56, 56)\n"
        "model = dict(data_preprocessor=dict(size=crop_size),\n"
        f"             backbone=dict(init_cfg=dict(checkpoint={ckpt!r}), **{tiny!r}),\n"
        "             sweep=dict(lr=[4e-3, 1e-2], blocks=[[1], [3]]))\n"
        "train_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,\n"
        f"    dataset=dict(dataset=dict(data_root={root})))\n"
        "val_dataloader = dict(num_workers=0, persistent_workers=False,\n"
        f"    dataset=dict(data_root={root}))\n"
        "test_dataloader = val_dataloader\n"
        f"select_dataloader = dict(num_workers=0, dataset=dict(dataset=dict(data_root={root})))\n"
        "val_cfg = dict(select_dataloader=select_dataloader)\n"
        "train_cfg = dict(max_iters=4, val_interval=4)\n"
        "param_scheduler = []\n"
        "default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=4))\n"
        "randomness = dict(seed=0)\n")
    (tmp_path / 'zero2.py').write_text(
        f"_base_ = ['./ddp.py', '{ROOT}/configs/_base_/deepspeed/zero2_bf16.py']\n"
        "strategy = dict(bf16=dict(enabled=False), with_cp=False)\n")
    runs = {}
    for name in ('ddp', 'zero2'):
        work = tmp_path / f'work_{name}'
        env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()))
        cmd = ['bash', str(ROOT / 'tools' / 'dist_train.sh'), str(tmp_path / f'{name}.py'),
               '2', '--work-dir', str(work)]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, f'{name}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}'
        table = json.loads((work / 'sweep' / 'results.json').read_text())
        assert [h['head'] for h in table['heads']] == [
            'b1_lr0.004', 'b1_lr0.01', 'b3_lr0.004', 'b3_lr0.01']
        assert sum(h['selected'] for h in table['heads']) == 1
        runs[name] = _head_losses(work), table
    ddp, zero2 = runs['ddp'][0], runs['zero2'][0]
    assert len(ddp) == 16 and ddp.keys() == zero2.keys()
    for key, value in ddp.items():
        assert zero2[key] == pytest.approx(value, rel=1e-5), key
    # mIoU in percent with 2 decimals; fp32 rounding of ZeRO's flat buffers may move
    # a near-tie pixel of these 4-step heads
    for a, b in zip(runs['ddp'][1]['heads'], runs['zero2'][1]['heads']):
        assert a['val'] == pytest.approx(b['val'], abs=0.05), a['head']
        assert a['selected'] == b['selected'], a['head']
