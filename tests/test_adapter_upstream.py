"""The published adapter-tuning leaf builds the InternVL authors' adapter segmentor
(58.1 mIoU), field by field, and computes what it computes.

The upstream model is the naive re-implementation in ``upstream_adapter.py`` (after
InternVL-MMDetSeg's vit_adapter.py / adapter_modules.py, the deformable sampling by
hand), with tiny random weights saved in the upstream layout and containers. Our side
is the published leaf itself, shrunk only in width, depth, heads and head channels
(crop 512, patch 16, the 32 x 32 position grid and everything else as published),
computed in fp32 (``param_dtype=None``) so that 1e-5 is a real bound. The field table
compares the leaf with the values of the upstream config, written out in
``upstream_adapter.UPSTREAM_RECIPE``.
"""
import glob
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from conftest import load_tool
from mmengine.config import Config
from mmengine.registry import init_default_scope
from upstream_adapter import (
    UPSTREAM_RECIPE,
    MSDeformAttn,
    build_upstream_adapter_segmentor,
    state_dict_of,
)

import mmseg_internvit  # noqa: F401
from internvit_dense.engine.strict_load import load_plain_checkpoint
from internvit_dense.models import CheckpointMismatchError
from internvit_dense.models.adapter import DeformableAttention
from internvit_dense.models.layouts import (
    convert_internvl_adapter_segmentor,
    is_internvl_adapter_segmentor,
)
from internvit_dense.models.norms import LayerNorm2d

from upstream_internvl import (
    InternViT6B,
    pretrained_transform,
    resize,
    save_upstream_checkpoint,
)

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / 'configs' / 'internvit_adapter'
LEAF = FOLDER / 'upernet_internvit-6b-224px-adapter-frozen_8xb2-80k_ade20k-512x512.py'
GROUP_LEAF = FOLDER / ('upernet_internvit-6b-224px-adapter-group-frozen_8xb2-80k_ade20k'
                       '-512x512.py')
WIDTH, HEADS, DEPTH, STEM, CHANNELS = 64, 2, 8, 16, 32
SIZE = 512  # the published crop: the 32 x 32 grid, no resize in the forward


def tiny_leaf(path=LEAF) -> Config:
    """The leaf with a tiny ViT, stem and heads; everything else as it is."""
    cfg = Config.fromfile(str(path))
    cfg.model.backbone.update(embed_dims=WIDTH, num_heads=HEADS, num_layers=DEPTH,
                              mlp_hidden_dims=4 * WIDTH, conv_inplane=STEM, init_cfg=None,
                              param_dtype=None)
    cfg.model.decode_head.channels = CHANNELS
    cfg.model.auxiliary_head.channels = CHANNELS
    return cfg


def build(cfg: Config):
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


def upstream(seed=0, **kw):
    return build_upstream_adapter_segmentor(embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS,
                                            img_size=SIZE, conv_inplane=STEM,
                                            channels=CHANNELS, aux_channels=CHANNELS,
                                            seed=seed, **kw)


@pytest.fixture(scope='module')
def reference():
    return upstream()


@pytest.fixture(scope='module')
def image():
    return torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def outputs_of(ref, image) -> dict:
    """The reference's four maps, logits (upstream encode_decode: the decode head's
    output resized to the image) and auxiliary logits, from one backbone pass."""
    with torch.no_grad():
        feats = ref.backbone_features(image)
        logits = resize(ref.decode_head(feats), image.shape[2:], 'bilinear', False)
        return dict(feats=feats, logits=logits, aux=ref.auxiliary_head(feats))


@pytest.fixture(scope='module')
def expected(reference, image):
    return outputs_of(reference, image)


