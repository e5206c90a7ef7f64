"""ADE20K segmentation: configs, heads, layer decay, few-shot subsets, data errors, and
one train + val iteration end to end on the embedded demo data."""
import glob
import os.path as osp
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

import mmseg_internvit  # noqa: F401
from conftest import assert_optimizer_holds_trainable_params, load_tool, train_user_config
from internvit_dense.engine import internvit_layer_id

ROOT = Path(__file__).resolve().parents[1]
SEG_CONFIGS = sorted(glob.glob(str(ROOT / 'configs' / 'internvit' / '*.py')) +
                     [p for p in glob.glob(str(ROOT / 'configs' / 'demo' / '*ade20k*.py'))
                      if 'adapter' not in osp.basename(p)])  # those: test_adapter.py
DEMO_CONFIG = str(ROOT / 'configs' / 'demo' /
                  'upernet_internvit-tiny_1xb4-600it_demo-ade20k-196x196.py')
TINY = 32


def tiny_model_cfg(cfg):
    """Shrink the backbone (and the widths that follow it) through the config system."""
    b = cfg.model.backbone
    layers = max(b.out_indices) + 1
    b.update(embed_dims=TINY, num_heads=2, mlp_hidden_dims=2 * TINY, num_layers=layers,
             init_cfg=None, param_dtype=None if not b.get('frozen') else 'bfloat16')
    if 'neck' in cfg.model:
        cfg.model.neck.embed_dim = TINY
    head = cfg.model.decode_head
    if isinstance(head.in_channels, (list, tuple)):
        head.in_channels = [TINY] * len(head.in_channels)
        head.channels = 16
    else:
        head.in_channels = TINY
        head.pop('channels', None)
    if 'auxiliary_head' in cfg.model:
        cfg.model.auxiliary_head.update(in_channels=TINY, channels=8)
    for part in ('neck', 'decode_head', 'auxiliary_head'):
        if part in cfg.model and 'norm_cfg' in cfg.model[part]:
            cfg.model[part].norm_cfg = dict(type='BN', requires_grad=True)
    cfg.optim_wrapper.paramwise_cfg.num_layers = layers
    return cfg


# ----------------------------------------------------------------------------- configs
def test_config_set_is_complete():
    names = {osp.basename(p) for p in SEG_CONFIGS}
    for arch in ('6b-224px', '6b-448px', '300m-448px'):
        for stem in ('linear_internvit-{}-frozen_8xb2-80k_ade20k-504x504',
                     'upernet_internvit-{}-frozen_8xb2-80k_ade20k-504x504',
                     'upernet_internvit-{}_8xb2-80k_ade20k-504x504',
                     'linear_internvit-{}_8xb2-5k_ade20k-1of16-504x504',
                     'linear_internvit-{}_8xb2-10k_ade20k-1of8-504x504',
                     'linear_internvit-{}_8xb2-20k_ade20k-1of4-504x504',
                     'linear_internvit-{}_8xb2-40k_ade20k-1of2-504x504',
                     'linear_internvit-{}_8xb2-80k_ade20k-504x504'):
            assert stem.format(arch) + '.py' in names


@pytest.mark.parametrize('path', SEG_CONFIGS, ids=osp.basename)
def test_every_config_builds_and_runs_tiny(path):
    from mmseg.registry import MODELS
    cfg = tiny_model_cfg(Config.fromfile(path))
    assert cfg.default_scope == 'mmseg'
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    logits = model(torch.randn(2, 3, 56, 56), mode='tensor')  # 2: BN of 1x1 pooling
    side = 56 // 14 * (4 if 'neck' in cfg.model else 1)  # UPerHead works at the 4x level
    assert logits.shape == (2, 150, side, side)
    assert_optimizer_holds_trainable_params(model, cfg.optim_wrapper)


