"""DeepSpeed ZeRO through mmengine's FlexibleRunner, on CPU with gloo.

Every run goes through ``tools/dist_train.sh`` (torchrun on the loopback address), as a
user would launch it, with a tiny UperNet InternViT on the embedded ADE20K-layout data.
Runs that are compared start from the same plain checkpoint (``load_from``, which is
itself one of the things under test) with the same seed, no dropout / drop path, and
fp32 unless stated.
"""
import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import load_tool

from internvit_dense.dist import free_port

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / 'configs' / 'demo' / 'upernet_internvit-tiny_1xb4-600it_demo-ade20k-196x196.py'
ITERS = 6
# ZeRO-2 reduces gradients by reduce-scatter over flat fp32 buckets and DDP by
# all-reduce over its own buckets. With two ranks each sum has two terms, so the order
# cannot differ and the measured losses are bit-identical; we allow 1e-5 relative so
# that a larger bucket layout (more ranks) does not fail the test on rounding.
LOSS_RTOL = 1e-5

TINY_CONFIG = """
_base_ = '{demo}'
data_root = '{data}'
crop_size = (64, 64)
bn = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(embed_dims=32, num_layers=4, num_heads=2, mlp_hidden_dims=64,
                  img_size=64, out_indices=[0, 1, 2, 3], drop_path_rate=0.0),
    neck=dict(embed_dim=32, norm_cfg=bn),
    decode_head=dict(in_channels=[32] * 4, channels=16, dropout_ratio=0.0, norm_cfg=bn),
    auxiliary_head=dict(in_channels=32, channels=8, dropout_ratio=0.0, norm_cfg=bn))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadCheckedAnnotations', num_classes=150, reduce_zero_label=True),
    dict(type='RandomResize', scale=(256, 64), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = dict(num_workers=0, persistent_workers=False,
                       dataset=dict(data_root=data_root))
optim_wrapper = dict(optimizer=dict(lr=1e-3), paramwise_cfg=dict(num_layers=4),
                     clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=3),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=3, end={iters})]
train_cfg = dict(max_iters={iters}, val_interval=1000)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=2, max_keep_ckpts=10, save_best=None))
custom_hooks = []
randomness = dict(seed=0)
"""

# Kills its own process with SIGKILL (no clean-up, as a preempted job dies) on rank 0
# once iteration KILL_AT has finished; the last checkpoint is the one before it.
KILL_HOOK = """
import os, signal
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

@HOOKS.register_module()
class KillAtIterHook(Hook):
    priority = 'LOWEST'

    def __init__(self, at):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at and runner.rank == 0:
            os.kill(os.getpid(), signal.SIGKILL)


# Sends SIGUSR1 (slurm's warning before a time limit) to rank 0 only after iteration
# `at`: PreemptionHook must stop every rank at the same iteration.
@HOOKS.register_module()
class SignalAtIterHook(Hook):
    priority = 'NORMAL'

    def __init__(self, at):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at and runner.rank == 0:
            os.kill(os.getpid(), signal.SIGUSR1)
"""