def assert_same_outputs(ours, want, image):
    """Our encode_decode (one backbone pass: the maps are caught on the way) against the
    reference's maps, logits and auxiliary logits."""
    caught = []
    hook = ours.backbone.register_forward_hook(lambda m, i, out: caught.append(out))
    try:
        with torch.no_grad():
            logits = ours.encode_decode(image, [dict(img_shape=(SIZE, SIZE))])
            feats, = caught
            aux = ours.auxiliary_head(feats)
    finally:
        hook.remove()
    assert [tuple(f.shape) for f in feats] == [
        (1, WIDTH, SIZE // s, SIZE // s) for s in (4, 8, 16, 32)]
    for k, (a, b) in enumerate(zip(feats, want['feats'])):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=f'level {k}')
    torch.testing.assert_close(aux, want['aux'], atol=1e-5, rtol=1e-5)
    assert logits.shape == (1, 150, SIZE, SIZE)
    torch.testing.assert_close(logits, want['logits'], atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- reference
def test_reference_has_the_upstream_keys(reference):
    sd = reference.state_dict()
    keys = list(sd)
    # InternViT6B's own parameters, then the adapter's: no class token (cls_token = None)
    assert keys[:2] == ['backbone.pos_embed', 'backbone.level_embed']
    assert 'backbone.cls_token' not in sd
    assert sd['backbone.pos_embed'].shape == (1, 1 + 32 * 32, WIDTH)
    assert sd['backbone.patch_embed.proj.weight'].shape == (WIDTH, 3, 16, 16)
    spm = [k[len('backbone.spm.'):] for k in keys if k.startswith('backbone.spm.')]
    assert spm == ['stem.0.weight', 'stem.1.weight', 'stem.1.bias', 'stem.3.weight',
                   'stem.4.weight', 'stem.4.bias', 'stem.6.weight', 'stem.7.weight',
                   'stem.7.bias'] + [f'conv{k}.{p}' for k in (2, 3, 4) for p in (
                       '0.weight', '1.weight', '1.bias')] + [
                       f'fc{k}.{p}' for k in (1, 2, 3, 4) for p in ('weight', 'bias')]
    attn = ['sampling_offsets.weight', 'sampling_offsets.bias', 'attention_weights.weight',
            'attention_weights.bias', 'value_proj.weight', 'value_proj.bias',
            'output_proj.weight', 'output_proj.bias']
    extractor = (['query_norm.weight', 'query_norm.bias', 'feat_norm.weight',
                  'feat_norm.bias'] + ['attn.' + a for a in attn] +
                 ['ffn.fc1.weight', 'ffn.fc1.bias', 'ffn.dwconv.dwconv.weight',
                  'ffn.dwconv.dwconv.bias', 'ffn.fc2.weight', 'ffn.fc2.bias',
                  'ffn_norm.weight', 'ffn_norm.bias'])
    injector = ['gamma', 'query_norm.weight', 'query_norm.bias', 'feat_norm.weight',
                'feat_norm.bias'] + ['attn.' + a for a in attn]
    last = [k[len('backbone.interactions.3.'):] for k in keys
            if k.startswith('backbone.interactions.3.')]
    assert last == (['injector.' + k for k in injector] + ['extractor.' + k for k in extractor]
                    + [f'extra_extractors.{i}.{k}' for i in (0, 1) for k in extractor])
    assert not any(k.startswith('backbone.interactions.2.extra_') for k in keys)
    tail = [k for k in keys if k.startswith(('backbone.up.', 'backbone.norm'))]
    assert tail == ['backbone.up.weight', 'backbone.up.bias'] + [
        f'backbone.norm{i}.{p}' for i in (1, 2, 3, 4) for p in ('weight', 'bias')]
    # upstream's value width: d_model * ratio
    assert sd['backbone.interactions.0.injector.attn.value_proj.weight'].shape == (
        WIDTH // 4, WIDTH)
    assert sd['backbone.interactions.0.injector.attn.sampling_offsets.weight'].shape == (
        HEADS * 3 * 4 * 2, WIDTH)
    assert is_internvl_adapter_segmentor(sd) and is_internvl_adapter_segmentor(
        'module.' + k for k in sd)


def test_reference_sampling_is_mmcv_sampling():
    """The hand-written sampling of the reference and mmcv's pytorch sampling (grid_sample)
    agree, far-reaching offsets included: the two implementations are independent."""
    from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
    torch.manual_seed(0)
    attn = MSDeformAttn(d_model=16, n_levels=2, n_heads=2, n_points=3, ratio=0.5)
    with torch.no_grad():
        attn.sampling_offsets.weight.normal_(0, 2.0)
        attn.attention_weights.weight.normal_(0, 1.0)
    shapes = torch.tensor([[4, 6], [2, 3]])
    start = torch.tensor([0, 24])
    query, value = torch.randn(2, 5, 16), torch.randn(2, 30, 16)
    ref = torch.rand(1, 5, 2, 2)
    with torch.no_grad():
        got = attn(query, ref, value, shapes, start)
        v = attn.value_proj(value).view(2, 30, 2, 4)
        off = attn.sampling_offsets(query).view(2, 5, 2, 2, 3, 2)
        w = attn.attention_weights(query).view(2, 5, 2, 6).softmax(-1).view(2, 5, 2, 2, 3)
        loc = ref[:, :, None, :, None, :] + off / shapes.flip(-1)[None, None, None, :,
                                                                  None, :]
        want = attn.output_proj(multi_scale_deformable_attn_pytorch(v, shapes, loc, w))
    assert ((loc < 0) | (loc > 1)).any()  # some samples fall off the maps
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- conversion
def test_every_upstream_key_maps_onto_the_published_leaf(reference):
    converted, unknown = convert_internvl_adapter_segmentor(reference.state_dict())
    assert unknown == []
    ours = build(tiny_leaf()).state_dict()
    assert set(converted) == set(ours)
    assert all(converted[k].shape == ours[k].shape for k in ours)


@pytest.mark.parametrize('container,dtype', [('bare', torch.float32),
                                             ('mmcv', torch.float16)])
def test_converted_adapter_segmentor_loads_strictly_and_matches_upstream(
        container, dtype, reference, image, expected, tmp_path):
    """The upstream weights in the upstream layout (fp32, or fp16 as a DeepSpeed fp16
    run holds them, the reference then switched to those values), converted by the tool,
    load strictly into the published leaf: the four maps, the logits and the auxiliary
    logits are the upstream ones at 1e-5."""
    ref, want = reference, expected
    sd = state_dict_of(ref)
    if dtype != torch.float32:
        sd = {k: v.to(dtype) if v.is_floating_point() and 'running_' not in k else v
              for k, v in sd.items()}
        ref = upstream()
        ref.load_state_dict({k: v.float() if v.is_floating_point() else v
                             for k, v in sd.items()})
        want = outputs_of(ref, image)
    src = save_upstream_checkpoint(sd, tmp_path / 'adapter.pth', container)
    dst = tmp_path / 'converted.pth'
    summary = load_tool('internvl2mmseg').convert_file(str(src), str(dst))
    assert summary['form'] == 'adapter-upernet' and summary['blocks'] == DEPTH
    assert summary['container'] == container and summary['dataset'] == 'ade20k'
    ours = build(tiny_leaf())
    load_plain_checkpoint(ours, str(dst))  # strict: every key, every shape
    assert_same_outputs(ours, want, image)
    if dtype == torch.float32:
        # not vacuous: our own wiring on the same weights is another model
        ours.backbone.vit_feature = 'group'
        with torch.no_grad():
            moved = ours.extract_feat(image)
        assert not torch.allclose(moved[0], want['feats'][0], atol=1e-3)


def test_converter_command_line_names_the_adapter(reference, tmp_path, capsys):
    """The tool's interface is unchanged (SRC DST); its summary names the adapter."""
    src = save_upstream_checkpoint(state_dict_of(reference), tmp_path / 'a.pth', 'module')
    load_tool('internvl2mmseg').main([str(src), str(tmp_path / 'b.pth')])
    out = capsys.readouterr().out
    assert f'(module container, adapter-upernet head, {DEPTH} blocks, 150 classes: ' \
        'ade20k)' in out
    assert torch.load(tmp_path / 'b.pth', weights_only=True)['meta']['source_form'] == \
        'adapter-upernet'


def test_unconverted_adapter_checkpoint_names_the_converter(reference, tmp_path):
    src = save_upstream_checkpoint(state_dict_of(reference), tmp_path / 'raw.pth', 'bare')
    with pytest.raises(CheckpointMismatchError, match=r'raw\.pth.*internvl2mmseg\.py'):
        load_plain_checkpoint(build(tiny_leaf()), str(src))


def test_converter_refuses_unknown_adapter_keys(reference, tmp_path):
    sd = state_dict_of(reference)
    sd['backbone.spm.stem.2.weight'] = torch.zeros(1)  # a ReLU has no weight
    torch.save(sd, tmp_path / 'odd.pth')
    with pytest.raises(ValueError, match=r'odd\.pth.*adapter segmentor layout.*stem\.2'):
        load_tool('internvl2mmseg').convert_file(str(tmp_path / 'odd.pth'),
                                                 str(tmp_path / 'x.pth'))


# ----------------------------------------------------------------------------- loading
def test_pretrained_vit_loads_as_upstream_loads_it(tmp_path):
    """The released 14-px ViT (the InternVL authors' backbone layout, grid 16 -> here 4
    at pretrain size 56) loaded by upstream's init_weights (bicubic kernel 14 -> 16 and
    grid 4 -> 32, load_state_dict(strict=False), the class token dropped) and by the
    leaf's init_cfg (patch_resize='bicubic'): the same ViT weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4)
        vit = InternViT6B(img_size=56, patch_size=14, embed_dim=WIDTH, depth=DEPTH,
                          num_heads=HEADS, out_indices=())
        with torch.no_grad():
            for p in vit.parameters():
                p.normal_(0, 0.1)
    path = tmp_path / 'intern_vit_6b_224px.pth'
    torch.save(vit.state_dict(), path)
    ref = upstream(seed=2)
    missing, unexpected = ref.backbone.load_state_dict(pretrained_transform(
        torch.load(path), variant='internvl', img_size=SIZE, patch_size=16,
        pretrain_size=56), strict=False)
    assert unexpected == ['cls_token']
    cfg = tiny_leaf()
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(path),
                                       patch_resize='bicubic')
    assert Config.fromfile(str(LEAF)).model.backbone.init_cfg.patch_resize == 'bicubic'
    ours = build(cfg).backbone.vit
    theirs = ref.backbone
    torch.testing.assert_close(ours.patch_embed.weight, theirs.patch_embed.proj.weight,
                               atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(ours.pos_embed, theirs.pos_embed, atol=1e-6, rtol=1e-6)
    for i in range(DEPTH):
        torch.testing.assert_close(ours.blocks[i].ls1, theirs.blocks[i].ls1.gamma)
        torch.testing.assert_close(ours.blocks[i].attn.qkv.weight,
                                   theirs.blocks[i].attn.qkv.weight)


# ----------------------------------------------------------------------------- fields
def built_published():
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = Config.fromfile(str(LEAF))
    with torch.device('meta'):
        return cfg, MODELS.build(cfg.model)


def test_published_leaf_fields_are_the_upstream_recipe():
    """Every field of the upstream config (its bases and the DeepSpeed json included),
    each against what the leaf builds or states."""
    cfg, model = built_published()
    r = UPSTREAM_RECIPE['backbone']
    b, vit = model.backbone, model.backbone.vit
    arch = vit.arch_settings
    C = b.embed_dims
    blocks = list(b.interactions)
    attns = [m.attn for m in b.modules() if isinstance(m, DeformableAttention)]
    extractors = [e for blk in blocks for e in [blk.extractor, *blk.extra_extractors]]
    rows = {
        # InternViT6B
        'img_size': (vit.img_size, (r['img_size'], ) * 2),
        'patch_size': (vit.patch_size, r['patch_size']),
        'pos_embed grid (img_size // patch_size, no resize in forward)': (
            (vit.grid_size, tuple(vit.pos_embed.shape)),
            ((32, 32), (1, 1 + 32 * 32, r['embed_dim']))),
        'pretrain_size (the grid the checkpoint is resized from)': (
            arch['pretrain_size'], r['pretrain_size']),
        'embed_dim': (C, r['embed_dim']),
        'depth': (vit.num_layers, r['depth']),
        'num_heads': (arch['num_heads'], r['num_heads']),
        'mlp_ratio': (arch['mlp_hidden_dims'] / C, r['mlp_ratio']),
        'qkv_bias': (arch['qkv_bias'], r['qkv_bias']),
        'qk_normalization': (arch['qk_normalization'], r['qk_normalization']),
        'layer scale init': (arch['layer_scale_init'], r['layer_scale_init_values']),
        'drop_path_rate': (all(isinstance(blk.drop_path, nn.Identity) for blk in vit.blocks)
                           and cfg.model.backbone.drop_path_rate, r['drop_path_rate']),
        'in_chans': (vit.patch_embed.in_channels, r['in_chans']),
        'freeze_vit': (b.freeze_vit and not any(p.requires_grad for p in vit.parameters()),
                       r['freeze_vit']),
        'cls_token = None (tokens + pos_embed[:, 1:])': (
            (vit.cls_token, vit.num_prefix), (None, 0)),
        'with_cp': (b.with_cp and cfg.strategy.with_cp, r['with_cp']),
        # InternViTAdapter
        'interaction_indexes': ([list(g) for g in b.interaction_indexes],
                                r['interaction_indexes']),
        'conv_inplane': (b.spm.stem[0].conv.out_channels, r['conv_inplane']),
        'n_points': ({a.num_points for a in attns}, {r['n_points']}),
        'deform_num_heads': ({a.num_heads for a in attns}, {r['deform_num_heads']}),
        'deform_ratio': ({a.value_proj.out_features / C for a in attns},
                         {r['deform_ratio']}),
        'injector levels 3, extractor levels 1': (
            ([blk.injector.attn.attn.num_levels for blk in blocks],
             {e.attn.attn.num_levels for e in extractors}), ([3] * 4, {1})),
        'init_values (injector gamma)': ({blk.injector.init_values for blk in blocks},
                                         {r['init_values']}),
        'with_cffn': ({e.with_cffn for e in extractors}, {r['with_cffn']}),
        'cffn_ratio': ({e.ffn.fc1.out_features / C for e in extractors}, {r['cffn_ratio']}),
        'extractor drop path (drop_path_rate)': (
            {type(e.drop_path) for e in extractors}, {nn.Identity}),
        'use_extra_extractor (2 on the last interaction)': (
            [len(blk.extra_extractors) for blk in blocks], [0, 0, 0, 2]),
        'interaction norms nn.LayerNorm eps 1e-5': (
            {(type(m), m.eps) for m in b.interactions.modules()
             if isinstance(m, nn.LayerNorm)}, {(nn.LayerNorm, 1e-5)}),
        'spm: conv 3x3 without bias, channels-first LN eps 1e-6, ReLU': (
            {(cm.conv.bias is None, type(cm.norm), cm.norm.eps, type(cm.activate))
             for cm in [*b.spm.stem[:3], b.spm.conv2, b.spm.conv3, b.spm.conv4]},
            {(True, LayerNorm2d, 1e-6, nn.ReLU)}),
        'spm fc1..4 1x1 with bias': ({(fc.kernel_size, fc.bias is not None)
                                      for fc in (b.spm.fc1, b.spm.fc2, b.spm.fc3, b.spm.fc4)},
                                     {((1, 1), True)}),
        'add_vit_feature, the final map to c1..c4': ((b.add_vit_feature, b.vit_feature),
                                                     (r['add_vit_feature'], 'final')),
        'use_final_norm: channels-first LN eps 1e-6 on c.float()': (
            ({(type(n), n.eps) for n in b.out_norms}, b.out_fp32),
            ({(LayerNorm2d, 1e-6)}, True)),
        'with_fpn=False: no neck': (cfg.model.neck, None),
        '14 -> 16 kernel: bicubic': (cfg.model.backbone.init_cfg.patch_resize, 'bicubic'),
    }
    for head_name in ('decode_head', 'auxiliary_head'):
        up, head, hcfg = UPSTREAM_RECIPE[head_name], getattr(model, head_name), \
            cfg.model[head_name]
        rows.update({
            f'{head_name}.type': (type(head).__name__, up['type']),
            f'{head_name}.in_channels': (head.in_channels, up['in_channels']),
            f'{head_name}.in_index': (head.in_index, up['in_index']),
            f'{head_name}.channels': (head.channels, up['channels']),
            f'{head_name}.dropout_ratio': (head.dropout.p, up['dropout_ratio']),
            f'{head_name}.num_classes': (head.num_classes, up['num_classes']),
            f'{head_name}.norm_cfg': (dict(hcfg.norm_cfg), up['norm_cfg']),
            f'{head_name}.align_corners': (head.align_corners, up['align_corners']),
            f'{head_name}.loss_decode': (dict(hcfg.loss_decode), up['loss_decode']),
        })
    rows['decode_head.pool_scales'] = (tuple(cfg.model.decode_head.pool_scales),
                                       UPSTREAM_RECIPE['decode_head']['pool_scales'])
    rows['auxiliary_head.num_convs / concat_input'] = (
        (cfg.model.auxiliary_head.num_convs, model.auxiliary_head.concat_input),
        (UPSTREAM_RECIPE['auxiliary_head']['num_convs'],
         UPSTREAM_RECIPE['auxiliary_head']['concat_input']))
    rows['heads compute in fp32 (the fork casts them)'] = (model.fp32_heads, True)
    test_cfg = dict(cfg.model.test_cfg)
    test_cfg.pop('slide_batch_size')  # ours: windows batched, the same windows
    rows['test_cfg'] = (test_cfg, UPSTREAM_RECIPE['test_cfg'])
    # optimisation
    o, ow = UPSTREAM_RECIPE['optimizer'], cfg.optim_wrapper
    rows['optimizer'] = ((ow.optimizer.type, ow.optimizer.lr, tuple(ow.optimizer.betas),
                          ow.optimizer.weight_decay), (o['type'], o['lr'], o['betas'],
                                                       o['weight_decay']))
    rows['layer_decay_rate'] = (ow.paramwise_cfg.layer_decay_rate, o['layer_decay_rate'])
    rows['no gradient clipping'] = ((ow.get('clip_grad'), cfg.strategy.get(
        'gradient_clipping')), (None, None))
    lr, (warm, poly) = UPSTREAM_RECIPE['lr_config'], cfg.param_scheduler
    rows['warm-up: linear from 1e-6 over 1500 iterations'] = (
        (warm.type, warm.start_factor, warm.end - 1, warm.by_epoch),
        ('LinearLR', lr['warmup_ratio'], lr['warmup_iters'], lr['by_epoch']))
    rows['poly: power 1, min 0, over all iterations'] = (
        (poly.type, poly.power, poly.eta_min, poly.begin, poly.end - 1),
        ('PolyLR', lr['power'], lr['min_lr'], 0, UPSTREAM_RECIPE['runner']['max_iters']))
    rows['max_iters'] = (cfg.train_cfg.max_iters, UPSTREAM_RECIPE['runner']['max_iters'])
    rows['batch 2 per GPU x 8 GPUs'] = ((cfg.train_dataloader.batch_size, '8xb2' in LEAF.name),
                                        (UPSTREAM_RECIPE['runner']['samples_per_gpu'], True))
    ck, ev = UPSTREAM_RECIPE['checkpoint'], UPSTREAM_RECIPE['evaluation']
    hook = cfg.default_hooks.checkpoint
    rows['checkpoint / evaluation'] = (
        (hook.interval, hook.max_keep_ckpts, hook.save_best, cfg.train_cfg.val_interval,
         cfg.val_evaluator.iou_metrics),
        (ck['interval'], ck['max_keep_ckpts'], ev['save_best'], ev['interval'],
         [ev['metric']]))
    # precision: DeepSpeed ZeRO-1 fp16, the json's settings
    ds, s = UPSTREAM_RECIPE['deepspeed'], cfg.strategy
    rows['DeepSpeed strategy'] = (s.type, 'InternViTDeepSpeedStrategy')
    rows['zero_optimization'] = (dict(s.zero_optimization), ds['zero_optimization'])
    rows['fp16 without autocast'] = ((s.fp16.enabled, s.fp16.auto_cast),
                                     (ds['fp16']['enabled'], ds['fp16']['auto_cast']))
    ls = ds['loss_scaler']
    rows['dynamic loss scale as DeepSpeed 0.8.0 ran the json'] = (
        (s.fp16.loss_scale, 2**s.fp16.initial_scale_power, s.fp16.loss_scale_window,
         s.fp16.hysteresis, s.fp16.min_loss_scale),
        (0, ls['init_scale'], ls['scale_window'], ls['delayed_shift'], ls['min_scale']))
    rows['the ViT held in fp16, the images and buffers in fp16'] = (
        (vit.param_dtype, list(s.inputs_to_half), s.config.data_types.buffer_dtype),
        (torch.float16, ['inputs'], 'fp16'))
    bad = {name: (got, want) for name, (got, want) in rows.items() if got != want}
    assert bad == {}, '\n'.join(f'{k}: ours {g!r}, upstream {w!r}' for k, (g, w) in bad.items())
    assert len(rows) >= 60


def test_data_pipeline_is_the_upstream_one():
    """_base_/datasets/ade20k.py of the fork: resize (2048, 512) x 0.5-2.0, crop 512 with
    cat_max_ratio 0.75, flip 0.5, photometric distortion, pad to 512; test short side
    exactly 512 (SETR_Resize), no resize to a multiple."""
    cfg = Config.fromfile(str(LEAF))
    train = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}
    assert train['RandomResize'].scale == (2048, 512)
    assert tuple(train['RandomResize'].ratio_range) == (0.5, 2.0)
    assert (train['RandomCrop'].crop_size, train['RandomCrop'].cat_max_ratio) == (
        (512, 512), 0.75)
    assert train['RandomFlip'].prob == 0.5 and 'PhotoMetricDistortion' in train
    assert cfg.model.data_preprocessor.size == (512, 512)
    assert cfg.model.data_preprocessor.mean == [123.675, 116.28, 103.53]
    assert cfg.model.data_preprocessor.std == [58.395, 57.12, 57.375]
    assert cfg.model.data_preprocessor.bgr_to_rgb
    assert cfg.val_dataloader.dataset.type == 'ADE20KDataset'


def test_group_leaf_is_ours_in_the_fields_its_header_lists():
    """The 'group' leaf is the published recipe except the fields its header lists."""
    pub, ours = Config.fromfile(str(LEAF)), Config.fromfile(str(GROUP_LEAF))
    header = GROUP_LEAF.read_text()
    for phrase in ("vit_feature='group'", 'with_cls_token=False', 'SyncBN', 'eps 1e-6',
                   '256 channels', 'pseudo-inverse', 'no DeepSpeed'):
        assert phrase in header, phrase
    a, b = dict(pub.model.backbone), dict(ours.model.backbone)
    changed = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
    assert changed == {'vit_feature', 'with_cls_token', 'norm_cfg', 'interaction_norm_eps',
                       'out_fp32', 'init_cfg', 'param_dtype'}
    assert (b['vit_feature'], b.get('with_cls_token', True), b['norm_cfg']['type'],
            b.get('interaction_norm_eps', 1e-6), b['param_dtype']) == (
        'group', True, 'SyncBN', 1e-6, 'bfloat16')
    assert dict(a['init_cfg'], patch_resize='pinv') == dict(b['init_cfg'],
                                                            patch_resize='pinv')
    assert ours.model.auxiliary_head.channels == 256
    assert 'strategy' not in ours and pub.strategy.fp16.enabled
    for key in ('decode_head', 'test_cfg', 'data_preprocessor'):
        assert pub.model[key] == ours.model[key], key
    for key in ('optim_wrapper', 'param_scheduler', 'train_dataloader', 'train_cfg',
                'default_hooks'):
        assert pub[key] == ours[key], key


def test_the_two_wirings_differ_only_where_they_say():
    """The same weights give the same pyramid under both wirings when the ViT maps are
    left out; added, they agree at the last level only (the last group's map is the
    final one)."""
    from internvit_dense import InternViTAdapter
    kw = dict(arch='internvit-300m-448px', embed_dims=32, num_layers=4, num_heads=2,
              mlp_hidden_dims=64, patch_size=16, img_size=64, deform_num_heads=2,
              deform_ratio=0.5, conv_inplane=8, interaction_indexes=[[i, i] for i in range(4)])
    torch.manual_seed(0)
    group = InternViTAdapter(vit_feature='group', **kw).eval()
    final = InternViTAdapter(vit_feature='final', **kw).eval()
    final.load_state_dict(group.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for m in (group, final):
            m.interactions[0].injector.gamma.fill_(0.5)
        g, f = group(x), final(x)
        # the last group's map is the final one: level 4 agrees, levels 1-3 do not
        torch.testing.assert_close(g[3], f[3], atol=0, rtol=0)
        for a, b in zip(g[:3], f[:3]):
            assert not torch.allclose(a, b, atol=1e-3)
        group.add_vit_feature = final.add_vit_feature = False
        for a, b in zip(group(x), final(x)):
            torch.testing.assert_close(a, b, atol=0, rtol=0)
    with pytest.raises(ValueError, match='vit_feature'):
        InternViTAdapter(vit_feature='last', **kw)


# ----------------------------------------------------------------------------- fp16 ZeRO-1
FP16_RUN = """
import sys
sys.path[:0] = [{tests!r}, {root!r}]
from deepspeed.accelerator import get_accelerator
# DeepSpeed's CPU accelerator reports no fp16; its ZeRO fp16 optimizer itself runs
get_accelerator().is_fp16_supported = lambda: True
from conftest import load_tool
load_tool('train').main([{cfg!r}, '--work-dir', {work!r}])
"""


def test_published_leaf_trains_under_its_own_fp16_zero1(demo_root, tmp_path):
    """The leaf's strategy as published (DeepSpeed ZeRO-1 fp16, fp16 images and buffers,
    the frozen ViT held in fp16, fp32 heads), shrunk and on the demo data, trains one
    process on the CPU with DeepSpeed's fp16 check patched (its CPU accelerator has none):
    finite losses, the adapter and heads move, the frozen ViT stays and is saved in fp16."""
    cfg = tmp_path / 'adapter_fp16_tiny.py'
    cfg.write_text(
        f"_base_ = {str(LEAF)!r}\n"
        "bn = dict(type='BN', requires_grad=True)\n"
        "model = dict(data_preprocessor=dict(size=(64, 64)),\n"
        "    backbone=dict(embed_dims=32, num_heads=2, num_layers=4, mlp_hidden_dims=64,\n"
        "                  img_size=64, conv_inplane=8, init_cfg=None),\n"
        "    decode_head=dict(channels=16, norm_cfg=bn),\n"
        "    auxiliary_head=dict(channels=8, norm_cfg=bn), test_cfg=dict(mode='whole'))\n"
        "# the published scale starts at 2^32: the first ~20 steps overflow and are skipped\n"
        "strategy = dict(fp16=dict(initial_scale_power=8))\n"
        "from mmseg_internvit.datasets.pipelines import seg_pipelines\n"
        "train_pipeline, _, _ = seg_pipelines((64, 64), 150, True)\n"
        "train_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(\n"
        f"    data_root={demo_root!r}, pipeline=train_pipeline))\n"
        "val_dataloader = None\nval_cfg = None\nval_evaluator = None\n"
        "optim_wrapper = dict(optimizer=dict(lr=1e-2))\n"
        "param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]\n"
        "train_cfg = dict(max_iters=2, val_interval=1000)\n"
        "default_hooks = dict(logger=dict(interval=1),\n"
        "                     checkpoint=dict(interval=1, max_keep_ckpts=2))\n"
        "randomness = dict(seed=0)\n")
    work = tmp_path / 'work'
    script = tmp_path / 'run.py'
    script.write_text(FP16_RUN.format(tests=str(ROOT / 'tests'), root=str(ROOT),
                                      cfg=str(cfg), work=str(work)))
    env = dict(os.environ, MASTER_PORT=str(_free_port()))
    run = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    log = next(work.glob('*/*.log')).read_text()
    losses = [float(line.split(' loss: ')[1].split()[0]) for line in log.splitlines()
              if 'Iter(train)' in line]
    assert len(losses) == 2 and all(map(math.isfinite, losses)), losses
    from internvit_dense.engine.deepspeed import check_deepspeed_checkpoint

    def module_states(ckpt):
        check_deepspeed_checkpoint(str(ckpt))
        path = glob.glob(str(ckpt / '*model_states.pt'))[0]
        return torch.load(path, map_location='cpu', weights_only=False)['module']
    first, last = module_states(work / 'iter_1.pth'), module_states(work / 'iter_2.pth')
    for key in ('backbone.vit.blocks.0.attn.qkv.weight', 'backbone.vit.pos_embed'):
        assert first[key].dtype == torch.float16 and torch.equal(first[key], last[key]), key
    assert 'backbone.vit.cls_token' not in first
    for key in ('backbone.spm.fc4.weight', 'backbone.interactions.0.injector.gamma',
                'decode_head.conv_seg.weight'):
        assert first[key].dtype == torch.float16, key
        assert not torch.equal(first[key], last[key]), key


def _free_port() -> int:
    from internvit_dense.dist import free_port
    return free_port()
