"""InternViTAdapter (ViT-Adapter around InternViT): shapes, adapter tuning, checkpointing,
the deformable sampling and the whole forward against deliberately naive references
written here, pretrained loading, every adapter config, the demo config end to end."""
import glob
import math
import os.path as osp
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_optimizer_holds_trainable_params, load_tool, train_user_config
from mmengine.config import Config
from mmengine.registry import init_default_scope
from safetensors.torch import save_file

import mmdet_internvit  # noqa: F401
import mmseg_internvit  # noqa: F401
from internvit_dense import InternViT, InternViTAdapter
from internvit_dense.models import CheckpointMismatchError
from internvit_dense.models.adapter import DeformableAttention, reference_points

from internvit_reference import hf_state_dict_for, tiny_arch

ROOT = Path(__file__).resolve().parents[1]
SEG_CONFIGS = sorted(glob.glob(str(ROOT / 'configs' / 'internvit_adapter' / '*.py')) +
                     glob.glob(str(ROOT / 'configs' / 'internvit_adapter' / 'deepspeed' /
                                   '*.py')))
DET_CONFIGS = sorted(glob.glob(str(ROOT / 'configs' / 'internvit_adapter_det' / '*.py')))
DEMO_CONFIGS = sorted(glob.glob(str(ROOT / 'configs' / 'demo' / '*adapter*.py')))
GROUPS = [[0, 0], [1, 1], [2, 2], [3, 3]]
NUM_CLASSES = 6  # of the tiny config models


def tiny(**kw):
    """A 4-block, width-32 adapter (patch 16) of the 300M family."""
    cfg = dict(arch='internvit-300m-448px', embed_dims=32, num_layers=4, num_heads=2,
               mlp_hidden_dims=64, patch_size=16, img_size=64, deform_num_heads=2,
               deform_ratio=0.5, conv_inplane=8, interaction_indexes=GROUPS)
    cfg.update(kw)
    torch.manual_seed(0)
    model = InternViTAdapter(**cfg)
    model.init_weights()
    return model


