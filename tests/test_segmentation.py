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
from conftest import (
    assert_optimizer_holds_trainable_params,
    cached_config,
    load_tool,
    train_user_config,
)
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

import mmseg_internvit  # noqa: F401
from internvit_dense.engine import internvit_layer_id

ROOT = Path(__file__).resolve().parents[1]
# the adapter demo (test_adapter.py) and the sweep demo (test_sweep.py)
OTHER_DEMOS = ('upernet_internvit-tiny-adapter', 'sweep')
SEG_CONFIGS = sorted(glob.glob(str(ROOT / 'configs' / 'internvit' / '*.py')) +
                     [p for p in glob.glob(str(ROOT / 'configs' / 'demo' / '*ade20k*.py'))
                      if not osp.basename(p).startswith(OTHER_DEMOS)])
DEMO_CONFIG = str(ROOT / 'configs' / 'demo' /
                  'upernet_internvit-tiny_1xb4-600it_demo-ade20k-196x196.py')
TINY = 32


def tiny_model_cfg(cfg):
    """Shrink the backbone through the config system; the neck's and the heads' input
    widths follow it (BatchedSlideEncoderDecoder derives them)."""
    b = cfg.model.backbone
    out = b.get('out_indices', -1)
    out = [] if out == 'stages' else [out] if isinstance(out, int) else out
    layers = max([4] + [i + 1 for i in out])  # 'stages' and negatives fit in 4
    b.update(embed_dims=TINY, num_heads=2, mlp_hidden_dims=2 * TINY, num_layers=layers,
             init_cfg=None, param_dtype=None if not b.get('frozen') else 'bfloat16')
    head = cfg.model.decode_head
    if 'channels' in head and head.type != 'BNLinearHead':
        head.channels = 16
    if 'auxiliary_head' in cfg.model:
        cfg.model.auxiliary_head.channels = 8
    for part in ('neck', 'decode_head', 'auxiliary_head'):
        if part in cfg.model and 'norm_cfg' in cfg.model[part]:
            cfg.model[part].norm_cfg = dict(type='BN', requires_grad=True)
    return cfg


# ----------------------------------------------------------------------------- configs
# The InternVL 2.5 report's Table 15 (ADE20K / COCO-Stuff-164K mIoU): every cell must
# have a config whose file name names it, and whose header states the number.
TABLE_15 = {
    '6b-224px': ('47.2 / 42.8', '54.9 / 48.9', '58.9 / 51.6'),
    '6b-448px-v1-0': ('43.6 / 38.5', '55.4 / 49.4', '58.1 / 51.7'),
    '6b-448px-v1-2': ('40.7 / 36.1', '55.2 / 48.8', '58.8 / 51.7'),
    '6b-448px-v1-5': ('40.9 / 36.3', '55.0 / 49.1', '58.8 / 51.5'),
    '6b-448px-v2-5': ('39.4 / 35.6', '55.4 / 49.7', '58.6 / 51.8'),
}
TABLE_15_STEMS = ('linear_internvit-{}-frozen', 'upernet_internvit-{}-frozen',
                  'upernet_internvit-{}')


def test_config_set_is_complete():
    names = {osp.basename(p) for p in SEG_CONFIGS}
    for arch, cells in TABLE_15.items():
        for stem, cell in zip(TABLE_15_STEMS, cells):
            for dataset, published in zip(('ade20k', 'coco-stuff164k'), cell.split(' / ')):
                name = f'{stem.format(arch)}_8xb2-80k_{dataset}-504x504.py'
                assert name in names
                header = Path(ROOT, 'configs/internvit', name).read_text()
                assert f'Published: {published} mIoU' in header, name
            if 'frozen' not in stem and arch != '6b-224px':  # ZeRO-2 for 6B full tuning
                for dataset in ('ade20k', 'coco-stuff164k'):
                    assert Path(ROOT, 'configs/internvit/deepspeed', f'{stem.format(arch)}'
                                f'_8xb2-80k_{dataset}-504x504_zero2.py').is_file()
    for arch in ('6b-224px', '6b-448px-v1-5', '300m-448px'):
        for stem in ('linear_internvit-{}_8xb2-5k_ade20k-1of16-504x504',
                     'linear_internvit-{}_8xb2-10k_ade20k-1of8-504x504',
                     'linear_internvit-{}_8xb2-20k_ade20k-1of4-504x504',
                     'linear_internvit-{}_8xb2-40k_ade20k-1of2-504x504',
                     'linear_internvit-{}_8xb2-80k_ade20k-504x504'):
            assert stem.format(arch) + '.py' in names
    for stem in TABLE_15_STEMS:  # InternViT-300M: no published number, said so
        for dataset in ('ade20k', 'coco-stuff164k'):
            text = Path(ROOT, 'configs/internvit',
                        f'{stem.format("300m-448px")}_8xb2-80k_{dataset}-504x504.py')
            assert 'No dense result has been published' in text.read_text()


