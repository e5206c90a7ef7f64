import math

import pytest
import torch
from safetensors.torch import save_file

from internvit_dense.models import internvit as internvit_mod
from mmseg_internvit import InternViT, resolve_preset

from internvit_reference import hf_state_dict_for, naive_forward, tiny_arch


def build(variant='6b', **kw):
    arch = tiny_arch(variant)
    arch.update(kw)
    return InternViT(**arch)


def loaded_pair(tmp_path, variant='6b', **kw):
    """A tiny backbone loaded from an HF-layout file, and the raw weights."""
    arch = tiny_arch(variant)
    arch.update(kw)
    img = arch.get('img_size', 56)
    grid = math.ceil(img / arch.get('patch_size', 14))
    sd = hf_state_dict_for(arch, grid=grid, seed=1)
    path = tmp_path / f'{variant}.safetensors'
    save_file(sd, str(path))
    model = InternViT(img_size=img, init_cfg=dict(type='Pretrained', checkpoint=str(path)),
                      **{k: v for k, v in arch.items() if k != 'img_size'})
    model.init_weights()
    return model.eval(), sd


# ----------------------------------------------------------------------------- presets
@pytest.mark.parametrize('arch,layers,lo,hi', [
    ('internvit-6b-224px', 48, 5.85e9, 5.95e9),
    ('InternViT-6B-448px-V1-5', 45, 5.45e9, 5.60e9),
    ('internvit-300m-448px', 24, 0.29e9, 0.31e9),
])
def test_presets_build_on_meta_with_released_sizes(arch, layers, lo, hi):
    with torch.device('meta'):
        model = InternViT(arch=arch)
    n = sum(p.numel() for p in model.parameters())
    assert model.num_layers == layers
    assert lo < n < hi, f'{arch}: {n / 1e9:.3f}B parameters'


def test_preset_architecture_facts():
    big, small = resolve_preset('6b-224px'), resolve_preset('internvit-300m-448px')
    assert (big['embed_dims'], big['num_heads'], big['mlp_hidden_dims']) == (3200, 25, 12800)
    assert big['qk_normalization'] and not big['qkv_bias'] and big['norm_type'] == 'rms'
    assert small['qkv_bias'] and not small['qk_normalization'] and small['norm_type'] == 'ln'
    assert resolve_preset('internvit-6b-448px-v2-5')['num_layers'] == 45


def test_overrides_change_every_dimension():
    m = build(embed_dims=32, num_heads=2, num_layers=2, mlp_hidden_dims=40, patch_size=8,
              img_size=32)
    assert m.patch_embed.weight.shape == (32, 3, 8, 8)
    assert len(m.blocks) == 2
    assert m.blocks[0].mlp.fc1.weight.shape == (40, 32)
    assert m.pos_embed.shape == (1, 1 + 16, 32)


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize('size', [(56, 56), (28, 84), (60, 45), (15, 29), (14, 14)])
def test_output_shapes_any_input_size(size):
    m = build(out_indices=[0, -1], img_size=56).eval()
    outs = m(torch.randn(2, 3, *size))
    expected = (2, 48, math.ceil(size[0] / 14), math.ceil(size[1] / 14))
    assert len(outs) == 2
    for o in outs:
        assert o.shape == expected
        assert torch.isfinite(o).all()


def test_negative_out_indices_and_early_exit():
    m = build(num_layers=4, out_indices=(1, -1))
    assert m.out_indices == [1, 3]
    m2 = build(num_layers=4, out_indices=1)
    calls = []
    for i, blk in enumerate(m2.blocks):
        blk.register_forward_hook(lambda *_, i=i: calls.append(i))
    m2(torch.randn(1, 3, 28, 28))
    assert calls == [0, 1], 'blocks after the last requested index must not run'


