"""The configs that carry a published number are the upstream recipes of that number.

The expected values below are written from the upstream files (InternVL
``segmentation/configs/intern_vit_6b/*``, InternVL-MMDetSeg ``mmsegmentation/configs/*``,
PIIP ``mmsegmentation/configs/piip/baseline/*``, their backbones and ``_base_`` files),
field by field, not from our configs; each test reads the published leaves and checks
the resolved config (and, for what a config cannot show, the model it builds) against
them. The behaviour tests further down check that the pieces compute what upstream
computes: the lr schedule, the test resize, the few-shot subset, the pyramid's norm and
init, the fp32 heads, the V1-0 block truncation and the presets' architectures.
"""
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import cached_config
from mmengine.config import Config
from mmengine.registry import init_default_scope
from safetensors.torch import save_file

import mmseg_internvit  # noqa: F401
from internvit_dense.models import CheckpointMismatchError, InternViT, resolve_preset
from internvit_dense.models import checkpoint as ckpt_mod
from internvit_dense.models.internvit import _normalize_out_indices

from internvit_reference import hf_state_dict_for, tiny_arch

ROOT = Path(__file__).resolve().parents[1]
LEAVES = ROOT / 'configs' / 'internvit'
RELEASES = {  # release -> (depth the upstream configs build, pretrain size, upstream dir)
    '6b-224px': (48, 224, 'intern_vit_6b'),
    '6b-448px-v1-0': (45, 448, 'intern_vit_6b_448px_v1_0'),
    '6b-448px-v1-2': (45, 448, 'intern_vit_6b_448px_v1_2'),
    '6b-448px-v1-5': (45, 448, 'intern_vit_6b_448px_v1_5'),
    '6b-448px-v2-5': (45, 448, 'intern_vit_6b_448px_v2_5'),
}
DATASETS = {'ade20k': ('ade20k', 150), 'coco-stuff164k': ('cocostuff164k', 171)}
# upstream: every leaf's head/full/linear settings (linear_probing/, head_tuning/,
# full_tuning/ and the upernet_r50.py / segmenter base they override)
SETTINGS = {
    'linear': dict(file='linear_probing/linear_intern_vit_6b{r}_504_80k_{d}_bs16_lr4e-5_frozen.py',
                   out_indices=[44], frozen=True, drop_path=0.0, weight_decay=0.0,
                   layer_decay=1.0, deepspeed=False),
    'head': dict(file='head_tuning/upernet_intern_vit_6b{r}_504_80k_{d}_bs16_lr4e-5_frozen.py',
                 out_indices='stages', frozen=True, drop_path=0.0, weight_decay=0.05,
                 layer_decay=1.0, deepspeed=True, aux_in_index=1),
    'full': dict(file='full_tuning/upernet_intern_vit_6b{r}_504_80k_{d}_bs16_lr4e-5.py',
                 out_indices='stages', frozen=False, drop_path=0.4, weight_decay=0.05,
                 layer_decay=0.95, deepspeed=True, aux_in_index=2),
}
STEMS = {'linear': 'linear_internvit-{}-frozen', 'head': 'upernet_internvit-{}-frozen',
         'full': 'upernet_internvit-{}'}
# few-shot: (fraction, iterations, warm-up) of few_shot/*_{5k..80k}_*_1of{16..1}.py
FEW_SHOT = {'5k_ade20k-1of16': (16, 5000, 100), '10k_ade20k-1of8': (8, 10000, 200),
            '20k_ade20k-1of4': (4, 20000, 400), '40k_ade20k-1of2': (2, 40000, 800),
            '80k_ade20k': (1, 80000, 1500)}


def published_leaves():
    for release in RELEASES:
        for setting in SETTINGS:
            for dataset in DATASETS:
                yield release, setting, dataset, \
                    f'{STEMS[setting].format(release)}_8xb2-80k_{dataset}-504x504.py'


def build_meta(model_cfg):
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    with torch.device('meta'):
        return MODELS.build(model_cfg)


def transforms(pipeline):
    return {t['type']: t for t in pipeline}


@pytest.mark.parametrize('release,setting,dataset,leaf', list(published_leaves()),
                         ids=lambda v: v if isinstance(v, str) and v.endswith('.py') else '')