@pytest.mark.parametrize('path', SEG_CONFIGS, ids=osp.basename)
def test_every_config_builds_and_runs_tiny(path):
    from mmseg.registry import MODELS
    cfg = tiny_model_cfg(cached_config(path))
    assert cfg.default_scope == 'mmseg'
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    logits = model(torch.randn(2, 3, 56, 56), mode='tensor')  # 2: BN of 1x1 pooling
    side = 56 // 14 * (4 if 'neck' in cfg.model else 1)  # UPerHead works at the 4x level
    assert logits.shape == (2, cfg.num_classes, side, side)
    assert_optimizer_holds_trainable_params(model, cfg.optim_wrapper)


def test_release_leaves_change_only_the_weights():
    """A release leaf is its 6B-224px recipe with another `vit`: same everything else."""
    def flat(cfg):
        d = cfg.to_dict()
        d['model']['backbone'].pop('arch')
        d['model']['backbone'].pop('init_cfg')
        d.pop('vit', None)
        return d
    for stem in TABLE_15_STEMS:
        for dataset in ('ade20k', 'coco-stuff164k'):
            name = f'_8xb2-80k_{dataset}-504x504.py'
            ref = Config.fromfile(str(ROOT / 'configs/internvit' /
                                      (stem.format('6b-224px') + name)))
            for release, arch, ckpt in (
                    ('6b-448px-v2-5', '6b-448px', 'InternViT-6B-448px-V2-5'),
                    ('300m-448px', '300m-448px', 'InternViT-300M-448px')):
                leaf = Config.fromfile(str(ROOT / 'configs/internvit' /
                                           (stem.format(release) + name)))
                assert leaf.model.backbone.init_cfg.checkpoint == f'pretrained/{ckpt}'
                assert leaf.model.backbone.arch == f'internvit-{arch}'
                if stem.startswith('linear'):
                    # the 448px releases probe block 44 of 45 as upstream: the last
                    assert leaf.model.backbone.out_indices == [-1]
                    assert ref.model.backbone.out_indices == [-4]
                    leaf.model.backbone.out_indices = ref.model.backbone.out_indices
                if release == '300m-448px' and stem.startswith('upernet'):
                    # UperNet and its auxiliary head at 1024 channels for the 1024-wide ViT
                    for head in ('decode_head', 'auxiliary_head'):
                        assert leaf.model[head].channels == 1024
                        leaf.model[head].channels = ref.model[head].channels
                assert flat(leaf) == flat(ref)


def test_derived_widths_and_stage_blocks():
    """The heads' widths and UperNet's blocks follow the backbone of each release; a
    stated width that contradicts it names the key."""
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    for arch, blocks, width in (('6b-224px', [11, 23, 35, 47], 3200),
                                ('6b-448px-v2-5', [11, 22, 33, 44], 3200),
                                ('300m-448px', [5, 11, 17, 23], 1024)):
        cfg = Config.fromfile(str(ROOT / 'configs/internvit' /
                                  f'upernet_internvit-{arch}_8xb2-80k_ade20k-504x504.py'))
        with torch.device('meta'):
            model = MODELS.build(cfg.model)
        assert model.backbone.out_indices == blocks
        assert model.neck.embed_dim == width if hasattr(model.neck, 'embed_dim') else True
        assert model.decode_head.in_channels == [width] * 4
        assert model.auxiliary_head.in_channels == width
    cfg = Config.fromfile(str(ROOT / 'configs/internvit' /
                              'upernet_internvit-300m-448px_8xb2-80k_ade20k-504x504.py'))
    cfg.model.decode_head.in_channels = [3200] * 4
    with pytest.raises(ValueError, match=r'model\.decode_head\.in_channels=\[3200.*'
                                         r'internvit-300m-448px gives \[1024'):
        MODELS.build(cfg.model)


# The published recipes, field by field against their upstream files, and their lr
# against mmcv's: tests/test_published_recipes.py.


