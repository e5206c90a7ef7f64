"""Checkpoints never run code when loaded, and whole-model checkpoints load strictly.

A crafted ``.pth`` whose unpickling would create a file goes through every entry point
(``load_from``, ``--resume``, tools/test.py, tools/infer.py, mmseg's own inference API):
each refuses it with an error naming the file and the offending global, and the file is
never created. Every checkpoint our own tools write still loads.
"""
import os
import os.path as osp
from pathlib import Path

import pytest
import torch
from conftest import load_tool, train_user_config
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmseg_internvit  # noqa: F401  registers the classes
from internvit_dense import CheckpointMismatchError, UnsafeCheckpointError
from internvit_dense.safe_load import load_run_checkpoint, portable_history_buffers, unsafe_globals

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = str(ROOT / 'configs/demo/upernet_internvit-tiny_1xb4-600it_demo-ade20k-196x196.py')
TINY_BODY = (
    "model = dict(backbone=dict(embed_dims=32, num_heads=2, mlp_hidden_dims=64, "
    "num_layers=4, out_indices=[0, 1, 2, 3]),\n"
    "             neck=dict(embed_dim=32), decode_head=dict(in_channels=[32] * 4, "
    "channels=16),\n"
    "             auxiliary_head=dict(in_channels=32, channels=8))\n")


