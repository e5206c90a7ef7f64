"""Cluster robustness of checkpoints: files written under a temporary name and renamed
when complete, auto-resume skipping a half-written newest checkpoint, and unreadable
files that name themselves in every loader."""
import glob
import os
import os.path as osp
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import load_tool

from internvit_dense.safe_load import CorruptCheckpointError, load_run_checkpoint

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / 'configs/demo/upernet_internvit-tiny_1xb4-600it_demo-ade20k-196x196.py'
TINY = """
_base_ = {demo!r}
data_root = {data!r}
bn = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(embed_dims=32, num_layers=4, num_heads=2, mlp_hidden_dims=64,
                  out_indices=[0, 1, 2, 3], drop_path_rate=0.0),
    decode_head=dict(channels=16, dropout_ratio=0.0, norm_cfg=bn),
    auxiliary_head=dict(channels=8, dropout_ratio=0.0, norm_cfg=bn))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_cfg = None
val_evaluator = None
val_dataloader = None
test_dataloader = dict(num_workers=0, persistent_workers=False, batch_size=1,
                       dataset=dict(type='ADE20KDataset', data_root=data_root,
                                    data_prefix=dict(img_path='images/validation',
                                                     seg_map_path='annotations/validation'),
                                    pipeline=_base_.test_pipeline))
param_scheduler = []
train_cfg = dict(max_iters={iters}, val_interval=1000)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=10, save_best=None))
custom_hooks = []
randomness = dict(seed=0)
"""


def write_cfg(tmp_path, demo_root, iters, name='tiny.py'):
    path = tmp_path / name
    path.write_text(TINY.format(demo=str(DEMO), data=demo_root, iters=iters))
    return path


@pytest.fixture(scope='module')
def run(demo_root, tmp_path_factory):
    """A tiny run of 3 iterations with a checkpoint after each."""
    base = tmp_path_factory.mktemp('ckpt')
    cfg = write_cfg(base, demo_root, 3)
    work = base / 'work'
    load_tool('train').main([str(cfg), '--work-dir', str(work)])
    return dict(base=base, cfg=cfg, work=work, demo_root=demo_root)


def cut(path, keep=0.5):
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[:int(len(data) * keep)])


def test_checkpoints_are_complete_and_no_part_file_is_left(run):
    files = sorted(osp.basename(p) for p in glob.glob(str(run['work'] / 'iter_*')))
    assert files == ['iter_1.pth', 'iter_2.pth', 'iter_3.pth']
    assert not glob.glob(str(run['work'] / '*.part'))
    for f in files:
        with zipfile.ZipFile(run['work'] / f) as z:
            assert z.testzip() is None


@pytest.mark.parametrize('damage, match', [
    ('half', r'cut off at \d+ bytes \(no central directory\): half-written'),
    ('empty', r'it is empty \(0 bytes\)'),
    ('text', r'not a torch checkpoint \(it starts with'),
])
def test_an_unreadable_checkpoint_names_itself_in_test_py(run, tmp_path, damage, match):
    """The issue's case: tools/test.py on a checkpoint cut in half (and on an empty or
    a text file) stops with an error naming the file and what is wrong with it."""
    bad = tmp_path / f'{damage}.pth'
    bad.write_bytes((run['work'] / 'iter_3.pth').read_bytes())
    if damage == 'half':
        cut(bad)
    elif damage == 'empty':
        cut(bad, 0)
    else:
        bad.write_text('these are not the weights you are looking for\n')
    with pytest.raises(CorruptCheckpointError, match=match) as err:
        load_tool('test').main([str(run['cfg']), str(bad), '--work-dir',
                                str(tmp_path / 'test')])
    assert str(bad) in str(err.value)
    if damage == 'half':  # and through tools/infer.py and an explicit --resume PATH
        image = sorted(Path(run['demo_root'], 'images', 'validation').glob('*.jpg'))[0]
        with pytest.raises(CorruptCheckpointError, match=f'{bad}.*cut off'):
            load_tool('infer').main([str(run['cfg']), str(bad), str(image), '--out-dir',
                                     str(tmp_path / 'out')])
        with pytest.raises(CorruptCheckpointError, match=f'{bad}.*cut off'):
            load_tool('train').main([str(run['cfg']), '--work-dir', str(tmp_path / 'w'),
                                     '--resume', str(bad)])