@pytest.mark.parametrize('stem,trainable,total', [
    ('linear_internvit-6b-224px-frozen', '0.5M', '5.9B'),
    ('upernet_internvit-6b-224px-frozen', '0.4B', '6.3B'),
    ('upernet_internvit-6b-224px', '6.3B', '6.3B'),
])
def test_meta_device_parameter_counts_match_published(stem, trainable, total):
    """The published counts are those of the model that predicts: the auxiliary head
    (training only, 44M at 1536 channels) is not in them."""
    model_info = load_tool('model_info')
    path = str(ROOT / f'configs/internvit/{stem}_8xb2-80k_ade20k-504x504.py')
    model, _, _ = model_info.build(model_info.parse_args([path]))
    if hasattr(model, 'auxiliary_head'):
        del model.auxiliary_head
    n_train, n_total = model_info.count_params(model)

    def published(n, text):  # to the precision published
        scale = 1e9 if text.endswith('B') else 1e6
        return f'{round(n / scale, 1)}{text[-1]}'
    assert published(n_train, trainable) == trainable
    assert published(n_total, total) == total


@pytest.mark.parametrize('stem,classifiers', [
    ('linear_internvit-6b-224px-frozen', (3200,)),           # BN + 1x1 conv
    ('upernet_internvit-6b-224px-frozen', (1536, 1536)),     # UPerHead + FCN aux
    ('upernet_internvit-6b-224px', (1536, 1536)),
    ('upernet_internvit-6b-448px-v2-5', (1536, 1536)),
])
def test_coco_stuff_6b_parameter_counts(stem, classifiers):
    """The 6B COCO-Stuff configs on the meta device: the ADE20K model plus 21 more
    classes in each classifier (a 1x1 conv: weight + bias per class), nothing else."""
    model_info = load_tool('model_info')

    def counts(dataset):
        path = str(ROOT / f'configs/internvit/{stem}_8xb2-80k_{dataset}-504x504.py')
        return model_info.count_params(model_info.build(model_info.parse_args([path]))[0])
    (ade_train, ade_total), (stuff_train, stuff_total) = counts('ade20k'), \
        counts('coco-stuff164k')
    extra = sum((171 - 150) * (c + 1) for c in classifiers)
    assert stuff_total - ade_total == extra
    assert stuff_train - ade_train == extra
    assert stuff_total > 5.9e9


# ----------------------------------------------------------------------------- layer decay
def test_layer_ids():
    L = 48
    assert internvit_layer_id('cls_token', L) == 0
    assert internvit_layer_id('pos_embed', L) == 0
    assert internvit_layer_id('patch_embed.weight', L) == 0
    assert internvit_layer_id('blocks.0.attn.qkv.weight', L) == 1
    assert internvit_layer_id('blocks.47.ls2', L) == 48


def test_layer_ids_come_from_the_module_tree():
    # ids are given by place in the InternViT, so a neck or head parameter whose name
    # happens to contain `blocks.N.` is not mistaken for a backbone block
    from internvit_dense import InternViT
    from internvit_dense.engine.layer_decay import layer_ids
    model = torch.nn.Module()
    model.backbone = InternViT(arch='internvit-300m-448px', embed_dims=16, num_heads=2,
                               mlp_hidden_dims=32, num_layers=3, img_size=28)
    model.neck = torch.nn.Module()
    model.neck.blocks = torch.nn.ModuleList([torch.nn.Linear(2, 2)])
    ids = layer_ids(model, 3)
    assert ids['backbone.cls_token'] == ids['backbone.patch_embed.weight'] == 0
    assert ids['backbone.blocks.2.mlp.fc1.weight'] == 3
    assert ids['neck.blocks.0.weight'] == 4


def test_layer_decay_rates_and_frozen_params():
    from mmengine.optim import build_optim_wrapper
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = tiny_model_cfg(Config.fromfile(
        str(ROOT / 'configs/internvit/upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504.py')))
    cfg.model.backbone.update(num_layers=4, out_indices=[0, 1, 2, 3])
    cfg.optim_wrapper.update(type='OptimWrapper', paramwise_cfg=dict(layer_decay_rate=0.5))
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
            # decay_embeddings=True (the recipe): pos_embed / cls_token decay, as upstream
            if p.ndim == 1:
                assert g['weight_decay'] == 0.0, name
            else:
                assert g['weight_decay'] == 0.05, name
    assert seen['backbone.pos_embed']['layer_id'] == 0
    assert seen['backbone.pos_embed']['weight_decay'] == 0.05
    assert seen['backbone.blocks.3.attn.qkv.weight']['layer_id'] == 4
    assert seen['decode_head.conv_seg.weight']['layer_id'] == 5
    assert seen['decode_head.conv_seg.weight']['lr'] == pytest.approx(4e-5)
    assert not any(n.startswith('backbone.blocks.0.') for n in seen)