def test_published_recipe_settings():
    base = 'configs/internvit/{}_8xb2-80k_ade20k-504x504.py'
    probe = Config.fromfile(str(ROOT / base.format('linear_internvit-6b-224px-frozen')))
    full = Config.fromfile(str(ROOT / base.format('upernet_internvit-6b-224px')))
    assert probe.model.backbone.out_indices == [44] and probe.model.backbone.frozen
    assert probe.optim_wrapper.optimizer.weight_decay == 0.0
    assert full.model.backbone.out_indices == [11, 23, 35, 47]
    assert full.model.backbone.drop_path_rate == 0.4 and full.model.backbone.with_cp
    assert full.optim_wrapper.type == 'AmpOptimWrapper'
    assert full.optim_wrapper.dtype == 'bfloat16'
    assert full.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.95
    assert full.optim_wrapper.optimizer.lr == 4e-5
    assert full.model.auxiliary_head.loss_decode.loss_weight == 0.4
    assert full.model.test_cfg == dict(mode='slide', crop_size=(504, 504),
                                       stride=(322, 322))
    assert full.train_dataloader.batch_size * 8 == 16
    warmup, poly = full.param_scheduler
    assert (warmup.end, warmup.start_factor, poly.power, poly.eta_min) == (1500, 1e-6,
                                                                          1.0, 0.0)
    crop = [t for t in full.train_dataloader.dataset.pipeline if t.type == 'RandomCrop']
    assert crop[0].crop_size == (504, 504) and crop[0].cat_max_ratio == 0.75
    few = Config.fromfile(str(ROOT / 'configs/internvit/'
                                     'linear_internvit-6b-224px_8xb2-5k_ade20k-1of16-504x504.py'))
    assert few.train_dataloader.dataset.subset_fraction == 1 / 16
    assert few.train_cfg.max_iters == 5000 and few.param_scheduler[0].end == 100
    assert few.param_scheduler[1].end == 5000 and few.model.backbone.out_indices == [47]


@pytest.mark.parametrize('stem,trainable,total', [
    ('linear_internvit-6b-224px-frozen', '0.5M', '5.9B'),
    ('upernet_internvit-6b-224px-frozen', '0.4B', '6.3B'),
    ('upernet_internvit-6b-224px', '6.3B', '6.3B'),
])
def test_meta_device_parameter_counts_match_published(stem, trainable, total):
    model_info = load_tool('model_info')
    path = str(ROOT / f'configs/internvit/{stem}_8xb2-80k_ade20k-504x504.py')
    model, _, _ = model_info.build(model_info.parse_args([path]))
    n_train, n_total = model_info.count_params(model)

    def published(n, text):  # to the precision published
        scale = 1e9 if text.endswith('B') else 1e6
        return f'{round(n / scale, 1)}{text[-1]}'
    assert published(n_train, trainable) == trainable
    assert published(n_total, total) == total


# ----------------------------------------------------------------------------- layer decay
def test_layer_ids():
    L = 48
    assert internvit_layer_id('backbone.cls_token', L) == 0
    assert internvit_layer_id('backbone.pos_embed', L) == 0
    assert internvit_layer_id('backbone.patch_embed.weight', L) == 0
    assert internvit_layer_id('backbone.blocks.0.attn.qkv.weight', L) == 1
    assert internvit_layer_id('backbone.blocks.47.ls2', L) == 48
    assert internvit_layer_id('decode_head.conv_seg.weight', L) == 49
    assert internvit_layer_id('neck.upsample_4x.0.weight', L) == 49


def test_layer_decay_rates_and_frozen_params():
    from mmengine.optim import build_optim_wrapper
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = tiny_model_cfg(Config.fromfile(
        str(ROOT / 'configs/internvit/upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504.py')))
    cfg.model.backbone.update(num_layers=4, out_indices=[0, 1, 2, 3])
    cfg.optim_wrapper.update(type='OptimWrapper', paramwise_cfg=dict(
        num_layers=4, layer_decay_rate=0.5))
    cfg.optim_wrapper.pop('dtype')
    model = MODELS.build(cfg.model)
    model.backbone.blocks[0].requires_grad_(False)  # partly frozen
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    names = {id(p): n for n, p in model.named_parameters()}
    seen = {}
    for g in wrapper.optimizer.param_groups:
        for p in g['params']:
            name = names[id(p)]
            seen[name] = g
            assert g['lr'] == pytest.approx(4e-5 * 0.5**(4 + 1 - g['layer_id']))
            if p.ndim == 1 or name.endswith(('pos_embed', 'cls_token')):
                assert g['weight_decay'] == 0.0, name
            else:
                assert g['weight_decay'] == 0.05, name
    assert seen['backbone.pos_embed']['layer_id'] == 0
    assert seen['backbone.blocks.3.attn.qkv.weight']['layer_id'] == 4
    assert seen['decode_head.conv_seg.weight']['layer_id'] == 5
    assert seen['decode_head.conv_seg.weight']['lr'] == pytest.approx(4e-5)
    assert not any(n.startswith('backbone.blocks.0.') for n in seen)