def randomize_adapter(model, seed=1):
    """Non-zero gammas, level embeddings, norm statistics and query-dependent sampling:
    every path contributes."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith('vit.'):
                continue
            if 'gamma' in name or 'level_embed' in name or 'norm' in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5 + (
                    1.0 if name.endswith('weight') else 0.0))
            elif name.endswith(('sampling_offsets.weight', 'attention_weights.weight')):
                # queries move the sampling points and weigh them (both 0 at init)
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        for name, b in model.named_buffers():
            if name.endswith('running_mean'):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith('running_var'):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize('size', [(50, 70), (64, 64), (33, 97)])
def test_four_levels_at_strides_4_to_32_for_any_size(size):
    model = tiny()
    H, W = size
    outs = model(torch.randn(2, 3, H, W))
    assert [tuple(o.shape) for o in outs] == [
        (2, 32, math.ceil(H / s), math.ceil(W / s)) for s in (4, 8, 16, 32)]
    assert all(o.is_contiguous() and torch.isfinite(o).all() for o in outs)


def test_patch_14_pads_to_a_common_multiple():
    model = tiny(patch_size=14, img_size=56)
    assert model.size_divisor == 224
    outs = model.forward_intermediates(torch.randn(1, 3, 50, 70))
    assert outs['padded_size'] == (224, 224)
    assert outs['vit'][0].shape[-2:] == (16, 16)
    assert [tuple(o.shape[-2:]) for o in outs['pyramid']] == [(13, 18), (7, 9), (4, 5),
                                                              (2, 3)]


def test_windowed_attention_and_crop_positions():
    # crop mode: the grid covers the largest padded input (80 x 112 -> 96 x 128)
    model = tiny(window_size=2, global_attn_indexes=[3], pos_embed_mode='crop',
                 img_size=(96, 128))
    assert [b.window_size for b in model.vit.blocks] == [2, 2, 2, 0]
    outs = model(torch.randn(1, 3, 80, 112))
    assert [tuple(o.shape[-2:]) for o in outs] == [(20, 28), (10, 14), (5, 7), (3, 4)]
    outs[0].mean().backward()
    assert model.vit.blocks[0].attn.qkv.weight.grad is not None


def test_bad_arguments_name_themselves():
    with pytest.raises(TypeError, match='freeze_vit'):
        tiny(frozen=True)
    with pytest.raises(TypeError, match='interaction_indexes'):
        tiny(out_indices=[3])
    with pytest.raises(TypeError, match='interaction_indexes'):
        tiny(interaction_indexes=[[0, 1], [2, 3]])
    with pytest.raises(ValueError, match='contiguous'):
        tiny(interaction_indexes=[[0, 0], [2, 2], [3, 3], [3, 3]])
    with pytest.raises(ValueError, match='cover all 5 blocks'):
        tiny(num_layers=5)
    with pytest.raises(ValueError, match='deform_num_heads'):
        tiny(deform_num_heads=3)
    with pytest.raises(ValueError, match='freeze_vit'):
        tiny(param_dtype='bfloat16')
    with pytest.raises(ValueError, match='n_points'):
        tiny(n_points=0)


def test_default_groups_end_at_the_stage_blocks():
    # the published groups for 48 blocks, and for 45 the ones ending at the blocks
    # UperNet reads (11 / 22 / 33 / 44); the deformable heads default to the ViT's
    with torch.device('meta'):
        a = InternViTAdapter(arch='internvit-6b-224px', deform_ratio=0.25)
        b = InternViTAdapter(arch='internvit-6b-448px', deform_ratio=0.25)
        c = InternViTAdapter(arch='internvit-300m-448px', deform_ratio=0.25)
    assert a.interaction_indexes == [(0, 11), (12, 23), (24, 35), (36, 47)]
    assert b.interaction_indexes == [(0, 11), (12, 22), (23, 33), (34, 44)]
    assert c.interaction_indexes == [(0, 5), (6, 11), (12, 17), (18, 23)]
    assert a.vit.out_indices == [11, 23, 35, 47]
    assert b.vit.out_indices == [11, 22, 33, 44]
    assert a.interactions[0].injector.attn.attn.num_heads == 25
    assert c.interactions[0].injector.attn.attn.num_heads == 16


def test_core_imports_without_compiled_ops():
    code = ('import sys, internvit_dense.models.adapter; '
            "assert 'mmcv.ops' not in sys.modules, 'mmcv.ops imported at import time'")
    run = subprocess.run([sys.executable, '-c', code], cwd=str(ROOT), capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr[-2000:]


def test_registered_once_in_both_libraries():
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    assert SEG.get('InternViTAdapter') is InternViTAdapter
    assert DET.get('InternViTAdapter') is InternViTAdapter


# ----------------------------------------------------------------------------- tuning modes
@pytest.mark.parametrize('param_dtype', [None, 'bfloat16'])
def test_freeze_vit_trains_the_adapter_only(param_dtype):
    model = tiny(freeze_vit=True, param_dtype=param_dtype)
    randomize_adapter(model)  # gamma != 0: the injectors' own weights get gradients
    model.train()
    assert not model.vit.training and model.spm.training
    assert not any(p.requires_grad for p in model.vit.parameters())
    adapter = {n: p for n, p in model.named_parameters() if not n.startswith('vit.')}
    assert adapter and all(p.requires_grad for p in adapter.values())
    if param_dtype:
        assert all(p.dtype == torch.bfloat16 for p in model.vit.parameters())
    outs = model(torch.randn(2, 3, 50, 70))
    assert all(o.dtype == torch.float32 for o in outs)
    sum(o.float().pow(2).mean() for o in outs).backward()
    assert all(p.grad is None for p in model.vit.parameters())
    for name, p in adapter.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # the first injector reaches the loss only through the frozen blocks' activations
    inj = model.interactions[0].injector.attn.attn.value_proj.weight
    assert inj.grad.abs().sum() > 0


def test_layer_decay_ids_through_the_adapter():
    from mmengine.optim import build_optim_wrapper
    init_default_scope('mmseg')
    model = torch.nn.ModuleDict(dict(backbone=tiny()))
    wrapper = build_optim_wrapper(model, dict(
        optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.05),
        constructor='InternViTLayerDecayOptimizerConstructor',
        paramwise_cfg=dict(layer_decay_rate=0.5)))
    ids = {}
    names = {id(p): n for n, p in model.named_parameters()}
    for g in wrapper.optimizer.param_groups:
        for p in g['params']:
            ids[names[id(p)]] = g['layer_id']
    assert ids['backbone.vit.pos_embed'] == 0
    assert ids['backbone.vit.blocks.2.attn.qkv.weight'] == 3
    assert ids['backbone.interactions.0.injector.gamma'] == 5
    assert ids['backbone.spm.conv2.conv.weight'] == 5
    assert len(ids) == len(list(model.parameters()))


def test_strategy_with_cp_switch_reaches_the_adapter():
    from internvit_dense.engine.deepspeed import set_internvit_with_cp
    model = tiny()
    assert set_internvit_with_cp(model, True) == 1 and model.with_cp
    model.with_cp = False
    assert not model.vit.with_cp


@pytest.mark.parametrize('freeze', [False, True])
def test_checkpointing_gives_identical_outputs_and_gradients(freeze):
    from torch.autograd.graph import saved_tensors_hooks
    results = []
    for with_cp in (False, True):
        model = tiny(freeze_vit=freeze, with_cp=with_cp)
        randomize_adapter(model)
        model.train()
        x = torch.randn(2, 3, 50, 70, generator=torch.Generator().manual_seed(3))
        saved = []

        def pack(t):
            saved.append(t.numel())
            return t
        with saved_tensors_hooks(pack, lambda t: t):
            outs = model(x)
        sum(o.pow(2).mean() for o in outs).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()
                 if p.grad is not None}
        results.append((outs, grads, sum(saved)))
    (o0, g0, s0), (o1, g1, s1) = results
    for a, b in zip(o0, o1):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert g0.keys() == g1.keys() and (freeze or 'vit.blocks.0.mlp.fc1.weight' in g0)
    for n in g0:
        torch.testing.assert_close(g0[n], g1[n], rtol=1e-5, atol=1e-6, msg=n)
    assert s1 < s0 / 2  # checkpointing is active: far fewer tensors kept for backward


# ----------------------------------------------------------------------------- naive reference
def bilinear_by_hand(img, x, y):
    """Sample img (C, h, w) at normalised points x, y (N,) in [0, 1] (pixel centres at
    (k + 0.5) / size), bilinearly, with zeros outside: (N, C)."""
    C, h, w = img.shape
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = torch.floor(px), torch.floor(py)
    out = torch.zeros(len(x), C, dtype=img.dtype)
    for xi in (x0, x0 + 1):
        for yi in (y0, y0 + 1):
            weight = (1 - (px - xi).abs()) * (1 - (py - yi).abs())
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            for n in range(len(x)):
                if inside[n]:
                    out[n] += weight[n] * img[:, int(yi[n]), int(xi[n])]
    return out


def naive_deform_attn(attn, query, value, points, shapes):
    """Multi-scale deformable attention spelled out (one reference point per query,
    the same at every level): project, softmax the weights, sample every head, level
    and point by hand, sum, project."""
    B, Nq, _ = query.shape
    heads, L, P = attn.num_heads, attn.num_levels, attn.num_points
    v = value @ attn.value_proj.weight.T + attn.value_proj.bias
    D = v.shape[-1] // heads
    off = (query @ attn.sampling_offsets.weight.T + attn.sampling_offsets.bias).view(
        B, Nq, heads, L, P, 2)
    aw = (query @ attn.attention_weights.weight.T + attn.attention_weights.bias).view(
        B, Nq, heads, L * P).softmax(-1).view(B, Nq, heads, L, P)
    out = torch.zeros(B, Nq, heads * D)
    for b in range(B):
        start = 0
        for lvl, (h, w) in enumerate(shapes):
            vl = v[b, start:start + h * w].view(h, w, heads, D)
            start += h * w
            for hd in range(heads):
                img = vl[:, :, hd].permute(2, 0, 1)
                for p in range(P):
                    x = points[:, 0] + off[b, :, hd, lvl, p, 0] / w
                    y = points[:, 1] + off[b, :, hd, lvl, p, 1] / h
                    out[b, :, hd * D:(hd + 1) * D] += aw[b, :, hd, lvl, p, None] * \
                        bilinear_by_hand(img, x, y)
    return out @ attn.output_proj.weight.T + attn.output_proj.bias


def test_deformable_sampling_matches_a_naive_reference():
    torch.manual_seed(0)
    shapes = [(3, 4), (2, 2)]
    mod = DeformableAttention(16, num_heads=2, num_levels=2, num_points=3, deform_ratio=0.5)
    with torch.no_grad():  # far-reaching offsets: some samples fall off the map
        mod.attn.sampling_offsets.weight.normal_(0, 1.0)
        mod.attn.attention_weights.weight.normal_(0, 1.0)
    query, value = torch.randn(2, 5, 16), torch.randn(2, 16, 16)
    points = torch.rand(5, 2)
    spatial = torch.tensor(shapes)
    start = torch.tensor([0, 12])
    with torch.no_grad():
        ours = mod(query, value, points[None, :, None], spatial, start)
        naive = naive_deform_attn(mod.attn, query, value, points, shapes)
        # and the same function as mmcv's own module forward
        mmcv = mod.attn(query, value=value, identity=0.0,
                        reference_points=points[None, :, None].expand(2, 5, 2, 2),
                        spatial_shapes=spatial, level_start_index=start)
    torch.testing.assert_close(ours, naive, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours, mmcv, rtol=1e-5, atol=1e-6)


def ln(x, m, dim=-1):
    mu = x.mean(dim, keepdim=True)
    var = ((x - mu)**2).mean(dim, keepdim=True)
    shape = [-1] + [1] * (x.dim() - 1 - (dim % x.dim())) if dim != -1 else [-1]
    return (x - mu) / torch.sqrt(var + m.eps) * m.weight.view(shape) + m.bias.view(shape)


def conv_bn_relu(x, cm, stride):
    """An mmcv ConvModule (conv, eval-mode BatchNorm, ReLU) by hand."""
    bn = cm.bn
    y = F.conv2d(x, cm.conv.weight, None, stride, 1)
    y = (y - bn.running_mean[:, None, None]) / torch.sqrt(
        bn.running_var[:, None, None] + bn.eps) * bn.weight[:, None, None] + \
        bn.bias[:, None, None]
    return y.clamp_min(0)


def naive_adapter_forward(model, img):
    """The adapter's forward written out from the ViT-Adapter design, on the model's
    weights, in eval mode. Only the ViT blocks themselves are called (tested against
    their own naive reference in test_backbone.py)."""
    H, W = img.shape[-2:]
    img = F.pad(img, (0, (-W) % 32, 0, (-H) % 32))
    B = img.shape[0]
    s = model.spm
    c1 = conv_bn_relu(conv_bn_relu(conv_bn_relu(img, s.stem[0], 2), s.stem[1], 1),
                      s.stem[2], 1)
    c1 = F.max_pool2d(c1, 3, 2, 1)
    c2 = conv_bn_relu(c1, s.conv2, 2)
    c3 = conv_bn_relu(c2, s.conv3, 2)
    c4 = conv_bn_relu(c3, s.conv4, 2)
    c1, c2, c3, c4 = (F.conv2d(c, fc.weight, fc.bias)
                      for c, fc in zip((c1, c2, c3, c4), (s.fc1, s.fc2, s.fc3, s.fc4)))
    shapes = [tuple(c.shape[-2:]) for c in (c2, c3, c4)]
    c = torch.cat([t.flatten(2).transpose(1, 2) + model.level_embed[i]
                   for i, t in enumerate((c2, c3, c4))], 1)
    vit = model.vit
    tok = F.conv2d(img, vit.patch_embed.weight, vit.patch_embed.bias, stride=16)
    h, w = tok.shape[-2:]
    n = 0 if vit.cls_token is None else 1  # tokens before the patches
    seq = tok.flatten(2).transpose(1, 2)
    if n:
        seq = torch.cat([vit.cls_token.expand(B, 1, -1), seq], 1)
    seq = seq + vit._pos_embed_for(h, w)[:, 1 - n:]

    def centres(hh, ww):
        ys, xs = torch.meshgrid((torch.arange(hh) + 0.5) / hh, (torch.arange(ww) + 0.5) / ww,
                                indexing='ij')
        return torch.stack([xs.flatten(), ys.flatten()], -1)
    vit_points = centres(h, w)
    c_points = torch.cat([centres(*sh) for sh in shapes])

    def extract(ext, c, x):
        c = c + naive_deform_attn(ext.attn.attn, ln(c, ext.query_norm),
                                  ln(x, ext.feat_norm), c_points, [(h, w)])
        y = ln(c, ext.ffn_norm) @ ext.ffn.fc1.weight.T + ext.ffn.fc1.bias
        parts, start = [], 0
        for hh, ww in shapes:
            t = y[:, start:start + hh * ww].transpose(1, 2).reshape(B, -1, hh, ww)
            start += hh * ww
            t = F.conv2d(t, ext.ffn.dwconv.weight, ext.ffn.dwconv.bias, padding=1,
                         groups=t.shape[1])
            parts.append(t.flatten(2).transpose(1, 2))
        y = F.gelu(torch.cat(parts, 1)) @ ext.ffn.fc2.weight.T + ext.ffn.fc2.bias
        return c + y

    vit_maps = []
    for (start, end), blk in zip(model.interaction_indexes, model.interactions):
        inj = blk.injector
        x = seq[:, n:]
        x = x + inj.gamma * naive_deform_attn(inj.attn.attn, ln(x, inj.query_norm),
                                              ln(c, inj.feat_norm), vit_points, shapes)
        seq = torch.cat([seq[:, :n], x], 1)
        for i in range(start, end + 1):
            seq = vit.blocks[i](seq, (h, w))
        x = seq[:, n:]
        for ext in [blk.extractor, *blk.extra_extractors]:
            c = extract(ext, c, x)
        vit_maps.append(x.transpose(1, 2).reshape(B, -1, h, w))
    n2, n3 = shapes[0][0] * shapes[0][1], shapes[1][0] * shapes[1][1]
    c2, c3, c4 = (t.transpose(1, 2).reshape(B, -1, *sh)
                  for t, sh in zip((c[:, :n2], c[:, n2:n2 + n3], c[:, n2 + n3:]), shapes))
    c1 = F.conv_transpose2d(c2, model.up.weight, model.up.bias, stride=2) + c1
    if model.vit_feature == 'final':  # the last group's map at every level
        vit_maps = [vit_maps[-1]] * 4
    outs = []
    for k, (lvl, v, scale) in enumerate(zip((c1, c2, c3, c4), vit_maps, (4, 2, 1, 0.5))):
        if scale != 1:
            v = F.interpolate(v, scale_factor=scale, mode='bilinear', align_corners=False)
        y = ln((lvl + v).permute(0, 2, 3, 1), model.out_norms[k]).permute(0, 3, 1, 2)
        stride = 4 * 2**k
        outs.append(y[..., :math.ceil(H / stride), :math.ceil(W / stride)])
    return outs


@pytest.mark.parametrize('vit_feature,with_cls_token', [('group', True), ('final', False)])
def test_whole_forward_matches_a_naive_adapter(vit_feature, with_cls_token):
    """Both wirings: ours (each group's map at its level, the class token through the
    blocks) and InternVL's (the final map at every level, no class token)."""
    model = tiny(n_points=2, vit_feature=vit_feature, with_cls_token=with_cls_token)
    assert (model.vit.cls_token is None) == (not with_cls_token)
    randomize_adapter(model)
    model.eval()
    x = torch.randn(2, 3, 50, 70, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ours, naive = model(x), naive_adapter_forward(model, x)
    for a, b in zip(ours, naive):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_reference_points_are_pixel_centres():
    pts = reference_points([(2, 3)], 'cpu')
    assert pts.shape == (1, 6, 1, 2)
    torch.testing.assert_close(pts[0, :, 0][4], torch.tensor([1.5 / 3, 1.5 / 2]))


# ----------------------------------------------------------------------------- pretrained
@pytest.fixture(scope='module')
def hf_weights(tmp_path_factory):
    """A tiny 6B-family InternViT (RMSNorm, q/k norm) in the released HF layout, patch 14,
    4 x 4 position grid."""
    arch = tiny_arch('6b', embed_dims=32, num_heads=2, num_layers=4, mlp_hidden_dims=64)
    path = tmp_path_factory.mktemp('hf') / 'model.safetensors'
    save_file(hf_state_dict_for(arch, grid=4), str(path))
    return arch, str(path)


@pytest.mark.parametrize('freeze', [False, True])
def test_pretrained_weights_reproduce_the_plain_backbone(hf_weights, freeze):
    arch, path = hf_weights
    common = dict(arch, patch_size=16, img_size=64,
                  init_cfg=dict(type='Pretrained', checkpoint=path))
    adapter = InternViTAdapter(**common, interaction_indexes=GROUPS, deform_num_heads=2,
                               freeze_vit=freeze)
    adapter.init_weights()
    plain = InternViT(**common, out_indices=[0, 1, 2, 3], frozen=freeze)
    plain.init_weights()
    for (n, a), b in zip(adapter.vit.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(a, b), n  # both loaded (and 14 -> 16 resized) the same way
    adapter.eval()
    x = torch.randn(2, 3, 50, 70)  # padded to 64 x 96 by the adapter
    with torch.no_grad():
        got = adapter.forward_intermediates(x)
        expected = plain(F.pad(x, (0, 26, 0, 14)))
        assert all(float(i.gamma.abs().max()) == 0 for i in (
            blk.injector for blk in adapter.interactions))
        for a, b in zip(got['vit'], expected):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        # a non-zero injector changes them: the comparison above is not vacuous
        adapter.interactions[1].injector.gamma.fill_(1.0)
        moved = adapter.forward_intermediates(x)['vit']
    torch.testing.assert_close(moved[0], expected[0], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(moved[1], expected[1], atol=1e-3)


def test_pretrained_loading_is_strict_through_the_adapter(hf_weights):
    arch, path = hf_weights
    adapter = InternViTAdapter(**dict(arch, num_layers=5), patch_size=16, img_size=64,
                               deform_num_heads=2,
                               init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(CheckpointMismatchError, match='missing keys'):
        adapter.init_weights()


# ----------------------------------------------------------------------------- configs
def tiny_adapter_cfg(cfg):
    """Shrink an adapter config's model through the config system: width 32, 4 blocks,
    narrow heads; the structure (adapter, decoder, losses) is the config's."""
    m = cfg.model
    if m.data_preprocessor.get('size'):  # the configs pad every input to 512 x 512
        m.data_preprocessor.size = (32, 32)
    b = m.backbone
    b.update(embed_dims=32, num_heads=2, mlp_hidden_dims=64, num_layers=4,
             interaction_indexes=GROUPS, deform_num_heads=2, conv_inplane=8,
             init_cfg=None, img_size=64)
    if b.get('norm_cfg', {}).get('type') == 'SyncBN':  # a CPU step: BN (LN2d stays)
        b.norm_cfg = dict(type='BN', requires_grad=True)
    if b.get('window_size'):
        b.update(window_size=2, global_attn_indexes=[1, 3])
    if b.get('freeze_vit'):
        b.param_dtype = 'bfloat16'
    head = m.get('decode_head')
    if head is not None:  # a segmentor, with few classes: most of a CPU step is logits
        head.update(in_channels=[32] * 4, num_classes=NUM_CLASSES)
        if head.type == 'Mask2FormerHead':
            head.update(feat_channels=32, out_channels=32, num_queries=8)
            enc = head.pixel_decoder.encoder
            enc.num_layers = 1
            enc.layer_cfg.self_attn_cfg.update(embed_dims=32, num_heads=2)
            enc.layer_cfg.ffn_cfg.update(embed_dims=32, feedforward_channels=64)
            head.pixel_decoder.norm_cfg = dict(type='GN', num_groups=4)
            head.pixel_decoder.positional_encoding.num_feats = 16
            head.positional_encoding.num_feats = 16
            dec = head.transformer_decoder
            dec.num_layers = 3
            for key in ('self_attn_cfg', 'cross_attn_cfg'):
                dec.layer_cfg[key].update(embed_dims=32, num_heads=2)
            dec.layer_cfg.ffn_cfg.update(embed_dims=32, feedforward_channels=64)
            head.train_cfg.num_points = 64
            head.loss_cls.class_weight = [1.0] * NUM_CLASSES + [0.1]
        else:
            head.channels = 16
            head.norm_cfg = dict(type='BN', requires_grad=True)
    if m.get('auxiliary_head'):
        m.auxiliary_head.update(in_channels=32, channels=8, num_classes=NUM_CLASSES,
                                norm_cfg=dict(type='BN', requires_grad=True))
    if m.get('neck'):  # mmdet's FPN
        m.neck.update(in_channels=[32] * 4, out_channels=16)
        m.rpn_head.update(in_channels=16, feat_channels=16)
        rh = m.roi_head
        rh.bbox_roi_extractor.out_channels = 16
        rh.mask_roi_extractor.out_channels = 16
        rh.bbox_head.update(in_channels=16, fc_out_channels=32)
        rh.mask_head.update(in_channels=16, conv_out_channels=16,
                            norm_cfg=dict(type='BN', requires_grad=True))
    return cfg


def seg_batch(n=2, size=32, classes=NUM_CLASSES):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(n):
        s = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                        pad_shape=(size, size)))
        label = torch.randint(0, 3, (1, size, size), generator=g)
        label[:, :size // 2] = torch.randint(3, classes, (1, ), generator=g)
        s.gt_sem_seg = PixelData(data=label)
        samples.append(s)
    inputs = [torch.randint(0, 255, (3, size, size), generator=g, dtype=torch.uint8)
              for _ in range(n)]
    return dict(inputs=inputs, data_samples=samples)


def det_batch(n=2, size=64):
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    samples = []
    for i in range(n):
        s = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                        pad_shape=(size, size), scale_factor=(1., 1.),
                                        batch_input_shape=(size, size)))
        boxes = torch.tensor([[4., 6., 40., 50.], [20., 14., 60., 40.]])
        masks = torch.zeros(2, size, size, dtype=torch.uint8)
        for k, (x0, y0, x1, y1) in enumerate(boxes.int().tolist()):
            masks[k, y0:y1, x0:x1] = 1
        s.gt_instances = InstanceData(bboxes=boxes, labels=torch.tensor([0, i + 1]),
                                      masks=BitmapMasks(masks.numpy(), size, size))
        samples.append(s)
    inputs = [torch.randint(0, 255, (3, size, size), dtype=torch.uint8) for _ in range(n)]
    return dict(inputs=inputs, data_samples=samples)


def plain_optim_wrapper(cfg):
    cfg = cfg.copy()
    if cfg.get('type') == 'AmpOptimWrapper':  # needs an accelerator; same groups
        cfg['type'] = 'OptimWrapper'
        cfg.pop('dtype', None)
    return cfg


@pytest.mark.parametrize('path', SEG_CONFIGS + DET_CONFIGS, ids=osp.basename)
def test_every_adapter_config_builds_and_trains_one_step(path):
    cfg = tiny_adapter_cfg(Config.fromfile(path))
    scope = cfg.default_scope
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert isinstance(model.backbone, InternViTAdapter)
    model.train()
    wrapper = assert_optimizer_holds_trainable_params(model, plain_optim_wrapper(
        cfg.optim_wrapper))
    data = det_batch() if scope == 'mmdet' else seg_batch()
    before = {n: p.detach().clone() for n, p in model.named_parameters()
              if p.requires_grad}
    losses = model.train_step(data, wrapper)
    assert all(torch.isfinite(v).all() for v in losses.values())
    changed = {n for n, p in model.named_parameters()
               if n in before and not torch.equal(p, before[n])}
    assert 'backbone.spm.fc4.weight' in changed and 'backbone.up.weight' in changed
    frozen = cfg.model.backbone.get('freeze_vit', False)
    assert frozen == (not any(n.startswith('backbone.vit.') for n in before))


def test_adapter_config_set_and_published_recipe():
    names = {osp.basename(p) for p in SEG_CONFIGS + DET_CONFIGS}
    for name in ('upernet_internvit-6b-224px-adapter-frozen_8xb2-80k_ade20k-512x512.py',
                 'upernet_internvit-6b-224px-adapter-group-frozen_8xb2-80k_ade20k-512x512.py',
                 'upernet_internvit-6b-448px-v2-5-adapter-frozen_8xb2-80k_ade20k-512x512.py',
                 'upernet_internvit-300m-448px-adapter-frozen_8xb2-80k_ade20k-512x512.py',
                 'mask2former_internvit-6b-224px-adapter-frozen_8xb2-80k_ade20k-512x512.py',
                 'mask2former_internvit-300m-448px-adapter_8xb2-80k_ade20k-512x512.py'):
        assert name in names, name
    cfg = Config.fromfile(str(ROOT / 'configs/internvit_adapter/upernet_internvit-6b-224px'
                                     '-adapter-frozen_8xb2-80k_ade20k-512x512.py'))
    b = cfg.model.backbone
    assert (b.type, b.arch, b.patch_size, b.freeze_vit) == ('InternViTAdapter',
                                                           'internvit-6b-224px', 16, True)
    assert (b.conv_inplane, b.n_points, b.init_values) == (64, 4, 0.0)
    assert (b.cffn_ratio, b.deform_ratio, b.num_extra_extractors) == (0.25, 0.25, 2)
    assert cfg.model.decode_head.channels == 1536
    # derived from the ViT: the published groups, 25 deformable heads, 3200-wide inputs
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    with torch.device('meta'):
        built = MODELS.build(cfg.model)
    assert built.backbone.interaction_indexes == [(0, 11), (12, 23), (24, 35), (36, 47)]
    assert built.backbone.interactions[0].injector.attn.attn.num_heads == 25
    assert built.decode_head.in_channels == [3200] * 4
    v25 = Config.fromfile(str(ROOT / 'configs/internvit_adapter/upernet_internvit-6b-448px'
                                     '-v2-5-adapter-frozen_8xb2-80k_ade20k-512x512.py'))
    with torch.device('meta'):
        built = MODELS.build(v25.model)
    assert built.backbone.interaction_indexes == [(0, 11), (12, 22), (23, 33), (34, 44)]
    assert v25.model.backbone.init_cfg.checkpoint == 'pretrained/InternViT-6B-448px-V2-5'
    test_cfg = dict(cfg.model.test_cfg)
    assert test_cfg.pop('slide_batch_size') > 1  # our batched slide inference
    assert test_cfg == dict(mode='slide', crop_size=(512, 512), stride=(341, 341))
    crop = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomCrop']
    assert crop[0].crop_size == (512, 512)
    assert cfg.optim_wrapper.optimizer.lr == 4e-5
    assert cfg.optim_wrapper.constructor == 'InternViTLayerDecayOptimizerConstructor'
    assert cfg.optim_wrapper.paramwise_cfg == dict(layer_decay_rate=0.95)
    warmup, poly = cfg.param_scheduler  # mmcv's: warm-up to 1500, poly to 0 at 80k
    assert (warmup.end, poly.end, cfg.train_cfg.max_iters) == (1501, 80001, 80000)
    assert cfg.train_dataloader.batch_size * 8 == 16


@pytest.mark.parametrize('stem,trainable,total,vit', [
    # the counts of the README's adapter table. The published leaf: the auxiliary head
    # at 1536 channels and no class token (3200 parameters fewer in the ViT)
    ('upernet_internvit-6b-224px-adapter-frozen', 500_747_524, 6_406_571_524,
     5_905_824_000),
    ('upernet_internvit-6b-224px-adapter-group-frozen', 463_688_964, 6_369_516_164,
     5_905_827_200),
    ('upernet_internvit-6b-224px-adapter', 6_369_516_164, 6_369_516_164, 5_905_827_200),
])
def test_meta_device_counts_of_the_6b_adapter(stem, trainable, total, vit):
    model_info = load_tool('model_info')
    path = str(ROOT / f'configs/internvit_adapter/{stem}_8xb2-80k_ade20k-512x512.py')
    model, backbone, _ = model_info.build(model_info.parse_args([path]))
    assert model_info.count_params(model) == (trainable, total)
    # 48 blocks of width 3200 + the patch-16 kernel and the 32 x 32 position grid
    assert sum(p.numel() for p in backbone.vit.parameters()) == vit
    adapter = sum(p.numel() for p in backbone.parameters()) - vit
    assert adapter == 143_796_184  # LayerNorms or BatchNorms in the stem: as many


def test_benchmark_adapter_comparison(monkeypatch, capsys):
    """tools/analysis_tools/benchmark.py --adapter at a tiny size, its workers run in this
    process."""
    benchmark = load_tool('benchmark')
    monkeypatch.setattr(benchmark, 'run_worker', lambda name, args, **spec:
                        benchmark.WORKERS[name](args, spec))
    res = benchmark.main(['--adapter', '--embed-dims', '32', '--depth', '4', '--heads',
                          '2', '--mlp', '64', '--img-size', '32', '--batch', '2',
                          '--repeats', '1', '--num-classes', '5'])
    for mode in ('full', 'frozen'):
        assert res[f'adapter_{mode}_time_ratio'] > 0
        # in one process the peak-memory growth of a tiny step may be 0 (nan ratio):
        # the tool measures memory in fresh processes
        assert f'adapter_{mode}_memory_ratio' in res
    assert set(res['times']) == set(benchmark.ADAPTER_KINDS)
    assert 'adapter, frozen ViT, with_cp' in capsys.readouterr().out


def test_demo_adapter_config_trains_end_to_end(demo_root, tmp_path):
    """The adapter demo config, inherited by a user config, loads a patch-14 backbone
    (as tools/misc/run_demo.sh adapter extracts it from the segmentation demo) into its
    frozen ViT, trains 2 iterations and validates through tools/train.py."""
    assert len(DEMO_CONFIGS) == 1, DEMO_CONFIGS
    vit = InternViT(arch='internvit-300m-448px', embed_dims=96, num_layers=6, num_heads=3,
                    mlp_hidden_dims=384, img_size=196)
    vit.init_weights()
    weights = tmp_path / 'backbone.safetensors'
    save_file(vit.state_dict(), str(weights))
    _, ckpt, log = train_user_config(tmp_path, DEMO_CONFIGS[0], (
        f"data_root = '{demo_root}'\n"
        f"model = dict(backbone=dict(init_cfg=dict(checkpoint='{weights}')))\n"
        "train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,\n"
        "                        dataset=dict(data_root=data_root))\n"
        "test_pipeline = [dict(type='LoadImageFromFile'),\n"
        "                 dict(type='Resize', scale=(512, 128), keep_ratio=True),\n"
        "                 dict(type='LoadCheckedAnnotations', num_classes=150,\n"
        "                      reduce_zero_label=True), dict(type='PackSegInputs')]\n"
        "val_dataloader = dict(num_workers=0, persistent_workers=False,\n"
        "                      dataset=dict(data_root=data_root, indices=1,\n"
        "                                   pipeline=test_pipeline))\n"
        "test_dataloader = val_dataloader\n"))
    assert 'mIoU before training' in log and 'Iter(train) [2/2]' in log
    assert 'resized patch-embedding kernel from (14, 14) to (16, 16)' in log
    state = torch.load(ckpt, weights_only=False)['state_dict']
    assert any(k.startswith('backbone.interactions.3.extra_extractors.1.') for k in state)
    # the frozen ViT did not move
    torch.testing.assert_close(state['backbone.vit.blocks.2.mlp.fc1.weight'],
                               vit.blocks[2].mlp.fc1.weight)