def test_layer_decay_needs_its_settings():
    from mmengine.optim import build_optim_wrapper
    model = torch.nn.Linear(2, 2)
    with pytest.raises(KeyError, match='layer_decay_rate'):
        build_optim_wrapper(model, dict(
            optimizer=dict(type='AdamW', lr=1e-3),
            constructor='InternViTLayerDecayOptimizerConstructor', paramwise_cfg=dict()))
    with pytest.raises(ValueError, match='holds no InternViT'):
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
    """Same seed, same images; floor(fraction x N) of them (upstream's N // k); the
    whole list is a permutation of the sorted one. The upstream shuffle itself:
    tests/test_published_recipes.py::test_few_shot_subset_is_upstreams_shuffle."""
    root = make_ade_tree(tmp_path / 'ade', 50)
    a, b = subset(root, 1 / 16, 0), subset(root, 1 / 16, 0)
    assert len(a) == 3 and a.subset_files == b.subset_files
    assert subset(root, 1 / 16, 1).subset_files != a.subset_files
    assert len(subset(root, 1 / 4, 0)) == 12  # 50 // 4
    full = subset(root, 1.0, 0)
    assert len(full) == 50 and sorted(full.subset_files) == [
        f'img_{i:03d}.jpg' for i in range(50)]
    for bad, exc in ((0.0, ValueError), (1.5, ValueError), ('1/16', TypeError)):
        with pytest.raises(exc, match='subset_fraction'):
            subset(root, bad, 0)
    with pytest.raises(TypeError, match='subset_seed'):
        subset(root, 0.5, 1.5)


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


# ----------------------------------------------------------------------------- TTA
def test_tta_is_the_mean_of_the_views_probabilities(demo_root, tmp_path):
    """tools/test.py --tta (mmseg's SegTTAModel over the config's tta_pipeline) gives
    the argmax of the class probabilities averaged over 6 scales x 2 flips, each view
    computed here through the plain single-scale model; and differs from single scale."""
    import pickle

    from mmcv.transforms import Compose
    from mmengine.dataset import pseudo_collate
    from mmseg.registry import MODELS

    from internvit_dense.safe_load import portable_history_buffers
    init_default_scope('mmseg')
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.model.backbone.update(embed_dims=TINY, num_heads=2, mlp_hidden_dims=2 * TINY,
                              num_layers=2, out_indices=[0, 1])
    cfg.model.neck = None
    cfg.model.decode_head = dict(type='BNLinearHead', in_channels=[TINY, TINY],
                                 in_index=[0, 1], input_transform='resize_concat',
                                 num_classes=150, norm_cfg=dict(type='BN'),
                                 align_corners=False, loss_decode=dict(
                                     type='CrossEntropyLoss', loss_weight=1.0))
    cfg.model.auxiliary_head = None
    model = MODELS.build(cfg.model)
    model.init_weights()
    ckpt = tmp_path / 'tiny.pth'
    with portable_history_buffers():
        torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    user = tmp_path / 'tiny_cfg.py'
    user.write_text(cfg.pretty_text)
    overrides = ['--cfg-options', f'test_dataloader.dataset.data_root={demo_root}',
                 'test_dataloader.dataset.indices=1', 'test_dataloader.num_workers=0',
                 'test_dataloader.persistent_workers=False']
    test_tool = load_tool('test')
    test_tool.main([str(user), str(ckpt), '--tta', '--out', str(tmp_path / 'tta.pkl'),
                    '--work-dir', str(tmp_path / 'w')] + overrides)
    test_tool.main([str(user), str(ckpt), '--out', str(tmp_path / 'single.pkl'),
                    '--work-dir', str(tmp_path / 'w')] + overrides)
    tta = pickle.load(open(tmp_path / 'tta.pkl', 'rb'))[0]['pred_sem_seg']['data']
    single = pickle.load(open(tmp_path / 'single.pkl', 'rb'))[0]['pred_sem_seg']['data']

    # by hand: every view through the single-scale model (flip undone and logits resized
    # to the image by its postprocessing), softmax, mean, argmax
    image = sorted(Path(demo_root, 'images', 'validation').glob('*.jpg'))[0]
    seg_map = Path(demo_root, 'annotations', 'validation', image.stem + '.png')
    model.eval()
    probs = []
    for r in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75):
        for flip in (0., 1.):
            view = Compose([
                dict(type='LoadImageFromFile'),
                dict(type='Resize', scale=(int(1008 * r), int(252 * r)), keep_ratio=True),
                dict(type='RandomFlip', prob=flip, direction='horizontal'),
                dict(type='LoadCheckedAnnotations', num_classes=150,
                     reduce_zero_label=True),
                dict(type='PackSegInputs')])
            data = view(dict(img_path=str(image), seg_map_path=str(seg_map),
                             reduce_zero_label=True, seg_fields=[]))
            with torch.no_grad():
                out = model.test_step(pseudo_collate([data]))[0]
            probs.append(out.seg_logits.data.softmax(dim=0))
    by_hand = (sum(probs) / len(probs)).argmax(dim=0, keepdim=True)
    assert tta.shape == by_hand.shape == single.shape
    assert torch.equal(tta, by_hand)
    assert not torch.equal(tta, single)


