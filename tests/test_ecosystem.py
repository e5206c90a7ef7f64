"""Our configs and checkpoints under OpenMMLab's own entry points (the tools packaged
inside mmseg and mmdet, MMSegInferencer, init_model / inference_model), Hugging Face
model ids resolved from a hub cache built here, and the package layout (a core that
needs neither mmseg nor mmdet, nor mmcv's compiled ops)."""
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = str(ROOT / 'configs/demo/upernet_internvit-tiny_1xb4-600it_demo-ade20k-196x196.py')
ZERO2 = str(ROOT / 'configs/_base_/deepspeed/zero2_bf16.py')


def packaged_tool(library: str, name: str) -> str:
    """mmseg's / mmdet's own tools/NAME.py, shipped inside the pip package."""
    import importlib
    package = importlib.import_module(library)
    path = osp.join(osp.dirname(package.__file__), '.mim', 'tools', f'{name}.py')
    assert osp.isfile(path), f'{library} ships no {path}'
    return path


def run(args, cwd, env=None, timeout=600):
    env = dict(os.environ, **(env or {}))
    # the checkout, not an installed copy, is what is tested
    env['PYTHONPATH'] = str(ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    proc = subprocess.run([sys.executable] + [str(a) for a in args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def user_config(tmp_path, demo_root, bases, name='user_cfg.py', extra=''):
    cfg = tmp_path / name
    bases = ', '.join(repr(b) for b in bases)
    cfg.write_text(textwrap.dedent(f"""\
        _base_ = [{bases}]
        model = dict(backbone=dict(embed_dims=32, num_heads=2, mlp_hidden_dims=64,
                                   num_layers=4, out_indices=[0, 1, 2, 3]),
                     neck=dict(embed_dim=32),
                     decode_head=dict(in_channels=[32] * 4, channels=16),
                     auxiliary_head=dict(in_channels=32, channels=8))
        data_root = '{demo_root}'
        train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                                dataset=dict(data_root=data_root))
        val_dataloader = dict(num_workers=0, persistent_workers=False,
                              dataset=dict(data_root=data_root))
        test_dataloader = val_dataloader
        train_cfg = dict(max_iters=2, val_interval=2)
        default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1))
        custom_hooks = []
        """) + extra)
    return cfg


@pytest.fixture(scope='module')
def packaged_run(tmp_path_factory, demo_root):
    """A tiny config trained through mmseg's own packaged tools/train.py."""
    tmp = tmp_path_factory.mktemp('packaged')
    cfg = user_config(tmp, demo_root, [DEMO_CONFIG])
    work = tmp / 'work'
    proc = run([packaged_tool('mmseg', 'train'), cfg, '--work-dir', work], cwd=tmp)
    assert 'InternViTRunner' in proc.stdout + proc.stderr or (work / 'iter_2.pth').is_file()
    return dict(cfg=cfg, ckpt=work / 'iter_2.pth', work=work, tmp=tmp, image=sorted(
        Path(demo_root, 'images', 'validation').glob('*.jpg'))[0])


def test_mmseg_packaged_train_and_test(packaged_run):
    assert packaged_run['ckpt'].is_file()
    proc = run([packaged_tool('mmseg', 'test'), packaged_run['cfg'], packaged_run['ckpt'],
                '--work-dir', packaged_run['tmp'] / 'test'], cwd=packaged_run['tmp'])
    assert 'mIoU' in proc.stdout + proc.stderr


def test_mmseg_packaged_train_runs_a_deepspeed_config(tmp_path, demo_root):
    # the strategy base sets runner_type, so mmseg's script builds FlexibleRunner;
    # fp32 ZeRO-2 in one process keeps the test short
    cfg = user_config(tmp_path, demo_root, [DEMO_CONFIG, ZERO2],
                      extra='strategy = dict(bf16=dict(enabled=False))\n')
    work = tmp_path / 'work'
    run([packaged_tool('mmseg', 'train'), cfg, '--work-dir', work], cwd=tmp_path)
    states = list((work / 'iter_2.pth').glob('*model_states.pt'))
    assert states, 'no DeepSpeed checkpoint directory: the run did not use ZeRO'
    assert list((work / 'iter_2.pth').glob('*optim_states.pt'))


def test_mmseg_inferencer_and_init_model(packaged_run):
    from mmseg.apis import MMSegInferencer, inference_model, init_model
    from mmseg.datasets import ADE20KDataset
    img = str(packaged_run['image'])
    # mmseg's inferencer takes the model's classes from the checkpoint, but draws with
    # Cityscapes' unless told the dataset (its own models are no different)
    inferencer = MMSegInferencer(model=str(packaged_run['cfg']),
                                 weights=str(packaged_run['ckpt']), device='cpu',
                                 dataset_name='ade20k')
    out = inferencer(img, return_datasamples=True)
    h, w = out.pred_sem_seg.data.shape[-2:]
    from PIL import Image
    assert (h, w) == Image.open(img).size[::-1]
    classes = ADE20KDataset.METAINFO['classes']
    assert tuple(inferencer.model.dataset_meta['classes']) == tuple(classes)
    assert tuple(inferencer.visualizer.dataset_meta['classes']) == tuple(classes)
    assert len(inferencer.visualizer.dataset_meta['palette']) == 150
    model = init_model(str(packaged_run['cfg']), str(packaged_run['ckpt']), device='cpu')
    assert tuple(model.dataset_meta['classes']) == tuple(classes)
    result = inference_model(model, img)
    assert torch.equal(result.pred_sem_seg.data, out.pred_sem_seg.data)


# ------------------------------------------------------------------ package layout
def test_mmdet_package_does_not_import_mmseg():
    proc = run(['-c', "import sys, mmdet_internvit; "
                "print(sorted(m for m in sys.modules if m.startswith('mmseg')))"],
               cwd=ROOT)
    assert proc.stdout.strip().splitlines()[-1] == '[]', proc.stdout


LITE = textwrap.dedent("""\
    # what a machine with mmcv-lite (no compiled ops) and no mmseg / mmdet has
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('mmseg', 'mmdet') or name.startswith(
                    ('mmcv._ext', 'mmcv.ops')):
                raise ImportError(f'{name} is not available (mmcv-lite)')
    sys.meta_path.insert(0, Block())
    import torch
    from safetensors.torch import save_file
    from internvit_dense import InternViT
    import internvit_dense.engine, internvit_dense.registry  # noqa: F401
    kw = dict(arch='internvit-300m-448px', embed_dims=32, num_heads=2,
              mlp_hidden_dims=64, num_layers=2, img_size=28)
    src = InternViT(**kw)
    src.init_weights()
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, sys.argv[1])
    m = InternViT(**kw, init_cfg=dict(type='Pretrained', checkpoint=sys.argv[1]))
    m.init_weights()
    x = torch.randn(1, 3, 28, 28)
    assert torch.equal(m(x)[0], src(x)[0])
    print('ok', sorted(n for n in sys.modules if n.startswith(('mmseg', 'mmdet', 'mmcv.ops'))))
    """)


def test_core_imports_and_loads_with_mmcv_lite(tmp_path):
    script = tmp_path / 'lite.py'
    script.write_text(LITE)
    proc = run([script, tmp_path / 'w.safetensors'], cwd=tmp_path)
    assert proc.stdout.strip().splitlines()[-1] == 'ok []'


# ------------------------------------------------------------------ Hugging Face ids
def hub_repo(cache: Path, repo_id: str, files: dict, rev: str = 'a' * 40) -> Path:
    """A model in the hub cache's own layout: blobs, snapshots/REV/* links, refs/main."""
    import hashlib
    root = cache / ('models--' + repo_id.replace('/', '--'))
    (root / 'blobs').mkdir(parents=True)
    (root / 'refs').mkdir()
    (root / 'refs' / 'main').write_text(rev)
    snap = root / 'snapshots' / rev
    snap.mkdir(parents=True)
    for name, write in files.items():
        tmp = root / 'blobs' / 'tmp'
        write(tmp)
        blob = root / 'blobs' / hashlib.sha256(tmp.read_bytes()).hexdigest()
        tmp.rename(blob)
        os.symlink(osp.relpath(blob, snap), snap / name)
    return snap


HUB_SCRIPT = textwrap.dedent("""\
    import sys, torch
    from internvit_dense import InternViT
    kw = dict(arch='internvit-300m-448px', embed_dims=32, num_heads=2,
              mlp_hidden_dims=64, num_layers=2, img_size=28)
    init = dict(type='Pretrained', checkpoint=sys.argv[1])
    if len(sys.argv) > 2:
        init['ignore_extra_keys'] = True
    m = InternViT(**kw, init_cfg=init)
    m.init_weights()
    print('cls', float(m.cls_token.flatten()[0]))
    """)


def tiny_hf_weights() -> dict:
    """HF-layout weights of the tiny 300M-family InternViT HUB_SCRIPT builds."""
    from internvit_reference import hf_state_dict_for, tiny_arch
    arch = tiny_arch('300m', embed_dims=32, num_heads=2, mlp_hidden_dims=64, num_layers=2)
    return hf_state_dict_for(arch, grid=2)


@pytest.fixture
def hub_cache(tmp_path):
    """HF-layout weights of a tiny InternViT under two ids: a plain InternViT and a
    sharded chat model whose language-model shard is not in the cache."""
    state = tiny_hf_weights()
    state['embeddings.class_embedding'] = torch.full_like(
        state['embeddings.class_embedding'], 0.25)
    cache = tmp_path / 'hub'
    hub_repo(cache, 'OpenGVLab/InternViT-300M-448px-V2_5', {
        'model.safetensors': lambda p: save_file(state, str(p)),
        'config.json': lambda p: p.write_text('{}')})
    vision = {'vision_model.' + k: v for k, v in state.items()}
    vision['vision_model.embeddings.class_embedding'] = torch.full_like(
        state['embeddings.class_embedding'], 0.5)
    index = dict(metadata={}, weight_map={**{k: 'model-00001-of-00002.safetensors'
                                             for k in vision},
                                          'language_model.lm_head.weight':
                                          'model-00002-of-00002.safetensors'})
    hub_repo(cache, 'OpenGVLab/InternVL2_5-1B', {
        'model.safetensors.index.json': lambda p: p.write_text(json.dumps(index)),
        'model-00001-of-00002.safetensors': lambda p: save_file(vision, str(p))})
    script = tmp_path / 'hub.py'
    script.write_text(HUB_SCRIPT)
    env = dict(HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE='1', HF_HOME=str(tmp_path / 'home'))
    return dict(cache=cache, script=script, env=env, tmp=tmp_path)


def test_hub_id_loads_from_the_cache_offline(hub_cache):
    proc = run([hub_cache['script'], 'OpenGVLab/InternViT-300M-448px-V2_5'],
               cwd=hub_cache['tmp'], env=hub_cache['env'])
    assert 'cls 0.25' in proc.stdout


def test_hub_chat_id_needs_only_the_vision_shards(hub_cache):
    # the language model's shard is not in the cache: it must not be needed
    proc = run([hub_cache['script'], 'OpenGVLab/InternVL2_5-1B', 'ignore'],
               cwd=hub_cache['tmp'], env=hub_cache['env'])
    assert 'cls 0.5' in proc.stdout


def test_hub_id_neither_cached_nor_reachable_is_named(hub_cache):
    proc = subprocess.run(
        [sys.executable, str(hub_cache['script']), 'OpenGVLab/InternViT-6B-224px'],
        cwd=hub_cache['tmp'], capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT), **hub_cache['env']))
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "'OpenGVLab/InternViT-6B-224px'" in last and 'HF_HUB_OFFLINE' in last, last


def test_local_path_wins_over_a_hub_id_of_the_same_spelling(hub_cache):
    state = tiny_hf_weights()
    state['embeddings.class_embedding'] = torch.full_like(
        state['embeddings.class_embedding'], 0.75)
    local = hub_cache['tmp'] / 'OpenGVLab' / 'InternViT-300M-448px-V2_5'
    local.mkdir(parents=True)
    save_file(state, str(local / 'model.safetensors'))
    proc = run([hub_cache['script'], 'OpenGVLab/InternViT-300M-448px-V2_5'],
               cwd=hub_cache['tmp'], env=hub_cache['env'])
    assert 'cls 0.75' in proc.stdout