@pytest.fixture(scope='module')
def setup(demo_root, tmp_path_factory):
    """The tiny config, a shared initial checkpoint and the kill hook module."""
    base = tmp_path_factory.mktemp('ds')
    cfg = base / 'tiny.py'
    cfg.write_text(TINY_CONFIG.format(demo=DEMO_CONFIG, data=demo_root, iters=ITERS))
    (base / 'kill_hook.py').write_text(KILL_HOOK)
    (base / 'killed.py').write_text(
        "_base_ = './tiny.py'\n"
        "custom_imports = dict(imports=['mmseg_internvit', 'kill_hook'],\n"
        "                      allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='KillAtIterHook', at=5)]\n")
    (base / 'preempted_zero2.py').write_text(
        "_base_ = './tiny_zero2.py'\n"
        "custom_imports = dict(imports=['mmseg_internvit', 'kill_hook'],\n"
        "                      allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='PreemptionHook'), dict(type='SignalAtIterHook', at=5)]\n")
    # the way users switch a config to ZeRO: a leaf inheriting it and a strategy base
    # (here in fp32, for the loss comparison)
    (base / 'tiny_zero2.py').write_text(
        f"_base_ = ['./tiny.py', '{ROOT}/configs/_base_/deepspeed/zero2_bf16.py']\n"
        "strategy = dict(bf16=dict(enabled=False), with_cp=False)\n")
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    import mmseg_internvit  # noqa: F401
    with DefaultScope.overwrite_default_scope('mmseg'):
        torch.manual_seed(1)
        model = MODELS.build(Config.fromfile(str(cfg)).model)
        model.init_weights()
    init = base / 'init.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, init)
    return dict(base=base, cfg=str(cfg), init=str(init))