def test_load_from_init_cfg_and_the_converters_name_a_cut_file(run, tmp_path):
    from internvit_dense.models import InternViT
    bad = tmp_path / 'cut.pth'
    bad.write_bytes((run['work'] / 'iter_3.pth').read_bytes())
    cut(bad, 0.3)
    with pytest.raises(CorruptCheckpointError, match=f'{bad}.*cut off'):
        load_run_checkpoint(str(bad))
    # load_from through tools/train.py
    with pytest.raises(CorruptCheckpointError, match=f'{bad}.*cut off'):
        load_tool('train').main([str(run['cfg']), '--work-dir', str(tmp_path / 'w'),
                                 '--cfg-options', f'load_from={bad}'])
    # a backbone's init_cfg (the released-weights loader)
    vit = InternViT(arch='internvit-300m-448px', embed_dims=32, num_layers=2, num_heads=2,
                    mlp_hidden_dims=64, init_cfg=dict(type='Pretrained',
                                                      checkpoint=str(bad)))
    with pytest.raises(ValueError, match=f'{bad}.*cut off'):
        vit.init_weights()
    # the converters' reader
    from converter_io import read_state_dict
    with pytest.raises(CorruptCheckpointError, match=f'{bad}.*cut off'):
        read_state_dict(str(bad))


def test_consolidation_names_a_cut_deepspeed_shard(tmp_path):
    shard = tmp_path / 'iter_2.pth' / 'mp_rank_00_model_states.pt'
    shard.parent.mkdir()
    torch.save({'module': {'w': torch.zeros(64, 64)}}, shard)
    cut(shard)
    consolidate = load_tool('consolidate_zero_checkpoint')
    with pytest.raises(CorruptCheckpointError, match=f'{shard}.*cut off'):
        consolidate.read_zero_checkpoint(str(shard.parent))


def test_auto_resume_skips_a_half_written_newest_checkpoint(run, tmp_path):
    """The newest checkpoint cut in half (a node died while writing it, with
    last_checkpoint already naming it): --resume warns, names it, and continues from
    the newest complete one."""
    work = tmp_path / 'work'
    work.mkdir()
    for f in ('iter_1.pth', 'iter_2.pth', 'iter_3.pth'):
        (work / f).write_bytes((run['work'] / f).read_bytes())
    cut(work / 'iter_3.pth')
    (work / 'last_checkpoint').write_text(str(work / 'iter_3.pth'))
    cfg = write_cfg(tmp_path, run['demo_root'], 4)
    load_tool('train').main([str(cfg), '--work-dir', str(work), '--resume'])
    log = sorted(work.glob('*/*.log'))[-1].read_text()
    assert f'skipping incomplete checkpoint {work / "iter_3.pth"}' in log
    assert f'the newest complete checkpoint is {work / "iter_2.pth"}' in log
    assert 'resumed epoch: 0, iter: 2' in log
    ckpt = load_run_checkpoint(str(work / 'iter_4.pth'))
    assert ckpt['meta']['iter'] == 4
    # iteration 3 was trained again: a complete iter_3 replaces the cut one
    assert load_run_checkpoint(str(work / 'iter_3.pth'))['meta']['iter'] == 3