# ----------------------------------------------------------------------------- numerics
@pytest.mark.parametrize('variant', ['6b', '300m'])
@pytest.mark.parametrize('size', [(56, 56), (50, 70)])
def test_matches_naive_reference_on_hf_weights(tmp_path, variant, size):
    model, sd = loaded_pair(tmp_path, variant, out_indices=[0, 2])
    x = torch.randn(2, 3, *size)
    ours = model(x)
    ref = naive_forward(sd, x, num_heads=4, out_indices=[0, 2])
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('impl', ['reference', 'flash'])
def test_attention_paths_agree(tmp_path, monkeypatch, impl):
    if impl == 'flash':
        # flash-attn runs only on CUDA; here a stand-in with flash-attn's calling
        # convention ((B, N, heads, head_dim) in and out) checks our layout handling.
        def fake_flash(q, k, v):
            out = internvit_mod.reference_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
            return out.transpose(1, 2)
        monkeypatch.setattr(internvit_mod, 'flash_attn_func', fake_flash)
        monkeypatch.setattr(internvit_mod, 'use_flash_attn', lambda x: True)
    sdpa, _ = loaded_pair(tmp_path, out_indices=[0, 2])
    other, _ = loaded_pair(tmp_path, out_indices=[0, 2], attn_impl=impl)
    x = torch.randn(2, 3, 42, 56)
    for a, b in zip(sdpa(x), other(x)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_flash_without_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(internvit_mod, 'flash_attn_func', None)
    with pytest.raises(ImportError, match='flash-attn'):
        build(attn_impl='flash')


def test_flash_falls_back_to_sdpa_for_cpu_inputs(monkeypatch):
    def must_not_run(*args):
        raise AssertionError('flash-attn called on a CPU float32 input')
    monkeypatch.setattr(internvit_mod, 'flash_attn_func', must_not_run)
    assert not internvit_mod.use_flash_attn(torch.zeros(1, dtype=torch.bfloat16))
    m = build(attn_impl='flash')
    assert m(torch.randn(1, 3, 28, 28))[0].shape == (1, 48, 2, 2)


def test_gradient_checkpointing_same_outputs_and_grads():
    torch.manual_seed(0)
    plain = build(out_indices=[1, 2]).train()
    ckpt = build(out_indices=[1, 2], with_cp=True).train()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 42, 42)
    outs = [m(x) for m in (plain, ckpt)]
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b)
    for m, o in zip((plain, ckpt), outs):
        sum((t**2).sum() for t in o).backward()
    for (name, p1), p2 in zip(plain.named_parameters(), ckpt.parameters()):
        assert p1.grad is not None, name
        torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-5, atol=1e-6, msg=name)


def test_checkpointing_actually_recomputes():
    m = build(with_cp=True).train()
    calls = []
    m.blocks[0].mlp.register_forward_hook(lambda *_: calls.append(1))
    m(torch.randn(1, 3, 28, 28))[0].sum().backward()
    assert len(calls) == 2, 'block 0 should run again in the backward pass'


def test_drop_path_is_stochastic_in_train_only():
    m = build(drop_path_rate=0.5)
    x = torch.randn(4, 3, 28, 28)
    m.train()
    assert not torch.equal(m(x)[0], m(x)[0])
    m.eval()
    torch.testing.assert_close(m(x)[0], m(x)[0])
    rates = [b.drop_path.drop_prob for b in m.blocks[1:]]
    assert rates == pytest.approx([0.25, 0.5])


# ----------------------------------------------------------------------------- frozen
def test_frozen_backbone(tmp_path):
    m, _ = loaded_pair(tmp_path, frozen=True)
    assert not any(p.requires_grad for p in m.parameters())
    m.train()
    assert not m.training and not any(mod.training for mod in m.modules())
    out = m(torch.randn(1, 3, 28, 28, requires_grad=True))[0]
    assert out.grad_fn is None and not out.requires_grad