# ----------------------------------------------------------------------------- COCO-Stuff
STUFF_BASE = ROOT / 'configs/_base_/datasets/coco-stuff164k_504x504.py'


@pytest.fixture(scope='module')
def stuff_root(tmp_path_factory):
    """The embedded photographs in mmseg's COCO-Stuff-164K layout."""
    prepare_demo_data = load_tool('prepare_demo_data')
    out = tmp_path_factory.mktemp('stuff')
    prepare_demo_data.main(['--task', 'stuff', '--stuff-out', str(out), '--min-images', '1'])
    return str(out)


def test_coco_stuff_base_classes_and_label_mapping(stuff_root):
    from mmseg.datasets import COCOStuffDataset
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    cfg = Config.fromfile(str(STUFF_BASE))
    assert cfg.num_classes == 171 and cfg.crop_size == (504, 504)
    ds_cfg = dict(cfg.val_dataloader.dataset, data_root=stuff_root)
    dataset = DATASETS.build(ds_cfg)
    assert isinstance(dataset, COCOStuffDataset)
    assert len(dataset.metainfo['classes']) == 171
    sample = dataset[0]
    seg = sample['data_samples'].gt_sem_seg.data
    values = set(seg.unique().tolist()) - {255}
    assert values and max(values) < 171
    # the demo's labels are COCO-Stuff train ids of the classes the sources annotate
    classes = dataset.metainfo['classes']
    assert {classes[v] for v in values} <= {'person', 'car', 'bus', 'truck', 'bottle',
                                             'chair', 'couch', 'dining table',
                                             'sports ball', 'shelf'}


def test_coco_stuff_labels_out_of_range_name_the_file(stuff_root, tmp_path):
    # the wrong-dataset mistake: an ADE20K loader (150 classes) on COCO-Stuff label
    # maps, whose values go up to 170
    from mmseg_internvit import LoadCheckedAnnotations
    src = sorted(Path(stuff_root, 'annotations', 'val2017').glob('*.png'))[0]
    arr = np.array(Image.open(src))
    arr[0, 0] = 160  # a stuff class id (160 of 171)
    path = tmp_path / 'x_labelTrainIds.png'
    Image.fromarray(arr).save(path)
    LoadCheckedAnnotations(num_classes=171)(dict(seg_map_path=str(path), seg_fields=[],
                                                 reduce_zero_label=False))
    with pytest.raises(ValueError, match=re.escape(str(path)) + '.*160'):
        LoadCheckedAnnotations(num_classes=150)(dict(
            seg_map_path=str(path), seg_fields=[], reduce_zero_label=False))