def test_table15_leaf_is_the_upstream_recipe(release, setting, dataset, leaf):
    depth, pretrain, folder = RELEASES[release]
    up = SETTINGS[setting]
    num_classes = DATASETS[dataset][1]
    cfg = cached_config(str(LEAVES / leaf))
    header = (LEAVES / leaf).read_text()
    tag = '' if release == '6b-224px' else '_' + release[3:].replace('-', '_')
    upstream_file = up['file'].format(r=tag, d=DATASETS[dataset][0])
    assert f'{folder}/{upstream_file}' in header.replace('\n# ', ''), \
        'the header names its upstream file'
    assert 'Departures:' in header

    # --- backbone (built on the meta device: depth, blocks and grid as resolved)
    b = cfg.model.backbone
    assert resolve_preset(b.arch)['pretrain_size'] == pretrain
    assert b.get('num_layers', resolve_preset(b.arch)['num_layers']) == depth
    assert b.img_size == 504 and b.get('patch_size', 14) == 14
    assert bool(b.get('frozen', False)) == up['frozen']
    assert b.drop_path_rate == up['drop_path']
    assert b.get('with_cls_token', True) and b.get('mlp_act', 'gelu') == 'gelu'
    if up['frozen']:
        assert b.param_dtype == 'bfloat16'  # their ToBFloat16Hook / DeepSpeed bf16
    want_blocks = ([44] if setting == 'linear' else
                   [11, 23, 35, 47] if depth == 48 else [11, 22, 33, 44])
    assert _normalize_out_indices(b.out_indices, depth) == want_blocks
    model = build_meta(cfg.model)
    assert model.backbone.num_layers == depth and model.backbone.grid_size == (36, 36)
    assert model.backbone.out_indices == want_blocks
    if release == '6b-448px-v1-0':  # 48 blocks released, the first 45 used: stated
        assert resolve_preset(b.arch)['num_layers'] == 48
        assert b.init_cfg.truncate_blocks is True
    else:
        assert not b.init_cfg.get('truncate_blocks', False)

    # --- neck and heads
    assert cfg.model.fp32_heads is True  # their heads call self.to(torch.float32)
    head = cfg.model.decode_head
    assert head.num_classes == num_classes and head.align_corners is False
    if setting == 'linear':  # FCNHead(num_convs=0, with_norm=True): SyncBN + conv_seg
        assert head.type == 'BNLinearHead' and head.norm_cfg.type == 'SyncBN'
        assert head.dropout_ratio == 0.0 and 'neck' not in cfg.model
        assert head.loss_decode.loss_weight == 1.0
        assert 'auxiliary_head' not in cfg.model
    else:
        # with_fpn=True: up1 = ConvT, channels-first LayerNorm (eps 1e-6, fp32), GELU,
        # ConvT; up2 = ConvT; up3 = identity; up4 = max-pool; no final norm
        neck = cfg.model.neck
        assert neck.type == 'Feature2Pyramid' and neck.rescales == [4, 2, 1, 0.5]
        assert neck.norm_cfg == dict(type='LN2d', eps=1e-6)
        assert type(model.neck.upsample_4x[1]).__name__ == 'LayerNorm2d'
        assert len(model.neck.upsample_4x) == 4 and len(model.neck.upsample_2x) == 1
        # ConvT init normal(0, sqrt(2 / fan_out)), bias 0
        assert cfg.model.init_cfg == dict(type='Kaiming', layer='ConvTranspose2d')
        assert head.type == 'UPerHead' and head.channels == 1536
        assert head.pool_scales == (1, 2, 3, 6) and head.dropout_ratio == 0.1
        assert head.norm_cfg.type == 'SyncBN' and head.in_index == [0, 1, 2, 3]
        aux = cfg.model.auxiliary_head
        assert (aux.type, aux.channels, aux.in_index) == ('FCNHead', 1536,
                                                          up['aux_in_index'])
        assert (aux.num_convs, aux.concat_input, aux.dropout_ratio) == (1, False, 0.1)
        assert aux.loss_decode.loss_weight == 0.4 and aux.num_classes == num_classes
        assert model.auxiliary_head.in_channels == 3200
    assert cfg.model.test_cfg.mode == 'slide'
    assert cfg.model.test_cfg.crop_size == (504, 504)
    assert cfg.model.test_cfg.stride == (322, 322)

    # --- optimisation
    opt = cfg.optim_wrapper
    assert opt.optimizer == dict(type='AdamW', lr=4e-5, betas=(0.9, 0.999),
                                 weight_decay=up['weight_decay'])
    assert opt.paramwise_cfg.layer_decay_rate == up['layer_decay']
    assert opt.paramwise_cfg.get('decay_embeddings', False) == (not up['frozen'])
    assert opt.get('clip_grad') is None
    assert_schedule(cfg, warmup=1500, max_iters=80000)
    assert cfg.train_dataloader.batch_size == 2  # x 8 GPUs = 16
    # DeepSpeed ZeRO-1 bf16 (zero_configs/adam_zero1_bf16.json) where upstream set
    # deepspeed = True; linear probing ran without it
    if up['deepspeed']:
        s = cfg.strategy
        assert s.type == 'InternViTDeepSpeedStrategy' and s.bf16 == dict(enabled=True)
        assert s.zero_optimization.stage == 1
        assert s.zero_optimization.reduce_bucket_size == 5e8
        assert s.zero_optimization.overlap_comm is True
    else:
        assert not cfg.get('strategy')

    # --- evaluation and checkpoints: every 1000, save_best='auto', max_keep_ckpts=2
    assert cfg.train_cfg.val_interval == 1000
    ck = cfg.default_hooks.checkpoint
    assert (ck.interval, ck.max_keep_ckpts, ck.save_best) == (1000, 2, 'auto')

    # --- data
    assert_train_pipeline(cfg.train_pipeline, crop=504, side=504,
                          reduce_zero_label=dataset == 'ade20k')
    # ade20k_504x504.py / coco-stuff164k_504x504.py: SETR_Resize (the short side exactly
    # 504 whatever the aspect ratio), then ResizeToMultiple(14)
    assert_test_pipeline(cfg, long_side=1_000_000)