def test_layer_decay_needs_its_settings():
    from mmengine.optim import build_optim_wrapper
    model = torch.nn.Linear(2, 2)
    with pytest.raises(KeyError, match='num_layers'):
        build_optim_wrapper(model, dict(
            optimizer=dict(type='AdamW', lr=1e-3),
            constructor='InternViTLayerDecayOptimizerConstructor',
            paramwise_cfg=dict(layer_decay_rate=0.9)))


# ----------------------------------------------------------------------------- heads
def test_linear_head_is_bn_plus_1x1_conv():
    from mmseg_internvit import BNLinearHead
    head = BNLinearHead(in_channels=[8, 8], in_index=[0, 1], input_transform='resize_concat',
                        num_classes=5, norm_cfg=dict(type='BN'))
    assert head.channels == 16 and isinstance(head.bn, torch.nn.BatchNorm2d)
    assert head.conv_seg.kernel_size == (1, 1) and head.conv_seg.in_channels == 16
    out = head([torch.randn(2, 8, 4, 4), torch.randn(2, 8, 2, 2)])
    assert out.shape == (2, 5, 4, 4)
    trainable = sum(p.numel() for p in head.parameters())
    assert trainable == 16 * 2 + 16 * 5 + 5
    with pytest.raises(ValueError, match='channels'):
        BNLinearHead(in_channels=8, channels=4, num_classes=5)


# ----------------------------------------------------------------------------- data
def make_ade_tree(root: Path, n: int):
    for split in ('training', 'validation'):
        (root / 'images' / split).mkdir(parents=True)
        (root / 'annotations' / split).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((20, 24, 3), i, np.uint8)).save(
                root / 'images' / split / f'img_{i:03d}.jpg')
            Image.fromarray(np.full((20, 24), i % 150 + 1, np.uint8)).save(
                root / 'annotations' / split / f'img_{i:03d}.png')
    return root


def subset(root, fraction, seed):
    from mmseg_internvit import ADE20KSubsetDataset
    init_default_scope('mmseg')
    return ADE20KSubsetDataset(
        data_root=str(root), subset_fraction=fraction, subset_seed=seed,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=[])


def test_few_shot_subsets_deterministic_and_sized(tmp_path):
    root = make_ade_tree(tmp_path / 'ade', 48)
    a, b = subset(root, 1 / 16, 0), subset(root, 1 / 16, 0)
    assert len(a) == 3 and a.subset_files == b.subset_files
    assert subset(root, 1 / 16, 1).subset_files != a.subset_files
    assert len(subset(root, 1 / 4, 0)) == 12
    full = subset(root, 1.0, 0)
    assert len(full) == 48 and full.subset_files == sorted(full.subset_files)
    for bad, exc in ((0.0, ValueError), (1.5, ValueError), ('1/16', TypeError)):
        with pytest.raises(exc, match='subset_fraction'):
            subset(root, bad, 0)


def test_record_subset_hook_writes_the_list(tmp_path):
    from types import SimpleNamespace

    from mmseg_internvit import RecordSubsetHook
    ds = subset(make_ade_tree(tmp_path / 'ade', 16), 1 / 4, 0)
    logs = []
    runner = SimpleNamespace(
        work_dir=str(tmp_path), train_dataloader=SimpleNamespace(dataset=ds),
        logger=SimpleNamespace(info=logs.append))
    RecordSubsetHook().before_train(runner)
    assert (tmp_path / 'train_subset.txt').read_text().split() == ds.subset_files
    assert '4 images' in logs[0]


def test_missing_data_root_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / 'nope')):
        subset(tmp_path / 'nope', 1.0, 0)