def dist_train(setup, work, nproc, *args, check=True, config=None, nodes=1):
    """``bash tools/dist_train.sh CONFIG NPROC ...``; returns the finished process.
    ``nodes=2``: two "nodes" of ``nproc // 2`` processes each on this machine, one
    ``dist_train.sh`` per node with ``NNODES=2 NODE_RANK=0/1`` (torchrun's static
    rendezvous on 127.0.0.1), as on two real nodes."""
    port = str(free_port())
    env = dict(os.environ, PYTHON=sys.executable, PORT=port,
               PYTHONPATH=f"{setup['base']}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    cmd = ['bash', str(ROOT / 'tools' / 'dist_train.sh'), config or setup['cfg'],
           str(nproc // nodes), '--work-dir', str(work), *args]
    procs = [subprocess.Popen(cmd, cwd=ROOT, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE,
                              env=dict(env, NNODES=str(nodes), NODE_RANK=str(rank),
                                       MASTER_ADDR='127.0.0.1'))
             for rank in range(nodes)]
    outs = [p.communicate(timeout=600) for p in procs]
    proc = subprocess.CompletedProcess(
        cmd, max(p.returncode for p in procs), ''.join(o[0] for o in outs),
        ''.join(o[1] for o in outs))
    if check and proc.returncode != 0:
        raise AssertionError(f'{" ".join(cmd)} ({nodes} node(s)) failed:\n'
                             f'{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}')
    return proc


def logged(work) -> dict:
    """iteration -> (loss, lr) from every run in a work dir (later runs win)."""
    out = {}
    for path in sorted(glob.glob(osp.join(str(work), '*', 'vis_data', 'scalars.json'))):
        for line in Path(path).read_text().splitlines():
            rec = json.loads(line)
            if 'loss' in rec:
                out[rec['iter']] = (rec['loss'], rec['lr'])
    return out


@pytest.fixture(scope='module')
def plain_run(setup):
    work = setup['base'] / 'plain'
    dist_train(setup, work, 2, '--cfg-options', f"load_from={setup['init']}")
    return work


@pytest.fixture(scope='module')
def plain_single_run(setup):
    work = setup['base'] / 'plain1'
    dist_train(setup, work, 1, '--cfg-options', f"load_from={setup['init']}")
    return work


@pytest.fixture(scope='module')
def zero2_run(setup):
    """ZeRO-2 over two nodes of one process each (localhost, gloo)."""
    work = setup['base'] / 'zero2'
    dist_train(setup, work, 2, '--cfg-options', f"load_from={setup['init']}",
               config=str(setup['base'] / 'tiny_zero2.py'), nodes=2)
    return work


def assert_same_losses(a: dict, b: dict, iters, rtol=LOSS_RTOL):
    for i in iters:
        assert i in a and i in b, f'iteration {i} missing: {sorted(a)} / {sorted(b)}'
        assert b[i][1] == pytest.approx(a[i][1], rel=1e-9), f'lr differs at iter {i}'
        assert b[i][0] == pytest.approx(a[i][0], rel=rtol), \
            f'loss differs at iter {i}: {a[i][0]} vs {b[i][0]}'


# ------------------------------------------------------------------- equality and resume
def test_zero2_on_two_nodes_matches_plain_ddp(plain_run, zero2_run):
    plain, zero2 = logged(plain_run), logged(zero2_run)
    assert sorted(plain) == list(range(1, ITERS + 1))
    assert_same_losses(plain, zero2, range(1, ITERS + 1))
    # the runs learn (the comparison is not between two constant sequences)
    assert len({round(v[0], 4) for v in plain.values()}) == ITERS
    # a DeepSpeed checkpoint is a directory with one optimizer shard per rank
    ckpt = zero2_run / f'iter_{ITERS}.pth'
    assert len(glob.glob(str(ckpt / '*optim_states.pt'))) == 2
    assert (zero2_run / 'last_checkpoint').read_text().strip() == str(ckpt)


def test_killed_run_resumes_and_loses_nothing(setup, plain_run):
    """SIGKILL right after iteration 5 (last checkpoint: 4), then `--resume`: the
    iteration counter, lr schedule, optimizer state and data order carry on and
    iterations 5 and 6 reproduce the uninterrupted run."""
    work = setup['base'] / 'killed_plain'
    proc = dist_train(setup, work, 2, '--cfg-options', f"load_from={setup['init']}",
                      check=False, config=str(setup['base'] / 'killed.py'))
    assert proc.returncode != 0, 'the run was supposed to be killed'
    assert (work / 'last_checkpoint').read_text().strip().endswith('iter_4.pth')
    assert not (work / 'iter_6.pth').exists()

    proc = dist_train(setup, work, 2, '--resume')
    assert 'resumed epoch: 0, iter: 4' in proc.stdout + proc.stderr
    assert_same_losses(logged(plain_run), logged(work), (5, 6), rtol=1e-6)
    assert (work / f'iter_{ITERS}.pth').exists()


def test_preempted_zero2_run_on_two_nodes_saves_resumes_and_loses_nothing(setup,
                                                                           zero2_run):
    """Two nodes of one process (torchrun --nnodes 2 --node_rank 0/1 on 127.0.0.1),
    ZeRO-2: SIGUSR1 to rank 0 after iteration 5, mid-interval (checkpoints every 2):
    both ranks stop there, the DeepSpeed checkpoint iter_5 is written whole, the run
    exits with 75; `--resume` continues from 5 and iteration 6 reproduces the
    uninterrupted two-node run."""
    work = setup['base'] / 'preempted_zero2'
    proc = dist_train(setup, work, 2, '--cfg-options', f"load_from={setup['init']}",
                      check=False, config=str(setup['base'] / 'preempted_zero2.py'),
                      nodes=2)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and 'exiting with status 75' in out, out[-3000:]
    ckpt = work / 'iter_5.pth'
    assert (work / 'last_checkpoint').read_text().strip() == str(ckpt)
    assert len(glob.glob(str(ckpt / '*optim_states.pt'))) == 2  # both ranks' shards
    assert not glob.glob(str(work / '*.part')) and not (work / 'iter_6.pth').exists()
    proc = dist_train(setup, work, 2, '--resume', config=str(setup['base'] / 'tiny_zero2.py'),
                      nodes=2)
    assert 'resumed epoch: 0, iter: 5' in proc.stdout + proc.stderr
    assert_same_losses(logged(zero2_run), logged(work), (6, ), rtol=1e-6)
    # and the final weights are those of the uninterrupted run
    final = [torch.load(next((w / f'iter_{ITERS}.pth').glob('mp_rank_00_model_states.pt')),
                        weights_only=False)['module'] for w in (zero2_run, work)]
    assert final[0].keys() == final[1].keys()
    for key, value in final[0].items():
        assert torch.allclose(final[1][key], value, rtol=1e-6, atol=1e-7), key


# ---------------------------------------------------------------------- consolidation
def test_consolidation_round_trips_exactly_and_loads_in_plain_tools(setup, zero2_run):
    consolidate_zero_checkpoint = load_tool('consolidate_zero_checkpoint')
    test_tool = load_tool('test')
    ckpt = zero2_run / f'iter_{ITERS}.pth'
    out = setup['base'] / 'consolidated.pth'
    consolidate_zero_checkpoint.main([str(ckpt), str(out)])
    state = torch.load(out, weights_only=False)
    assert state['meta']['iter'] == ITERS
    # ZeRO-2 in fp32: the model states hold the trained module; the consolidated
    # weights, rebuilt from the two ranks' fp32 partitions, must equal it bit for bit
    module = torch.load(next(ckpt.glob('mp_rank_00_model_states.pt')),
                        weights_only=False)['module']
    assert set(state['state_dict']) == set(module)
    for key, value in module.items():
        assert state['state_dict'][key].dtype == value.dtype, key
        assert torch.equal(state['state_dict'][key], value), key
    # and it differs from the initial weights (training happened)
    init = torch.load(setup['init'], weights_only=False)['state_dict']
    assert not torch.equal(init['backbone.blocks.0.attn.qkv.weight'],
                           module['backbone.blocks.0.attn.qkv.weight'])
    # tools/test.py evaluates it with the plain runner
    metrics = test_tool.main([setup['cfg'], str(out),
                              '--work-dir', str(setup['base'] / 'test')])
    assert 'mIoU' in metrics
    # the DeepSpeed directory itself is refused with the instruction to consolidate
    with pytest.raises(IsADirectoryError, match='consolidate'):
        test_tool.main([setup['cfg'], str(ckpt)])


def test_zero3_bf16_checkpointed_single_process_trains_and_saves(setup, plain_single_run):
    """ZeRO-3 with bf16 and InternViT activation checkpointing, launched as one
    process: trains, saves partitioned checkpoints, consolidates to a full model."""
    work = setup['base'] / 'zero3'
    dist_train(setup, work, 1, '--zero', '3', '--amp', '--cfg-options',
               f"load_from={setup['init']}", 'strategy.with_cp=True')
    losses, plain = logged(work), logged(plain_single_run)
    assert sorted(losses) == list(range(1, ITERS + 1))
    # bf16 weights and activations against the fp32 plain run of the same single
    # process: equal to bf16 precision (measured: within 2e-3 relative)
    assert_same_losses(plain, losses, range(1, ITERS + 1), rtol=1e-2)
    ckpt = work / f'iter_{ITERS}.pth'
    assert glob.glob(str(ckpt / 'bf16_zero_pp_rank_0_*optim_states.pt'))
    consolidate_zero_checkpoint = load_tool('consolidate_zero_checkpoint')
    from internvit_dense.engine import load_plain_checkpoint
    out = consolidate_zero_checkpoint.main([str(ckpt), str(setup['base'] / 'z3.pth')])
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(Config.fromfile(setup['cfg']).model)
    load_plain_checkpoint(model, out)  # strict: every key present, every shape right


def test_published_leaf_trains_under_its_own_zero1(setup, demo_root, tmp_path):
    """The head-tuning leaf as published, DeepSpeed ZeRO-1 bf16 with fp32 heads (only
    shrunk and pointed at the demo data), trains in one process: finite losses, ZeRO
    checkpoint directories, the trainable neck and heads move while the frozen
    backbone does not."""
    leaf = ROOT / 'configs/internvit/upernet_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py'
    cfg = tmp_path / 'head_tuning_tiny.py'
    cfg.write_text(
        f"_base_ = '{leaf}'\n"
        "bn = dict(type='BN', requires_grad=True)\n"
        "model = dict(data_preprocessor=dict(size=(64, 64)),\n"
        "    backbone=dict(embed_dims=32, num_heads=2, num_layers=4, mlp_hidden_dims=64,\n"
        "                  img_size=64, init_cfg=None),\n"
        "    decode_head=dict(channels=16, norm_cfg=bn),\n"
        "    auxiliary_head=dict(channels=8, norm_cfg=bn), test_cfg=dict(mode='whole'))\n"
        "from mmseg_internvit.datasets.pipelines import seg_pipelines\n"
        "train_pipeline, _, _ = seg_pipelines((64, 64), 150, True)\n"
        "train_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(\n"
        f"    data_root='{demo_root}', pipeline=train_pipeline))\n"
        "val_dataloader = None\nval_cfg = None\nval_evaluator = None\n"
        "optim_wrapper = dict(optimizer=dict(lr=1e-2))\n"
        "train_cfg = dict(max_iters=3, val_interval=1000)\n"
        "default_hooks = dict(logger=dict(interval=1),\n"
        "                     checkpoint=dict(interval=1, max_keep_ckpts=3))\n"
        "randomness = dict(seed=0)\n")
    work = tmp_path / 'work'
    dist_train(setup, work, 1, config=str(cfg))
    losses = [loss for loss, _ in logged(work).values()]
    assert len(losses) == 3 and all(map(math.isfinite, losses)), losses
    read = load_tool('consolidate_zero_checkpoint').read_zero_checkpoint
    first, _ = read(str(work / 'iter_1.pth'))
    last, _ = read(str(work / 'iter_3.pth'))
    for key in ('decode_head.conv_seg.weight', 'neck.upsample_4x.0.weight',
                'auxiliary_head.convs.0.conv.weight'):
        assert not torch.equal(first[key].float(), last[key].float()), key
    # the frozen backbone has no fp32 master copy: its weights are in the model states
    from internvit_dense.engine.deepspeed import check_deepspeed_checkpoint

    def module_states(ckpt):
        check_deepspeed_checkpoint(str(ckpt))
        path = glob.glob(str(ckpt / '*model_states.pt'))[0]
        return torch.load(path, map_location='cpu', weights_only=False)['module']
    frozen = ('backbone.blocks.0.attn.qkv.weight', 'backbone.pos_embed')
    a, b = module_states(work / 'iter_1.pth'), module_states(work / 'iter_3.pth')
    assert all(key not in first for key in frozen)
    for key in frozen:
        assert a[key].dtype == torch.bfloat16 and torch.equal(a[key], b[key]), key


# ------------------------------------------------------------------ strategy settings
LEAF_CONFIGS = sorted(glob.glob(str(ROOT / 'configs' / 'internvit*' / 'deepspeed' / '*.py')))


@pytest.mark.parametrize('path', LEAF_CONFIGS, ids=osp.basename)
def test_deepspeed_leaf_configs_only_add_a_strategy(path, tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    parent = Config.fromfile(osp.join(osp.dirname(path), '..',
                                      osp.basename(path).rsplit('_zero', 1)[0] + '.py'))
    stage = int(path.rsplit('_zero', 1)[1][0])
    assert cfg.strategy.type == 'InternViTDeepSpeedStrategy'
    assert cfg.strategy.zero_optimization.stage == stage
    assert cfg.strategy.bf16.enabled and cfg.strategy.with_cp
    for key in ('model', 'optim_wrapper', 'param_scheduler', 'train_dataloader',
                'train_cfg'):
        assert cfg[key] == parent[key], key
    wrapper = make_strategy(tmp_path)._to_deepspeed_optim_wrapper(cfg.optim_wrapper)
    assert wrapper['constructor'] == 'InternViTLayerDecayOptimizerConstructor'



def make_strategy(tmp_path, **kwargs):
    from internvit_dense.engine import InternViTDeepSpeedStrategy
    return InternViTDeepSpeedStrategy(work_dir=str(tmp_path), **kwargs)


def test_strategy_keeps_the_configs_optimizer_and_moves_precision_and_clipping(tmp_path):
    strategy = make_strategy(tmp_path, zero_optimization=dict(stage=2))
    cfg = strategy._to_deepspeed_optim_wrapper(dict(
        type='AmpOptimWrapper', dtype='bfloat16', clip_grad=dict(max_norm=3.0),
        optimizer=dict(type='AdamW', lr=4e-5),
        constructor='InternViTLayerDecayOptimizerConstructor',
        paramwise_cfg=dict(num_layers=48, layer_decay_rate=0.95)))
    assert cfg['type'] == 'DeepSpeedOptimWrapper'
    assert cfg['constructor'] == 'InternViTLayerDecayOptimizerConstructor'
    assert cfg['paramwise_cfg'] == dict(num_layers=48, layer_decay_rate=0.95)
    assert 'clip_grad' not in cfg and 'dtype' not in cfg
    assert strategy.config['gradient_clipping'] == 3.0
    assert strategy.config['bf16'] == dict(enabled=True)
    # bf16 under DeepSpeed 0.19: buffers follow the parameters, images too
    assert strategy.config['data_types']['buffer_dtype'] == 'bf16'
    assert strategy._inputs_to_half == ['inputs']
    with pytest.raises(ValueError, match='norm_type'):
        make_strategy(tmp_path)._to_deepspeed_optim_wrapper(dict(
            optimizer=dict(type='AdamW', lr=1e-4),
            clip_grad=dict(max_norm=1.0, norm_type=1)))
    with pytest.raises(ValueError, match='ColossalAIOptimWrapper'):
        make_strategy(tmp_path)._to_deepspeed_optim_wrapper(dict(
            type='ColossalAIOptimWrapper', optimizer=dict(type='AdamW', lr=1e-4)))


def test_strategy_layer_decay_groups_and_frozen_params(tmp_path):
    """The layer-decay constructor's groups reach DeepSpeed unchanged; frozen params
    get no optimizer state (so ZeRO neither partitions them nor saves states)."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    import mmseg_internvit  # noqa: F401
    from internvit_dense.engine import internvit_layer_id
    for frozen in (False, True):
        cfg = Config.fromfile(str(DEMO_CONFIG))
        if frozen:
            cfg.model.backbone.update(frozen=True, param_dtype='bfloat16')
        strategy = make_strategy(tmp_path, with_cp=True)
        with DefaultScope.overwrite_default_scope('mmseg'):
            model = strategy.build_model(cfg.model)
            wrapper = strategy.build_optim_wrapper(cfg.optim_wrapper, model)
        assert type(wrapper).__name__ == 'DeepSpeedOptimWrapper'
        assert model.backbone.with_cp is True
        held = {id(p) for g in wrapper.optimizer.param_groups for p in g['params']}
        assert held == {id(p) for p in model.parameters() if p.requires_grad}
        if frozen:
            assert not any(id(p) in held for p in model.backbone.parameters())
            continue
        # lr of block i = base lr * 0.95 ** (num_layers + 1 - layer id)
        base_lr = cfg.optim_wrapper.optimizer.lr
        names = {id(p): n for n, p in model.named_parameters()}
        for group in wrapper.optimizer.param_groups:
            name = names[id(group['params'][0])]
            layer = (internvit_layer_id(name[len('backbone.'):], 6)
                     if name.startswith('backbone.') else 7)
            assert group['lr'] == pytest.approx(base_lr * 0.95 ** (6 + 1 - layer)), name


def test_plain_load_from_mismatch_names_the_keys(tmp_path):
    from internvit_dense.engine import load_plain_checkpoint
    from mmseg_internvit import CheckpointMismatchError
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    bad = tmp_path / 'bad.pth'
    torch.save({'state_dict': {'0.weight': torch.zeros(3, 2), '0.bias': torch.zeros(4),
                               'extra.weight': torch.zeros(1)}}, bad)
    with pytest.raises(CheckpointMismatchError) as err:
        load_plain_checkpoint(model, str(bad))
    msg = str(err.value)
    assert str(bad) in msg and '1.weight' in msg and 'extra.weight' in msg
    assert '0.bias: checkpoint (4,) vs model (3,)' in msg
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_plain_checkpoint(model, str(tmp_path / 'nope.pth'))


def test_resume_rules_of_train_py(tmp_path, setup):
    train = load_tool('train')
    ds_dir = tmp_path / 'iter_2.pth'
    ds_dir.mkdir()
    (ds_dir / 'mp_rank_00_model_states.pt').write_bytes(b'')
    with pytest.raises(ValueError, match='--zero'):
        train.main([setup['cfg'], '--resume', str(ds_dir), '--work-dir', str(tmp_path)])
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        train.main([setup['cfg'], '--resume', str(tmp_path / 'missing.pth')])


def test_cpu_launcher_needs_the_rendezvous_environment(monkeypatch):
    from internvit_dense import dist
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    if torch.cuda.is_available():
        pytest.skip('the workaround is for machines without CUDA')
    with pytest.raises(RuntimeError, match='MASTER_ADDR'):
        dist.init_cpu_process_group('pytorch')
    assert dist.init_cpu_process_group('none') is False


def test_pinned_deepspeed_works_with_mmengine():
    """mmengine 0.10.7 imports deepspeed.runtime.fp16.onebit when it registers
    DeepSpeed's optimizers; DeepSpeed >= 0.19.7 removed it. The pin must be the
    installed version and the registration must work."""
    import deepspeed
    import mmengine
    pins = dict(line.split('==') for line in
                (ROOT / 'requirements' / 'deepspeed.txt').read_text().splitlines()
                if '==' in line and not line.startswith('#'))
    assert deepspeed.__version__ == pins['deepspeed']
    assert mmengine.__version__.startswith('0.10.')
    # in a fresh process: the registration runs once per process
    proc = subprocess.run([sys.executable, '-c', (
        'from mmengine._strategy.deepspeed import register_deepspeed_optimizers; '
        'print(register_deepspeed_optimizers())')], capture_output=True, text=True)
    assert proc.returncode == 0 and 'OnebitAdam' in proc.stdout, proc.stderr[-2000:]


def test_cpu_runs_turn_sync_bn_into_bn():
    from mmengine.config import Config

    from internvit_dense.dist import sync_bn_to_bn
    cfg = Config.fromfile(str(DEMO_CONFIG))
    assert 'SyncBN' in str(cfg.model)
    assert sync_bn_to_bn(cfg.model) >= 2  # decode head, auxiliary head (the neck: LN2d)
    assert 'SyncBN' not in str(cfg.model) and "'BN'" in str(cfg.model)


def test_consolidation_config_restores_excluded_frozen_weights(setup, tmp_path):
    """With exclude_frozen_parameters=True a run saves no frozen weights;
    `--config` takes them from the config's initialised model, and refuses to invent
    trainable ones."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    import consolidate_zero_checkpoint as tool
    frozen_cfg = tmp_path / 'frozen.py'
    frozen_cfg.write_text(f"_base_ = '{setup['cfg']}'\n"
                          "model = dict(backbone=dict(frozen=True))\n")
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(Config.fromfile(str(frozen_cfg)).model)
    trained = {k: v for k, v in model.state_dict().items()
               if not k.startswith('backbone.')}
    state = dict(trained)
    tool.fill_frozen_weights(state, str(frozen_cfg))
    assert set(state) == set(model.state_dict())
    for key, value in trained.items():
        assert state[key] is value  # the run's own weights are never replaced
    with pytest.raises(KeyError, match='trainable'):
        tool.fill_frozen_weights(dict(trained), setup['cfg'])  # backbone trainable there