def dying_put(real_put, suffix):
    """LocalBackend.put that writes half of a file ending with ``suffix`` and then
    dies, as a process killed during the save (the bytes on disk, nothing after)."""
    def put(self, obj, filepath):
        if str(filepath).endswith(suffix):
            Path(filepath).write_bytes(obj[:len(obj) // 2])
            raise KeyboardInterrupt('killed during the save')
        return real_put(self, obj, filepath)
    return put


def test_a_save_killed_midway_leaves_the_last_complete_checkpoint(run, tmp_path,
                                                                  monkeypatch):
    """The write of iter_2 dies halfway through (the bytes reach the disk, then the
    process is gone): no iter_2.pth appears, only iter_2.pth.part, and a resume takes
    iter_1."""
    from mmengine.fileio.backends import LocalBackend
    work = tmp_path / 'work'
    real_put = LocalBackend.put
    monkeypatch.setattr(LocalBackend, 'put', dying_put(real_put, 'iter_2.pth.part'))
    with pytest.raises(KeyboardInterrupt):
        load_tool('train').main([str(run['cfg']), '--work-dir', str(work)])
    monkeypatch.setattr(LocalBackend, 'put', real_put)
    assert (work / 'iter_1.pth').is_file() and not (work / 'iter_2.pth').exists()
    assert (work / 'iter_2.pth.part').is_file()
    load_tool('train').main([str(run['cfg']), '--work-dir', str(work), '--resume'])
    log = sorted(work.glob('*/*.log'))[-1].read_text()
    assert 'resumed epoch: 0, iter: 1' in log
    assert not (work / 'iter_2.pth.part').exists()  # overwritten by the new save
    assert os.path.getsize(work / 'iter_3.pth') > 0


SIGNAL_HOOK = """
import os, signal
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class SignalAtIterHook(Hook):
    priority = 'NORMAL'  # before PreemptionHook looks, in the same iteration

    def __init__(self, at, name='SIGUSR1'):
        self.at, self.name = at, name

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:
            os.kill(os.getpid(), getattr(signal, self.name))
"""


def test_the_hook_handles_sigterm_and_sigusr1_during_training_only():
    import signal
    from types import SimpleNamespace

    from internvit_dense.engine import PreemptionHook
    hook = PreemptionHook()
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    hook.before_train(SimpleNamespace(logger=None))
    try:
        for s in before:
            assert signal.getsignal(s) == hook._handler
        signal.raise_signal(signal.SIGTERM)  # recorded, not fatal
        assert hook.received == signal.SIGTERM and hook._stop_requested()
    finally:
        hook.after_train(None)
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_signal_mid_interval_saves_its_iteration_and_resuming_loses_nothing(
        run, tmp_path, monkeypatch, signal_name='SIGUSR1'):
    """A run with checkpoints every 5 iterations is signalled after iteration 2: it
    saves iter_2, exits with 75; --resume continues from 2 (not from the start) and
    ends with the weights of an uninterrupted run, exactly."""
    import signal

    from mmengine.config import Config
    (tmp_path / 'signal_hook.py').write_text(SIGNAL_HOOK)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = write_cfg(tmp_path, run['demo_root'], 6)
    extra = ("default_hooks = dict(checkpoint=dict(interval=5))\n"
             "custom_hooks = [dict(type='PreemptionHook')]\n")
    with open(cfg, 'a') as f:
        f.write(extra)
    signalled = tmp_path / 'signalled.py'
    signalled.write_text(
        f"_base_ = {str(cfg)!r}\n"
        "custom_imports = dict(imports=['mmseg_internvit', 'signal_hook'],\n"
        "                      allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='PreemptionHook'),\n"
        f"                dict(type='SignalAtIterHook', at=2, name={signal_name!r})]\n")
    assert Config.fromfile(str(signalled)).default_hooks.checkpoint.interval == 5
    train = load_tool('train')
    whole = tmp_path / 'whole'
    train.main([str(cfg), '--work-dir', str(whole)])
    work = tmp_path / 'work'
    before = signal.getsignal(getattr(signal, signal_name))
    with pytest.raises(SystemExit) as stop:
        train.main([str(signalled), '--work-dir', str(work)])
    assert stop.value.code == 75
    assert signal.getsignal(getattr(signal, signal_name)) is before  # handlers restored
    assert sorted(p.name for p in work.glob('iter_*')) == ['iter_2.pth']
    assert (work / 'last_checkpoint').read_text().strip() == str(work / 'iter_2.pth')
    log = sorted(work.glob('*/*.log'))[-1].read_text()
    assert f'{signal_name}: saved {work / "iter_2.pth"} at iteration 2' in log
    train.main([str(cfg), '--work-dir', str(work), '--resume'])
    log = sorted(work.glob('*/*.log'))[-1].read_text()
    assert 'resumed epoch: 0, iter: 2' in log
    a = load_run_checkpoint(str(whole / 'iter_6.pth'))['state_dict']
    b = load_run_checkpoint(str(work / 'iter_6.pth'))['state_dict']
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_slurm_train_requeues_or_restarts_on_status_75(tmp_path):
    """tools/slurm_train.sh with stand-ins for srun and scontrol: status 75 inside an
    sbatch job requeues it; from a login node the run starts again with --resume."""
    import subprocess
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    log = tmp_path / 'calls.txt'
    # srun: exits 75 the first time (preempted), 0 after; records its arguments
    (bin_dir / 'srun').write_text(
        '#!/usr/bin/env bash\n'
        f'echo "srun $*" >> {log}\n'
        f'n=$(grep -c "^srun" {log})\n'
        '[ "$n" -eq 1 ] && exit 75\n'
        'exit 0\n')
    (bin_dir / 'scontrol').write_text(f'#!/usr/bin/env bash\necho "scontrol $*" >> {log}\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith('SLURM_')}
    env['PATH'] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    script = str(ROOT / 'tools' / 'slurm_train.sh')
    proc = subprocess.run(['bash', script, 'part', 'job', 'cfg.py', '--work-dir', 'w'],
                          env=env, capture_output=True, text=True, timeout=60)
    calls = log.read_text().splitlines()
    assert proc.returncode == 0, proc.stderr
    assert len(calls) == 2 and '--resume' not in calls[0] and calls[1].endswith('--resume')
    assert calls[0].split('train.py')[1].split() == ['cfg.py', '--launcher', 'slurm',
                                                     '--work-dir', 'w']
    log.unlink()
    proc = subprocess.run(['bash', script, 'part', 'job', 'cfg.py'],
                          env=dict(env, SLURM_JOB_ID='4242'), capture_output=True,
                          text=True, timeout=60)
    calls = log.read_text().splitlines()
    assert proc.returncode == 0, proc.stderr
    assert calls[-1] == 'scontrol requeue 4242' and len(calls) == 2
    # a requeued job resumes
    log.unlink()
    subprocess.run(['bash', script, 'part', 'job', 'cfg.py'],
                   env=dict(env, SLURM_JOB_ID='4242', SLURM_RESTART_COUNT='1'),
                   capture_output=True, text=True, timeout=60)
    assert log.read_text().splitlines()[0].endswith('--resume')


def test_the_checkpoint_hook_writes_the_new_before_removing_the_old(run, tmp_path,
                                                                   monkeypatch):
    """max_keep_ckpts=1 (the demos'): mmengine's hook removes the only checkpoint
    before writing the next one; ours keeps it until the new one is complete, so a
    save dying halfway still leaves iter_1. last_checkpoint is replaced atomically."""
    from mmengine.fileio.backends import LocalBackend
    cfg = tmp_path / 'keep1.py'
    cfg.write_text(f"_base_ = {str(run['cfg'])!r}\n"
                   "default_hooks = dict(checkpoint=dict(max_keep_ckpts=1))\n")
    work = tmp_path / 'work'
    real_put = LocalBackend.put
    monkeypatch.setattr(LocalBackend, 'put', dying_put(real_put, 'iter_2.pth.part'))
    with pytest.raises(KeyboardInterrupt):
        load_tool('train').main([str(cfg), '--work-dir', str(work)])
    monkeypatch.setattr(LocalBackend, 'put', real_put)
    assert (work / 'iter_1.pth').is_file()  # mmengine's order would have removed it
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_1.pth')
    log = sorted(work.glob('*/*.log'))[-1].read_text()
    assert "'type': 'AtomicCheckpointHook'" in log or "type='AtomicCheckpointHook'" in log
    # an uninterrupted run keeps exactly one, the last
    load_tool('train').main([str(cfg), '--work-dir', str(work), '--resume'])
    assert sorted(p.name for p in work.glob('iter_*')) == ['iter_3.pth']
    assert not list(work.glob('*.part'))