def test_frozen_bf16_weights_fp32_outputs(tmp_path):
    fp32, _ = loaded_pair(tmp_path)
    bf16, _ = loaded_pair(tmp_path, frozen=True, param_dtype='bfloat16')
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}
    x = torch.randn(2, 3, 56, 56)
    a, b = fp32(x)[0], bf16(x)[0]
    assert b.dtype == torch.float32
    rel = (a - b).norm() / a.norm()
    assert rel < 3e-2, f'bf16 relative error {rel:.4f}'
    half = sum(p.numel() * p.element_size() for p in bf16.parameters())
    full = sum(p.numel() * p.element_size() for p in fp32.parameters())
    assert half * 2 == full


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize('kwargs,exc,match', [
    (dict(arch='internvit-7b'), ValueError, 'unknown InternViT arch'),
    (dict(arch=3), TypeError, 'arch must be a preset name'),
    (dict(embed_dims=50), ValueError, 'divisible by num_heads'),
    (dict(embed_dims=48.0), TypeError, 'embed_dims must be an int'),
    (dict(num_layers=0), ValueError, 'num_layers must be positive'),
    (dict(out_indices=3), ValueError, 'out_indices entry 3 is out of range'),
    (dict(out_indices=-4), ValueError, 'out of range'),
    (dict(out_indices=[0, -3]), ValueError, 'name a block twice'),
    (dict(out_indices=[2, 0]), ValueError, 'increasing order'),
    (dict(out_indices='last'), TypeError, 'out_indices must be'),
    (dict(out_indices=[]), ValueError, 'must not be empty'),
    (dict(img_size=(56, 56, 3)), TypeError, 'img_size must be'),
    (dict(img_size=0), ValueError, 'img_size must be positive'),
    (dict(drop_path_rate=1.0), ValueError, 'drop_path_rate'),
    (dict(attn_impl='xformers'), ValueError, 'attn_impl must be one of'),
    (dict(norm_type='batch'), ValueError, 'norm_type'),
    (dict(qkv_bias='yes'), TypeError, 'qkv_bias must be a bool'),
    (dict(param_dtype='bfloat16'), ValueError, 'only supported with frozen=True'),
    (dict(param_dtype='int8', frozen=True), ValueError, 'param_dtype must be one of'),
    (dict(depth=12), TypeError, "unexpected arguments \\['depth'\\]"),
    (dict(init_cfg='ckpt.pth'), TypeError, 'init_cfg must be a dict'),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        build(**kwargs)


def test_bad_input_rank():
    with pytest.raises(ValueError, match=r'\(B, C, H, W\)'):
        build()(torch.randn(3, 28, 28))


# ----------------------------------------------------------------------------- windows
@pytest.mark.parametrize('impl', ['sdpa', 'reference'])
@pytest.mark.parametrize('window', [4, 6])  # grid 4x4: exact fit, and padded + masked
def test_window_covering_the_image_equals_global_attention(tmp_path, impl, window):
    glob_model, _ = loaded_pair(tmp_path, out_indices=[0, 2], attn_impl=impl)
    win_model, _ = loaded_pair(tmp_path, out_indices=[0, 2], attn_impl=impl,
                               window_size=window)
    assert all(b.window_size == window for b in win_model.blocks)
    x = torch.randn(2, 3, 56, 56)
    for a, b in zip(glob_model(x), win_model(x)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_windows_keep_information_local():
    """One windowed block on a 4x4 grid with 2x2 windows: changing the pixels of the
    top-left window leaves the bottom-right window's tokens untouched."""
    m = build(num_layers=1, window_size=2, img_size=56).eval()
    x = torch.randn(1, 3, 56, 56)
    y = x.clone()
    y[..., :28, :28] += 1.0
    a, b = m(x)[0], m(y)[0]
    torch.testing.assert_close(a[..., 2:, 2:], b[..., 2:, 2:])
    assert not torch.allclose(a[..., :2, :2], b[..., :2, :2])
    g = build(num_layers=1, img_size=56).eval()
    assert not torch.allclose(g(x)[0][..., 2:, 2:], g(y)[0][..., 2:, 2:])


@pytest.mark.parametrize('size', [(56, 56), (70, 98), (30, 44)])
def test_windowed_padding_shapes_and_gradients(size):
    m = build(window_size=3, global_attn_indexes=[-1], out_indices=[0, 2]).train()
    assert [b.window_size for b in m.blocks] == [3, 3, 0]
    outs = m(torch.randn(2, 3, *size))
    sum(o.sum() for o in outs).backward()
    assert outs[0].shape == (2, 48, math.ceil(size[0] / 14), math.ceil(size[1] / 14))
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


@pytest.mark.parametrize('kwargs,exc,match', [
    (dict(window_size=-1), ValueError, 'window_size'),
    (dict(window_size=2.5), ValueError, 'window_size'),
    (dict(window_size=2, global_attn_indexes=[5]), ValueError,
     'global_attn_indexes entry 5 is out of range'),
    (dict(window_size=2, global_attn_indexes='all'), TypeError, 'global_attn_indexes'),
])
def test_bad_window_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        build(**kwargs)


def test_cpu_no_grad_path_fuses_bias_and_gelu_and_matches(monkeypatch):
    """Without autograd on the CPU the linears run as oneDNN GEMMs with bias (and GELU)
    applied inside; the result must match the autograd path."""
    from internvit_dense.models import internvit as mod
    if mod._MKLDNN_LINEAR is None or not torch.backends.mkldnn.is_available():
        pytest.skip('this torch build has no oneDNN linear')
    calls = []
    fused = mod._MKLDNN_LINEAR
    monkeypatch.setattr(mod, '_MKLDNN_LINEAR',
                        lambda *a: calls.append(a[3]) or fused(*a))
    torch.manual_seed(0)
    model = InternViT(arch='internvit-300m-448px', embed_dims=32, num_layers=2,
                      num_heads=2, mlp_hidden_dims=64, img_size=56, out_indices=[1],
                      init_cfg=None).eval()
    x = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        out = model(x)[0]
    assert calls.count('gelu') == 2 and calls.count('none') == 6  # per block: fc1 / qkv, proj, fc2
    calls.clear()
    ref = model(x.requires_grad_())[0]
    assert not calls  # autograd keeps the plain path
    torch.testing.assert_close(out, ref.detach(), rtol=1e-5, atol=1e-5)


def test_pos_embed_crop_mode_keeps_absolute_positions():
    """'crop' (detection): a patch's position embedding does not depend on how far the
    batch is padded; 'resize' (segmentation) stretches the grid to the input."""
    torch.manual_seed(0)
    kw = dict(arch='internvit-300m-448px', embed_dims=32, num_layers=1, num_heads=2,
              mlp_hidden_dims=64, patch_size=16, img_size=160, init_cfg=None)
    crop = InternViT(pos_embed_mode='crop', **kw)
    torch.nn.init.normal_(crop.pos_embed)
    grid = crop.pos_embed[:, 1:].unflatten(1, (10, 10))
    for h, w in ((10, 10), (6, 10), (10, 4), (3, 7)):
        pos = crop._pos_embed_for(h, w)
        assert torch.equal(pos[:, 0], crop.pos_embed[:, 0])
        assert torch.equal(pos[:, 1:].unflatten(1, (h, w)), grid[:, :h, :w])
    # larger than img_size in either direction: an error naming img_size, never a
    # stretched grid (one rule for every input of a run)
    for h, w in ((11, 4), (3, 11)):
        with pytest.raises(ValueError, match=r'img_size=\(160, 160\)'):
            crop._pos_embed_for(h, w)
    resize = InternViT(pos_embed_mode='resize', **kw)
    resize.load_state_dict(crop.state_dict())
    assert not torch.equal(resize._pos_embed_for(6, 10)[:, 1:11], grid[:, 0, :10])
    with pytest.raises(ValueError, match='pos_embed_mode'):
        InternViT(pos_embed_mode='stretch', **kw)