class _RunsCommand:
    """Unpickling this calls ``os.system`` (a shell command), as a hostile file would."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command, )


@pytest.fixture(scope='module')
def trained(tmp_path_factory, demo_root):
    """A tiny model trained 2 iterations on the demo data through tools/train.py."""
    tmp = tmp_path_factory.mktemp('safe')
    body = TINY_BODY + (
        f"data_root = '{demo_root}'\n"
        "train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, "
        "dataset=dict(data_root=data_root))\n"
        "val_dataloader = dict(num_workers=0, persistent_workers=False, "
        "dataset=dict(data_root=data_root))\n"
        "test_dataloader = val_dataloader\n"
        "custom_hooks = []\n")
    cfg, ckpt, _ = train_user_config(tmp, DEMO_CONFIG, body)
    return dict(cfg=cfg, ckpt=ckpt, tmp=tmp, image=sorted(
        Path(demo_root, 'images', 'validation').glob('*.jpg'))[0])


def hostile_copy(ckpt: Path, out: Path, marker: Path) -> Path:
    """``ckpt`` with an object in its meta whose unpickling creates ``marker``; all the
    weights are there, so only the hostile object can make loading fail."""
    data = torch.load(ckpt, weights_only=True)
    data['meta']['note'] = _RunsCommand(f'touch {marker}')
    with portable_history_buffers():  # as our runners save: the object is the only issue
        torch.save(data, out)
    return out


@pytest.fixture
def evil(trained, tmp_path):
    marker = tmp_path / 'pwned'
    path = hostile_copy(trained['ckpt'], tmp_path / 'evil.pth', marker)
    return path, marker


def assert_refused(excinfo, path, marker):
    msg = str(excinfo.value)
    assert str(path) in msg and 'system' in msg, msg  # the file and the global
    assert 'trust' in msg  # and how to proceed
    assert not marker.exists(), 'the hostile object ran'


def test_the_hostile_file_really_runs_code_without_the_allow_list(evil):
    # guards the fixture: were the object harmless, the refusals below would prove nothing
    path, marker = evil
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_unsafe_globals_are_named_without_unpickling(evil):
    path, marker = evil
    found = unsafe_globals(str(path))
    assert len(found) == 1 and 'system' in found[0], found
    with pytest.raises(UnsafeCheckpointError) as err:
        load_run_checkpoint(str(path))
    assert_refused(err, path, marker)


@pytest.mark.parametrize('how', ['load_from', 'resume'])
def test_train_py_refuses(trained, evil, tmp_path, how):
    path, marker = evil
    train = load_tool('train')
    args = (['--cfg-options', f'load_from={path}', 'train_cfg.max_iters=3']
            if how == 'load_from' else
            ['--resume', str(path), '--cfg-options', 'train_cfg.max_iters=3'])
    with pytest.raises(UnsafeCheckpointError) as err:
        train.main([str(trained['cfg']), '--work-dir', str(tmp_path / 'w')] + args)
    assert_refused(err, path, marker)


def test_test_py_refuses(trained, evil, tmp_path):
    path, marker = evil
    test_tool = load_tool('test')
    with pytest.raises(UnsafeCheckpointError) as err:
        test_tool.main([str(trained['cfg']), str(path), '--work-dir', str(tmp_path / 'w')])
    assert_refused(err, path, marker)


def test_infer_py_refuses(trained, evil, tmp_path):
    path, marker = evil
    infer = load_tool('infer')
    with pytest.raises(UnsafeCheckpointError) as err:
        infer.main([str(trained['cfg']), str(path), str(trained['image']),
                    '--out-dir', str(tmp_path / 'out')])
    assert_refused(err, path, marker)


def test_mmseg_init_model_refuses(trained, evil):
    # mmseg's own API reads through mmengine's loader and torch's weights_only default;
    # the allow-list we add does not open it to other globals
    from mmseg.apis import init_model
    path, marker = evil
    with pytest.raises(Exception, match='system'):
        init_model(str(trained['cfg']), str(path), device='cpu')
    assert not marker.exists()


def test_trust_checkpoint_is_an_explicit_opt_in(trained, evil, tmp_path):
    path, marker = evil
    test_tool = load_tool('test')
    test_tool.main([str(trained['cfg']), str(path), '--work-dir', str(tmp_path / 'w'),
                    '--trust-checkpoint'])
    assert marker.exists()


# ------------------------------------------------------------------ our own files load
def test_mmengine_history_buffers_need_getattr_unless_saved_portably(trained, tmp_path):
    # why our runners save inside portable_history_buffers(): mmengine's own pickling
    # of a HistoryBuffer goes through builtins.getattr, which no safe loader may allow
    data = torch.load(trained['ckpt'], weights_only=True)
    plain = tmp_path / 'plain.pth'
    torch.save(data, plain)
    assert unsafe_globals(str(plain)) == ['builtins.getattr']
    with pytest.raises(UnsafeCheckpointError, match="mmengine's own Runner"):
        load_run_checkpoint(str(plain))
    buffers = load_run_checkpoint(str(plain), trust=True)['message_hub']['log_scalars']
    portable = tmp_path / 'portable.pth'
    with portable_history_buffers():
        torch.save(data, portable)
    assert unsafe_globals(str(portable)) == []
    restored = load_run_checkpoint(str(portable))['message_hub']['log_scalars']
    assert restored.keys() == buffers.keys()
    for key, buf in restored.items():
        assert buf.mean() == buffers[key].mean() and buf.current() == buffers[key].current()



def test_run_checkpoint_needs_only_the_allow_list(trained):
    assert unsafe_globals(str(trained['ckpt'])) == []
    ckpt = load_run_checkpoint(str(trained['ckpt']))
    assert ckpt['meta']['iter'] == 2 and 'message_hub' in ckpt


def test_amp_checkpoint_loads(trained, tmp_path):
    # mmengine's AmpOptimWrapper saves the GradScaler state next to the optimizer's;
    # AMP needs an accelerator in mmengine, so its file is made from the plain one
    data = torch.load(trained['ckpt'], weights_only=True)
    data['optimizer']['loss_scaler'] = torch.amp.GradScaler('cpu').state_dict()
    path = tmp_path / 'amp.pth'
    with portable_history_buffers():
        torch.save(data, path)
    assert unsafe_globals(str(path)) == []
    assert 'loss_scaler' in load_run_checkpoint(str(path))['optimizer']


def test_resume_continues_a_plain_run(trained, tmp_path):
    import shutil
    work = tmp_path / 'w'
    work.mkdir()
    shutil.copy(trained['ckpt'], work / 'iter_2.pth')
    (work / 'last_checkpoint').write_text(str(work / 'iter_2.pth'))
    train = load_tool('train')
    runner = train.main([str(trained['cfg']), '--work-dir', str(work), '--resume',
                         '--cfg-options', 'train_cfg.max_iters=3'])
    assert runner.iter == 3 and (work / 'iter_3.pth').is_file()


# ------------------------------------------------------------------ strict loading
def empty_and_misshaped(trained, tmp_path):
    data = torch.load(trained['ckpt'], weights_only=True)
    empty = tmp_path / 'empty.pth'
    torch.save(dict(meta=data['meta'], state_dict={}), empty)
    state = dict(data['state_dict'])
    state['decode_head.conv_seg.weight'] = state['decode_head.conv_seg.weight'][:3]
    state['something.else'] = torch.zeros(1)
    bad = tmp_path / 'bad.pth'
    torch.save(dict(meta=data['meta'], state_dict=state), bad)
    return empty, bad


def test_test_py_loads_strictly(trained, tmp_path):
    test_tool = load_tool('test')
    empty, bad = empty_and_misshaped(trained, tmp_path)
    with pytest.raises(CheckpointMismatchError, match=r'missing keys \(\d+\)') as err:
        test_tool.main([str(trained['cfg']), str(empty), '--work-dir', str(tmp_path / 'w')])
    assert str(empty) in str(err.value) and 'backbone.blocks.{0-3}' in str(err.value)
    with pytest.raises(CheckpointMismatchError) as err:
        test_tool.main([str(trained['cfg']), str(bad), '--work-dir', str(tmp_path / 'w')])
    msg = str(err.value)
    assert 'unexpected keys (1): something.else' in msg
    assert 'decode_head.conv_seg.weight: checkpoint (3,' in msg


def test_infer_py_loads_strictly(trained, tmp_path):
    infer = load_tool('infer')
    empty, _ = empty_and_misshaped(trained, tmp_path)
    with pytest.raises(CheckpointMismatchError, match='missing keys'):
        infer.main([str(trained['cfg']), str(empty), str(trained['image']),
                    '--out-dir', str(tmp_path / 'out')])
    assert not osp.exists(tmp_path / 'out' / (trained['image'].stem + '.png'))


# ------------------------------------------------------------------ layer decay
def build_model(cfg_path, **backbone):
    cfg = Config.fromfile(str(cfg_path))
    cfg.model.backbone.update(backbone)
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    return cfg, MODELS.build(cfg.model)


def test_layer_decay_reads_the_depth_from_the_model(trained):
    # the config states no depth: a 4-block backbone gets 4-block decay, whatever arch
    from mmengine.optim import build_optim_wrapper
    cfg, model = build_model(trained['cfg'], num_layers=4, out_indices=[0, 1, 2, 3])
    wrapper = dict(cfg.optim_wrapper)
    wrapper['paramwise_cfg'] = dict(layer_decay_rate=0.5)
    groups = build_optim_wrapper(model, wrapper).optimizer.param_groups
    scales = {g['layer_id']: g['lr_scale'] for g in groups}
    assert set(scales) == {0, 1, 2, 3, 4, 5}
    assert scales[5] == 1.0 and scales[4] == 0.5 and scales[0] == 0.5**5
    assert max(g['lr_scale'] for g in groups) == 1.0


def test_layer_decay_refuses_a_stale_depth(trained):
    # a 48-block config switched to a 24-block arch (here 4 -> 2 blocks) used to give
    # the extra blocks lr multipliers above 1; a stated depth must match the model
    from mmengine.optim import build_optim_wrapper
    cfg, model = build_model(trained['cfg'], num_layers=4, out_indices=[0, 1, 2, 3])
    wrapper = dict(cfg.optim_wrapper)
    wrapper['paramwise_cfg'] = dict(num_layers=2, layer_decay_rate=0.5)
    with pytest.raises(ValueError, match='num_layers=2 but the model.s InternViT has 4'):
        build_optim_wrapper(model, wrapper)


def test_deepspeed_conversion_keeps_the_depth_check(trained):
    from internvit_dense.engine import InternViTDeepSpeedStrategy
    cfg, model = build_model(trained['cfg'], num_layers=4, out_indices=[0, 1, 2, 3])
    strategy = InternViTDeepSpeedStrategy(zero_optimization=dict(stage=2))
    wrapper = dict(cfg.optim_wrapper)
    wrapper['paramwise_cfg'] = dict(num_layers=2, layer_decay_rate=0.5)
    converted = strategy._to_deepspeed_optim_wrapper(wrapper)
    assert converted['constructor'] == 'InternViTLayerDecayOptimizerConstructor'
    from mmengine.optim import build_optim_wrapper
    with pytest.raises(ValueError, match='num_layers=2'):
        build_optim_wrapper(model, dict(converted, type='OptimWrapper'))