def assert_test_pipeline(cfg, long_side):
    for pipeline in (cfg.test_pipeline, cfg.val_dataloader.dataset.pipeline,
                     cfg.test_dataloader.dataset.pipeline):
        test = transforms(pipeline)
        assert test['Resize'] == dict(type='Resize', scale=(long_side, 504),
                                      keep_ratio=True)
        assert test['ResizeToMultiple'] == dict(type='ResizeToMultiple', size_divisor=14)
        assert [t['type'] for t in pipeline].index('ResizeToMultiple') == 2


def assert_train_pipeline(pipeline, crop, side, reduce_zero_label):
    t = transforms(pipeline)
    assert t['LoadCheckedAnnotations']['reduce_zero_label'] == reduce_zero_label
    assert t['RandomResize'] == dict(type='RandomResize', scale=(4 * side, side),
                                     ratio_range=(0.5, 2.0), keep_ratio=True)
    assert t['RandomCrop'] == dict(type='RandomCrop', crop_size=(crop, crop),
                                   cat_max_ratio=0.75)
    assert t['RandomFlip']['prob'] == 0.5 and 'PhotoMetricDistortion' in t


def assert_schedule(cfg, warmup, max_iters):
    """Linear warm-up from 1e-6 and a poly decay (power 1, to 0) that both start at
    iteration 0 (mmengine's schedulers end at step ``end - 1``: the warm-up at
    ``warmup``, the poly decay at ``max_iters``; test_lr_is_mmcv_poly_with_warmup)."""
    assert cfg.train_cfg.max_iters == max_iters
    assert [dict(s) for s in cfg.param_scheduler] == [
        dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=warmup + 1),
        dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=0,
             end=max_iters + 1)]


def mmcv_lr(t, base, warmup, max_iters, ratio=1e-6):
    """mmcv 1.x's PolyLrUpdaterHook(power=1.0, min_lr=0.0, warmup='linear',
    warmup_ratio=1e-6), from its get_lr / get_warmup_lr: the warm-up factor
    multiplies the poly lr."""
    regular = (1 - t / max_iters) ** 1.0 * (base - 0.0) + 0.0
    if t < warmup:
        return regular * (1 - (1 - t / warmup) * (1 - ratio))
    return regular