def test_coco_stuff_trains_and_evaluates_end_to_end(stuff_root, tmp_path):
    """The full-tuning COCO-Stuff leaf, with a tiny backbone, trains 2 iterations on the
    embedded data in the COCO-Stuff layout and evaluates (mIoU over 171 classes)."""
    leaf = str(ROOT / 'configs/internvit' /
               'upernet_internvit-6b-224px_8xb2-80k_coco-stuff164k-504x504.py')
    cfg, ckpt, log = train_user_config(tmp_path, leaf, (
        "from mmseg_internvit.datasets.pipelines import seg_pipelines\n"
        "norm = dict(type='BN', requires_grad=True)\n"
        "model = dict(data_preprocessor=dict(size=(112, 112)),\n"
        "    backbone=dict(arch='internvit-300m-448px', embed_dims=32, num_heads=2,\n"
        "        mlp_hidden_dims=64, num_layers=4, img_size=112, with_cp=False,\n"
        "        init_cfg=None),\n"
        "    neck=dict(norm_cfg=norm), decode_head=dict(channels=16, norm_cfg=norm),\n"
        "    auxiliary_head=dict(channels=8, norm_cfg=norm), test_cfg=dict(mode='whole'))\n"
        "optim_wrapper = dict(type='OptimWrapper', _delete_=True, optimizer=dict(\n"
        "    type='AdamW', lr=1e-3), constructor='InternViTLayerDecayOptimizerConstructor',\n"
        "    paramwise_cfg=dict(layer_decay_rate=0.95))\n"
        f"data_root = '{stuff_root}'\n"
        "train_pipeline, test_pipeline, _ = seg_pipelines((112, 112), 171, False)\n"
        "train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,\n"
        "    dataset=dict(data_root=data_root, pipeline=train_pipeline))\n"
        "val_dataloader = dict(num_workers=0, persistent_workers=False,\n"
        "    dataset=dict(data_root=data_root, pipeline=test_pipeline))\n"
        "test_dataloader = val_dataloader\n"
        "param_scheduler = []\n"
        # one CPU process without the leaf's DeepSpeed ZeRO-1 (that run:
        # test_deepspeed.py::test_published_leaf_trains_under_its_own_zero1)
        "strategy = None\n"))
    assert re.search(r'mIoU: \d', log), log[-2000:]
    saved = torch.load(ckpt, weights_only=True)['meta']['dataset_meta']['classes']
    assert len(saved) == 171 and saved[0] == 'person'


def test_head_for_another_dataset_names_the_config(tmp_path):
    """The wrong-dataset mistake at the model level: a 150-class head on COCO-Stuff's
    171 classes stops the runner before anything is built, naming the config file, the
    key and the dataset."""
    from internvit_dense.engine.runners import InternViTRunner, check_num_classes
    path = (ROOT / 'configs/internvit' /
            'upernet_internvit-6b-224px-frozen_8xb2-80k_coco-stuff164k-504x504.py')
    good = Config.fromfile(str(path))
    assert good.model.decode_head.num_classes == good.model.auxiliary_head.num_classes == 171
    check_num_classes(good)
    check_num_classes(Config.fromfile(str(ROOT / 'configs/internvit/'
                                      'linear_internvit-6b-224px_8xb2-80k_ade20k-504x504.py')))
    bad = Config.fromfile(str(path))
    bad.model.auxiliary_head.num_classes = 150
    bad.work_dir = str(tmp_path)
    with pytest.raises(ValueError, match=re.escape(str(path)) + r'.*auxiliary_head'
                       r'\.num_classes is 150.*COCOStuffDataset.*171 classes'):
        InternViTRunner.from_cfg(bad)


def test_a_run_shorter_than_the_warm_up(tmp_path):
    """A smoke run shorter than the warm-up keeps the recipe's schedulers (both begin at
    0); a scheduler without `end` that begins at or after max_iters, which mmengine
    would refuse ("end should be larger than begin"), is dropped instead."""
    from internvit_dense.engine.runners import drop_schedulers_after_training
    cfg = Config.fromfile(str(ROOT / 'configs/internvit/'
                                     'upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504.py'))
    cfg.train_cfg.max_iters = 2
    drop_schedulers_after_training(cfg)
    assert [s.type for s in cfg.param_scheduler] == ['LinearLR', 'PolyLR']
    cfg.param_scheduler = [dict(type='LinearLR', by_epoch=False, begin=0, end=100),
                           dict(type='PolyLR', by_epoch=False, begin=100)]
    drop_schedulers_after_training(cfg)
    assert [s['type'] for s in cfg.param_scheduler] == ['LinearLR']
    cfg.train_cfg.max_iters = 1000
    cfg.param_scheduler = [dict(type='PolyLR', by_epoch=False, begin=100)]
    drop_schedulers_after_training(cfg)
    assert len(cfg.param_scheduler) == 1