def load_pipeline(root):
    from mmseg.datasets import ADE20KDataset
    init_default_scope('mmseg')
    return ADE20KDataset(
        data_root=str(root), pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadCheckedAnnotations', num_classes=150, reduce_zero_label=True)],
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'))


def test_unreadable_image_names_the_file(tmp_path):
    root = make_ade_tree(tmp_path / 'ade', 2)
    bad = root / 'images' / 'training' / 'img_001.jpg'
    bad.write_bytes(b'not a jpeg')
    ds = load_pipeline(root)
    assert ds[0]['gt_seg_map'].max() == 0  # value 1 -> class 0
    with pytest.raises(Exception, match=str(bad)):
        ds[1]


def test_unreadable_label_map_names_the_file(tmp_path):
    root = make_ade_tree(tmp_path / 'ade', 1)
    bad = root / 'annotations' / 'training' / 'img_000.png'
    bad.write_bytes(b'not a png')
    with pytest.raises(ValueError, match=f'cannot read segmentation map {bad}'):
        load_pipeline(root)[0]


def test_out_of_range_labels_name_the_file(tmp_path):
    root = make_ade_tree(tmp_path / 'ade', 1)
    bad = root / 'annotations' / 'training' / 'img_000.png'
    label = np.zeros((20, 24), np.uint8)
    label[0, :3] = 151  # ADE20K has 150 classes: file values 1..150
    label[1, :3] = 200
    Image.fromarray(label).save(bad)
    with pytest.raises(ValueError, match=rf'{bad} has label values \[151, 200\]'):
        load_pipeline(root)[0]


# ----------------------------------------------------------------------------- end to end
def test_demo_data_is_ade20k_layout(demo_root):
    imgs = sorted(glob.glob(osp.join(demo_root, 'images', 'training', '*.jpg')))
    anns = sorted(glob.glob(osp.join(demo_root, 'annotations', 'training', '*.png')))
    assert imgs and len(imgs) == len(anns)
    values = np.unique(np.concatenate([np.unique(np.array(Image.open(a))) for a in anns]))
    assert values.max() <= 150 and len(values) > 1


def test_train_val_test_and_infer_end_to_end(demo_root, tmp_path):
    """A user config inheriting ours trains 2 iterations + validates on the embedded
    data through tools/train.py; tools/test.py and tools/infer.py then use its
    checkpoint and write overlay images."""
    infer = load_tool('infer')
    user_cfg, ckpt, log = train_user_config(tmp_path, DEMO_CONFIG, (
        f"data_root = '{demo_root}'\n"
        "train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,\n"
        "                        dataset=dict(data_root=data_root))\n"
        "val_dataloader = dict(num_workers=0, persistent_workers=False,\n"
        "                      dataset=dict(data_root=data_root, indices=3))\n"
        "test_dataloader = val_dataloader\n"))
    assert 'mIoU before training' in log and 'Iter(train) [2/2]' in log
    # a fresh process, as users run it (mmengine's visualizer is a per-process
    # singleton, so a second runner in this process would draw into the first's folder)
    run = subprocess.run([sys.executable, str(ROOT / 'tools' / 'test.py'), str(user_cfg),
                          str(ckpt), '--work-dir', str(tmp_path / 't'),
                          '--show-dir', str(tmp_path / 'show')],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert re.search(r'mIoU: \d+\.\d+', run.stdout + run.stderr)
    overlays = list((tmp_path / 'show').rglob('*.png'))
    assert len(overlays) == 3  # one per validation image (indices=3)
    img = sorted(glob.glob(osp.join(demo_root, 'images', 'validation', '*.jpg')))[0]
    out = infer.main([str(user_cfg), str(ckpt), img, '--out-dir', str(tmp_path / 'inf')])
    assert Image.open(out[0]).size == Image.open(img).size
    # the trained backbone, extracted from the run checkpoint, loads strictly into a
    # patch-16 detection backbone (kernel and grid resized)
    extract_backbone = load_tool('extract_backbone')
    from mmseg_internvit import InternViT
    weights = extract_backbone.main([str(ckpt), str(tmp_path / 'backbone.safetensors')])
    det = InternViT(arch='internvit-300m-448px', embed_dims=96, num_layers=6, num_heads=3,
                    mlp_hidden_dims=384, patch_size=16, img_size=320, out_indices=[5],
                    init_cfg=dict(type='Pretrained', checkpoint=weights))
    det.init_weights()
    trained = torch.load(ckpt, weights_only=False)['state_dict']
    torch.testing.assert_close(det.blocks[3].mlp.fc1.weight,
                               trained['backbone.blocks.3.mlp.fc1.weight'])
    with pytest.raises(KeyError, match="no keys with prefix 'detector.'"):
        extract_backbone.main([str(ckpt), str(tmp_path / 'x.safetensors'), '--prefix',
                               'detector.'])