@pytest.mark.parametrize('leaf,warmup,max_iters', [
    ('upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504.py', 1500, 80000),
    ('linear_internvit-6b-224px_8xb2-5k_ade20k-1of16-504x504.py', 100, 5000),
    ('linear_internvit-6b-224px_8xb2-40k_ade20k-1of2-504x504.py', 800, 40000),
])
def test_lr_is_mmcv_poly_with_warmup(leaf, warmup, max_iters):
    """mmengine's schedulers built from the leaf give mmcv 1.x's lr at every checked
    iteration (the upstream lr_config: poly over all iterations, warm-up on top)."""
    from mmengine.optim import OptimWrapper
    from mmengine.registry import PARAM_SCHEDULERS
    cfg = cached_config(str(LEAVES / leaf))
    param = torch.nn.Parameter(torch.zeros(1))
    wrapper = OptimWrapper(torch.optim.SGD([param], lr=4e-5))
    built = [PARAM_SCHEDULERS.build(dict(dict(s), optimizer=wrapper))
             for s in cfg.param_scheduler]
    checks = sorted({0, 1, 2, warmup // 3, warmup - 1, warmup, warmup + 1,
                     max_iters // 2, max_iters - 1})
    for t in range(max_iters):
        if t == checks[0]:
            checks.pop(0)
            assert wrapper.optimizer.param_groups[0]['lr'] == pytest.approx(
                mmcv_lr(t, 4e-5, warmup, max_iters), rel=1e-6, abs=1e-15), t
            if not checks:
                break
        for s in built:
            s.step()


@pytest.mark.parametrize('name', list(FEW_SHOT))
def test_few_shot_leaves_are_the_upstream_recipes(name):
    k, iters, warmup = FEW_SHOT[name]
    leaf = f'linear_internvit-6b-224px_8xb2-{name}-504x504.py'
    cfg = cached_config(str(LEAVES / leaf))
    header = (LEAVES / leaf).read_text().replace('\n# ', '')
    assert (f'intern_vit_6b/few_shot/linear_intern_vit_6b_504_{iters // 1000}k_ade20k_'
            f'bs16_lr4e-5_1of{k}.py') in header
    b = cfg.model.backbone
    assert b.get('out_indices', -1) in (-1, [-1], [47])  # out_indices=[47] of 48
    assert not b.get('frozen') and b.drop_path_rate == 0.4 and b.with_cp
    assert cfg.model.decode_head.type == 'BNLinearHead'
    assert cfg.optim_wrapper.optimizer.weight_decay == 0.05
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.95
    assert cfg.strategy.zero_optimization.stage == 1 and cfg.strategy.bf16.enabled
    assert cfg.train_cfg.val_interval == 1000
    assert cfg.default_hooks.checkpoint.interval == 1000
    ds = cfg.train_dataloader.dataset
    if k == 1:  # ade20k_504x504.py: all images, mmseg's dataset, SETR_Resize test
        assert ds.type == 'ADE20KDataset'
        assert_test_pipeline(cfg, long_side=1_000_000)
    else:  # max_image_num=20210 // k of a shuffle seeded with the run seed; the
        # ade20k_504x504_1of{k}.py bases test with Resize((2016, 504), keep_ratio)
        assert ds.type == 'ADE20KSubsetDataset' and ds.subset_fraction == 1 / k
        assert ds.get('subset_seed') is None
        assert_test_pipeline(cfg, long_side=2016)
    assert_schedule(cfg, warmup=warmup, max_iters=iters)


def test_piip_baseline_is_the_upstream_recipe():
    """PIIP mmsegmentation/configs/piip/baseline/upernet_internvit_6b_512_80k_ade20k_
    bs16_lr4e-5.py with its backbone (mmseg/models/backbones/internvit_6b.py)."""
    leaf = 'upernet_internvit-6b-224px_8xb2-80k_ade20k-512x512.py'
    cfg = cached_config(str(LEAVES / leaf))
    assert 'Published: 58.42 mIoU' in (LEAVES / leaf).read_text()
    b = cfg.model.backbone
    assert (b.patch_size, b.img_size, b.drop_path_rate) == (16, 512, 0.4)
    assert b.with_cls_token is False            # cls_token=None
    assert b.mlp_act == 'gelu_tanh'             # FusedMLP(activation='gelu_approx')
    assert b.init_cfg.patch_resize == 'bicubic'  # F.interpolate of the 14-px kernel
    assert _normalize_out_indices(b.out_indices, 48) == [47]  # use_simple_fpn: the last
    assert cfg.model.neck.type == 'LastMapFeature2Pyramid'
    assert cfg.model.neck.norm_cfg == dict(type='LN2d', eps=1e-6)
    model = build_meta(cfg.model)
    assert model.backbone.cls_token is None and model.backbone.grid_size == (32, 32)
    assert model.decode_head.channels == 1536 and model.auxiliary_head.channels == 1536
    assert model.auxiliary_head.in_index == 2 and cfg.model.fp32_heads
    assert cfg.model.test_cfg.crop_size == (512, 512)
    assert cfg.model.test_cfg.stride == (341, 341)
    assert cfg.optim_wrapper.paramwise_cfg == dict(layer_decay_rate=0.95,
                                                   decay_embeddings=True)
    assert cfg.strategy.zero_optimization.stage == 1 and cfg.strategy.bf16.enabled
    assert_schedule(cfg, warmup=1500, max_iters=80000)
    assert cfg.train_cfg.val_interval == 1000
    ck = cfg.default_hooks.checkpoint
    assert (ck.interval, ck.max_keep_ckpts, ck.save_best) == (2000, 1, None)
    assert_train_pipeline(cfg.train_pipeline, crop=512, side=512, reduce_zero_label=True)
    test = transforms(cfg.test_pipeline)  # SETR_Resize, ResizeToMultiple commented out
    assert test['Resize']['scale'] == (1_000_000, 512) and 'ResizeToMultiple' not in test


# ------------------------------------------------------------------ behaviour: data
def upstream_test_size(h, w, side, long_cap, divisor):
    """mmcv 1.x imrescale(keep_ratio) to (long_cap, side) then mmseg 0.x
    ResizeToMultiple (imresize_to_multiple: round up), written from their code:
    scale = min(long_cap / long, side / short), size = int(x * scale + 0.5)."""
    scale = min(long_cap / max(h, w), side / min(h, w))
    h, w = int(h * scale + 0.5), int(w * scale + 0.5)
    if divisor:
        h, w = (math.ceil(x / divisor) * divisor for x in (h, w))
    return h, w


def upstream_setr_test_size(h, w, side, divisor):
    """InternVL's SETR_Resize(keep_ratio=True, setr_multi_scale=True) at img_scale
    (2016, 504), from its _resize_img: the scale becomes (side * h / w, side) or (side,
    side * w / h) for the short side, then mmcv imrescale to it; then ResizeToMultiple."""
    new_h, new_w = (side * h / w, side) if h > w else (side, side * w / h)
    scale = min(max(new_h, new_w) / max(h, w), min(new_h, new_w) / min(h, w))
    h, w = int(h * scale + 0.5), int(w * scale + 0.5)
    return tuple(math.ceil(x / divisor) * divisor for x in (h, w))


@pytest.mark.parametrize('base,pipeline,upstream', [
    ('ade20k_504x504.py', 'test_pipeline', 'setr'),
    ('coco-stuff164k_504x504.py', 'test_pipeline', 'setr'),
    ('ade20k_504x504.py', 'capped_test_pipeline', 2016),  # the few-shot subsets'
])
def test_test_resize_is_upstreams(base, pipeline, upstream):
    """ADE20K and COCO-Stuff: SETR_Resize, the short side exactly 504 whatever the
    aspect ratio; the few-shot subsets: Resize((2016, 504), keep_ratio); then a
    multiple of 14."""
    from mmengine.dataset import Compose
    init_default_scope('mmseg')
    cfg = Config.fromfile(str(ROOT / 'configs/_base_/datasets' / base))
    pipeline = Compose([t for t in cfg[pipeline]
                        if t['type'] in ('Resize', 'ResizeToMultiple')])
    rng = np.random.default_rng(0)
    sizes = [(512, 683), (683, 512), (375, 500), (240, 1500), (1600, 300), (504, 504),
             (333, 334)] + [tuple(rng.integers(100, 1200, 2)) for _ in range(20)]
    for h, w in sizes:
        out = pipeline(dict(img=np.zeros((h, w, 3), np.uint8)))
        want = (upstream_setr_test_size(h, w, 504, 14) if upstream == 'setr' else
                upstream_test_size(h, w, 504, upstream, 14))
        assert out['img'].shape[:2] == want, (h, w)


def test_few_shot_subset_is_upstreams_shuffle(tmp_path):
    """ADE20KDataset(max_image_num=N // k): random.seed(run seed) in the training
    script, then random.shuffle of the file-name-sorted list, the first N // k kept
    (in the shuffled order); the run's seed reaches the dataset through the runner."""
    from internvit_dense.engine.runners import with_run_seed
    from mmseg_internvit.datasets import ADE20KSubsetDataset
    for split in ('images/training', 'annotations/training'):
        (tmp_path / split).mkdir(parents=True)
    names = [f'ADE_train_{i:08d}' for i in random.Random(1).sample(range(1, 500), 37)]
    for n in names:
        (tmp_path / 'images/training' / f'{n}.jpg').touch()
        (tmp_path / 'annotations/training' / f'{n}.png').touch()
    for seed, k in ((0, 4), (1234, 8), (2023, 2)):
        random.seed(seed)  # as mmseg 0.x set_random_seed
        expected = sorted(names)
        random.shuffle(expected)
        expected = expected[:len(names) // k]
        cfg = with_run_seed(dict(dataset=dict(
            type='ADE20KSubsetDataset', data_root=str(tmp_path), subset_fraction=1 / k,
            data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
            pipeline=[])), seed)
        assert cfg['dataset']['subset_seed'] == seed
        cfg['dataset'].pop('type')
        ds = ADE20KSubsetDataset(**cfg['dataset'])
        assert [Path(p).stem for p in ds.subset_files] == expected
        assert [Path(ds.get_data_info(i)['img_path']).stem for i in range(len(ds))] == \
            expected
    # a seed in the config wins over the run's
    assert with_run_seed(dict(dataset=dict(type='ADE20KSubsetDataset', subset_seed=7)),
                         3)['dataset']['subset_seed'] == 7
    with pytest.raises(ValueError, match='subset_seed is None'):
        ADE20KSubsetDataset(data_root=str(tmp_path), subset_fraction=0.5, pipeline=[],
                            data_prefix=dict(img_path='images/training',
                                             seg_map_path='annotations/training'))


def test_the_runner_passes_its_seed_to_subsets_inside_wrappers(tmp_path):
    """InternViTRunner.build_dataloader (what mmengine's loops call, with the run's
    seed) seeds a subset without its own seed, also inside ConcatDataset /
    RepeatDataset, and leaves a built dataset object alone."""
    from mmengine.dataset import ConcatDataset

    from internvit_dense.engine.runners import InternViTRunner, with_run_seed
    init_default_scope('mmseg')
    for split in ('images/training', 'annotations/training'):
        (tmp_path / split).mkdir(parents=True)
    names = [f'img_{i:03d}' for i in range(20)]
    for n in names:
        (tmp_path / 'images/training' / f'{n}.jpg').touch()
        (tmp_path / 'annotations/training' / f'{n}.png').touch()
    subset = dict(type='ADE20KSubsetDataset', data_root=str(tmp_path), subset_fraction=0.5,
                  data_prefix=dict(img_path='images/training',
                                   seg_map_path='annotations/training'), pipeline=[])
    expected = sorted(names)
    random.Random(77).shuffle(expected)
    loader = dict(batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler'),
                  dataset=dict(type='ConcatDataset', datasets=[
                      dict(type='RepeatDataset', times=2, dataset=subset)]))
    built = InternViTRunner.build_dataloader(loader, seed=77)
    inner = built.dataset.datasets[0].dataset
    assert [Path(f).stem for f in inner.subset_files] == expected[:10]
    assert loader['dataset']['datasets'][0]['dataset'].get('subset_seed') is None
    ready = ConcatDataset([inner])  # a built dataset passes through untouched
    assert with_run_seed(dict(dataset=ready), 1)['dataset'] is ready


def test_few_shot_sizes_are_upstreams_integer_division():
    for k in (16, 8, 4, 2):
        assert math.floor(20210 * (1 / k) + 1e-9) == 20210 // k


# ------------------------------------------------------------------ behaviour: model
def upstream_channels_first_ln(x, weight, bias, eps=1e-6):
    """InternVL's LayerNorm(data_format='channels_first'), from its forward."""
    dtype = x.dtype
    x = x.to(torch.float32)
    u = x.mean(1, keepdim=True)
    s = (x - u).pow(2).mean(1, keepdim=True)
    x = (x - u) / torch.sqrt(s + eps)
    x = weight[:, None, None].float() * x + bias[:, None, None].float()
    return x.to(dtype)


def test_ln2d_is_upstreams_channels_first_layernorm():
    from mmcv.cnn import build_norm_layer
    init_default_scope('mmseg')
    norm = build_norm_layer(dict(type='LN2d', eps=1e-6), 16)[1]
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 16, 5, 7) * 3 + 1
    torch.testing.assert_close(norm(x), upstream_channels_first_ln(x, norm.weight,
                                                                   norm.bias))
    # bf16 in, bf16 out, normalised in fp32 as upstream
    norm_bf16 = norm.to(torch.bfloat16)
    xb = x.to(torch.bfloat16)
    got = norm_bf16(xb)
    assert got.dtype == torch.bfloat16
    assert torch.equal(got, upstream_channels_first_ln(xb, norm_bf16.weight,
                                                       norm_bf16.bias))


def test_pyramid_init_is_upstreams():
    """ConvT weights ~ normal(0, sqrt(2 / (k * k * out_channels))), bias 0."""
    from mmseg.registry import MODELS
    cfg = Config.fromfile(str(LEAVES / 'upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504.py'))
    cfg.model.backbone.update(embed_dims=256, num_heads=4, num_layers=4,
                              mlp_hidden_dims=64, init_cfg=None)
    cfg.model.decode_head.channels = cfg.model.auxiliary_head.channels = 8
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    for conv in (model.neck.upsample_4x[0], model.neck.upsample_4x[3],
                 model.neck.upsample_2x[0]):
        std = math.sqrt(2 / (2 * 2 * conv.out_channels))
        assert conv.weight.std().item() == pytest.approx(std, rel=0.02)
        assert conv.weight.mean().abs().item() < std / 20
        assert torch.all(conv.bias == 0)
    ln = model.neck.upsample_4x[1]
    assert torch.all(ln.weight == 1) and torch.all(ln.bias == 0)


def tiny_upernet():
    from mmseg.registry import MODELS
    cfg = Config.fromfile(str(LEAVES / 'upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504.py'))
    cfg.model.backbone.update(embed_dims=32, num_heads=2, num_layers=4,
                              mlp_hidden_dims=64, img_size=56, init_cfg=None)
    cfg.model.decode_head.channels = cfg.model.auxiliary_head.channels = 16
    for part in ('decode_head', 'auxiliary_head'):
        cfg.model[part].norm_cfg = dict(type='BN', requires_grad=True)
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def test_fp32_heads_compute_in_fp32_on_bf16_weights():
    """Under DeepSpeed bf16 the heads hold bf16 weights; upstream's heads cast
    themselves to fp32 in forward. The heads then compute what fp32 heads with the
    bf16-rounded weights compute, the gradient reaches the bf16 weights, BatchNorm
    statistics become (and stay) fp32, and autocast stays out of the heads."""
    torch.manual_seed(0)
    model = tiny_upernet().train()
    img = torch.randn(2, 3, 56, 56)
    reference = tiny_upernet()
    reference.load_state_dict(model.state_dict())
    for part in (model.decode_head, model.auxiliary_head):
        part.to(torch.bfloat16)
    rounded = {k: v.float() if v.is_floating_point() else v
               for k, v in model.state_dict().items()}
    reference.load_state_dict(rounded)
    reference.train()
    for m in (model, reference):  # train mode (BatchNorm updates), no random dropout
        m.decode_head.dropout.p = 0.0
    feats = [f.to(torch.bfloat16) for f in model.neck(model.backbone(img))]
    want_feats = [f.float() for f in feats]
    out = model._run_head(model.decode_head, 'forward', feats)
    want = reference.decode_head(want_feats)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)
    out.sum().backward()
    w = model.decode_head.conv_seg.weight
    assert w.dtype == torch.bfloat16 and w.grad is not None and w.grad.abs().sum() > 0
    bn = model.decode_head.bottleneck.bn
    assert bn.running_mean.dtype == torch.float32  # kept fp32 from its first use
    torch.testing.assert_close(bn.running_mean, reference.decode_head.bottleneck.bn.running_mean)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = model._run_head(model.decode_head, 'forward', feats)
    assert out.dtype == torch.float32
    reference.eval()
    for fp32, dtype in ((True, torch.float32), (False, torch.bfloat16)):
        reference.fp32_heads = fp32
        with torch.autocast('cpu', dtype=torch.bfloat16):
            got = reference._run_head(reference.decode_head, 'forward', want_feats)
        assert got.dtype == dtype


def test_decay_embeddings_is_upstreams_weight_decay():
    """InternVL's constructor exempts 1-D params and biases; its pos_embed / cls_token
    exemption never matches (full names), so they decay. decay_embeddings reproduces
    that; without it they are exempt."""
    from mmengine.optim import build_optim_wrapper
    model = tiny_upernet()
    for decay, want in ((True, 0.05), (False, 0.0)):
        wrapper = build_optim_wrapper(model, dict(
            type='OptimWrapper',
            optimizer=dict(type='AdamW', lr=4e-5, weight_decay=0.05),
            constructor='InternViTLayerDecayOptimizerConstructor',
            paramwise_cfg=dict(layer_decay_rate=0.95, decay_embeddings=decay)))
        wd = {id(p): g['weight_decay'] for g in wrapper.optimizer.param_groups
              for p in g['params']}
        for name in ('pos_embed', 'cls_token'):
            assert wd[id(getattr(model.backbone, name))] == want
        assert wd[id(model.backbone.patch_embed.weight)] == 0.05
        assert wd[id(model.backbone.blocks[0].ls1)] == 0.0
        assert wd[id(model.neck.upsample_4x[1].weight)] == 0.0


# ----------------------------------------------------------------- V1-0's 48 blocks
def test_v1_0_preset_has_48_blocks_and_the_published_leaves_use_45():
    assert resolve_preset('internvit-6b-448px-v1-0')['num_layers'] == 48
    cfg = Config.fromfile(str(ROOT / 'configs/_base_/backbones/internvit-6b-448px-v1-0.py'))
    assert cfg.vit.arch == 'internvit-6b-448px-v1-0' and cfg.vit.num_layers == 45
    assert cfg.vit.init_cfg.truncate_blocks is True


def test_truncate_blocks_loads_the_first_blocks_and_says_so(tmp_path, monkeypatch):
    arch = tiny_arch('6b')
    deeper = hf_state_dict_for(dict(arch, num_layers=6), grid=4, seed=5)
    save_file(deeper, str(tmp_path / 'v1_0.safetensors'))
    first = {k: v for k, v in deeper.items()
             if not any(f'layers.{i}.' in k for i in (4, 5))}
    save_file(first, str(tmp_path / 'first4.safetensors'))

    def model(path, **extra):
        m = InternViT(**dict(arch, num_layers=4), img_size=56, out_indices=[1, 3],
                      init_cfg=dict(type='Pretrained', checkpoint=str(path), **extra))
        m.init_weights()
        return m.eval()

    with pytest.raises(CheckpointMismatchError) as err:
        model(tmp_path / 'v1_0.safetensors')
    assert 'encoder.layers.{4-5}' in str(err.value)
    assert 'truncate_blocks=True' in str(err.value) and '6 blocks' in str(err.value)
    seen = []
    monkeypatch.setattr(ckpt_mod, 'print_log', lambda msg, **kw: seen.append(msg))
    truncated = model(tmp_path / 'v1_0.safetensors', truncate_blocks=True)
    assert any('6 blocks and the model 4' in m and 'blocks 4-5 out' in m for m in seen)
    x = torch.randn(1, 3, 56, 56)
    for a, b in zip(truncated(x), model(tmp_path / 'first4.safetensors')(x)):
        assert torch.equal(a, b)
    with pytest.raises(TypeError, match='truncate_blocks'):
        model(tmp_path / 'v1_0.safetensors', truncate_blocks='yes')


# ------------------------------------------------- presets vs the released config.json
# hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, qkv_bias,
# qk_normalization, norm_type, layer_norm_eps, initializer_factor, patch_size,
# image_size of each release (Hugging Face OpenGVLab/<name>/config.json; V1-0, V2_5 and
# 300M-V2_5 whose config.json we could not read: their model cards and the InternVL 2.5
# report's Table 1 give the same architecture, V1-0's card "This model has 48 blocks")
RELEASED_CONFIGS = {
    'InternViT-6B-224px': (3200, 48, 25, 12800, False, True, 'rms_norm', 1e-6, 0.1, 14, 224),
    'InternViT-6B-448px-V1-0': (3200, 48, 25, 12800, False, True, 'rms_norm', 1e-6, 0.1, 14,
                                448),
    'InternViT-6B-448px-V1-2': (3200, 45, 25, 12800, False, True, 'rms_norm', 1e-6, 0.1, 14,
                                448),
    'InternViT-6B-448px-V1-5': (3200, 45, 25, 12800, False, True, 'rms_norm', 1e-6, 0.1, 14,
                                448),
    'InternViT-6B-448px-V2_5': (3200, 45, 25, 12800, False, True, 'rms_norm', 1e-6, 0.1, 14,
                                448),
    'InternViT-300M-448px': (1024, 24, 16, 4096, True, False, 'layer_norm', 1e-6, 1.0, 14,
                             448),
    'InternViT-300M-448px-V2_5': (1024, 24, 16, 4096, True, False, 'layer_norm', 1e-6, 1.0,
                                  14, 448),
}


@pytest.mark.parametrize('release', list(RELEASED_CONFIGS))
def test_presets_match_the_released_config_json(release):
    (hidden, layers, heads, inter, qkv_bias, qk_norm, norm, eps, init, patch,
     image) = RELEASED_CONFIGS[release]
    arch = 'internvit-' + release[len('InternViT-'):].lower().replace('_', '-')
    p = resolve_preset(arch)
    assert (p['embed_dims'], p['num_layers'], p['num_heads'], p['mlp_hidden_dims']) == \
        (hidden, layers, heads, inter)
    assert (p['qkv_bias'], p['qk_normalization']) == (qkv_bias, qk_norm)
    assert p['norm_type'] == {'rms_norm': 'rms', 'layer_norm': 'ln'}[norm]
    assert (p['layer_scale_init'], p['patch_size'], p['pretrain_size']) == (init, patch,
                                                                            image)
    with torch.device('meta'):
        m = InternViT(arch=arch)
    assert m.blocks[0].norm1.eps == eps and len(m.blocks) == layers
    assert m.cls_token is not None and m.pos_embed.shape[1] == 1 + (image // patch) ** 2
    assert isinstance(m.blocks[0].norm1, torch.nn.RMSNorm if norm == 'rms_norm'
                      else torch.nn.LayerNorm)
    assert (m.blocks[0].attn.qkv.bias is not None) == qkv_bias
    assert m.mlp_act == 'gelu'  # hidden_act


def test_interpolated_kernel_is_upstreams_bicubic():
    """PIIP / the InternVL detection and adapter code: F.interpolate(kernel, 16,
    bicubic, align_corners=False) of the 14-px kernel."""
    from internvit_dense.models.checkpoint import resize_patch_kernel
    w = torch.randn(8, 3, 14, 14)
    torch.testing.assert_close(resize_patch_kernel(w, (16, 16), 'bicubic'),
                               F.interpolate(w, size=(16, 16), mode='bicubic',
                                             align_corners=False))
    assert not torch.allclose(resize_patch_kernel(w, (16, 16), 'pinv'),
                              resize_patch_kernel(w, (16, 16), 'bicubic'), atol=1e-3)


@pytest.mark.parametrize('variant', ['internvl', 'piip'])
def test_pretrained_weights_load_as_upstream_transforms_them(variant, tmp_path):
    """The 224px backbone file into a 504-px patch-14 model (InternVL) and into the PIIP
    baseline's 512-px patch-16 model without a class token: our loader gives the
    position embedding and kernel that upstream's init_weights computes."""
    from internvit_reference import to_old_layout
    from upstream_internvl import pretrained_transform
    arch = tiny_arch('6b')
    old = to_old_layout(hf_state_dict_for(arch, grid=16, seed=2))  # 224 px / 14
    torch.save(old, tmp_path / 'intern_vit_6b_224px.pth')
    size, patch = (504, 14) if variant == 'internvl' else (512, 16)
    extra = dict(patch_resize='bicubic') if variant == 'piip' else {}
    model = InternViT(**arch, img_size=size, patch_size=patch,
                      with_cls_token=variant == 'internvl',
                      init_cfg=dict(type='Pretrained',
                                    checkpoint=str(tmp_path / 'intern_vit_6b_224px.pth'),
                                    **extra))
    model.init_weights()
    want = pretrained_transform(old if variant == 'internvl' else old['module'],
                                variant=variant, img_size=size, patch_size=patch,
                                pretrain_size=224)
    torch.testing.assert_close(model.pos_embed, want['pos_embed'], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.patch_embed.weight, want['patch_embed.proj.weight'],
                               atol=1e-5, rtol=1e-5)
    assert (model.cls_token is None) == (variant == 'piip')


# the eight files at the root of the Hugging Face repo OpenGVLab/InternVL -> their leaf
RELEASED = {
    'linear_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5_frozen':
        'linear_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504',
    'upernet_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5_frozen':
        'upernet_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504',
    'upernet_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5':
        'upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504',
    **{f'linear_intern_vit_6b_504_{it}k_ade20k_bs16_lr4e-5_1of{k}':
       f'linear_internvit-6b-224px_8xb2-{it}k_ade20k-1of{k}-504x504'
       for k, it in ((16, 5), (8, 10), (4, 20), (2, 40))},
    'linear_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5_1of1':
        'linear_internvit-6b-224px_8xb2-80k_ade20k-504x504',
}


def test_metafile_and_readme_list_the_released_checkpoints():
    """Each released file is its leaf's `Weights` in the metafile (and nothing else
    has weights), and the README's reproduction section names it with its config."""
    import yaml
    meta = yaml.safe_load((LEAVES / 'metafile.yaml').read_text())
    weights = {m['Name']: m['Weights'] for m in meta['Models'] if 'Weights' in m}
    piip = 'upernet_internvit-6b-224px_8xb2-80k_ade20k-512x512'
    assert weights.pop(piip) == ('https://huggingface.co/OpenGVLab/PIIP/resolve/main/'
                                 'segmentation/upernet_internvit_6b_512_80k_ade20k_bs16_lr4e-5.pth')
    assert weights == {leaf: f'https://huggingface.co/OpenGVLab/InternVL/resolve/main/{f}.pth'
                       for f, leaf in RELEASED.items()}
    readme = (ROOT / 'README.md').read_text()
    section = readme[readme.index('### Reproducing the published numbers'):]
    for f, leaf in RELEASED.items():
        row = next(line for line in section.splitlines() if f'`{f}.pth`' in line)
        assert f'`{leaf}.py`' in row
