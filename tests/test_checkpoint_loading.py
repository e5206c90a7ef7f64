"""Loading weights written in the exact layouts of the released checkpoints."""
import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from internvit_dense.models import checkpoint as ckpt_mod
from internvit_dense.models.checkpoint import resize_patch_kernel
from mmseg_internvit import CheckpointMismatchError, InternViT

from internvit_reference import hf_state_dict_for, naive_forward, tiny_arch, to_old_layout

ARCH = tiny_arch('6b')
GRID = 4  # 56 px / patch 14


def make_model(checkpoint, **kw):
    cfg = dict(ARCH, img_size=56, out_indices=[0, 2])
    cfg.update(kw)
    init = dict(type='Pretrained', checkpoint=str(checkpoint))
    init.update(cfg.pop('init_extra', {}))
    return InternViT(init_cfg=init, **cfg)


def load(checkpoint, **kw):
    m = make_model(checkpoint, **kw)
    m.init_weights()
    return m.eval()


@pytest.fixture
def weights():
    return hf_state_dict_for(ARCH, grid=GRID, seed=3)


@pytest.fixture
def logs(monkeypatch):
    seen = []
    monkeypatch.setattr(ckpt_mod, 'print_log', lambda msg, **kw: seen.append(msg))
    return seen


def assert_matches_reference(model, sd):
    x = torch.randn(1, 3, 56, 56)
    for a, b in zip(model(x), naive_forward(sd, x, num_heads=4, out_indices=[0, 2])):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def write_sharded(sd, folder, fmt):
    """Split into two shards with an index json, as transformers' save does."""
    keys = sorted(sd)
    shards = {f'model-0000{i + 1}-of-00002.{fmt}': keys[i::2] for i in range(2)}
    weight_map = {}
    for fname, names in shards.items():
        part = {k: sd[k].clone() for k in names}
        if fmt == 'safetensors':
            save_file(part, str(folder / fname))
        else:
            torch.save(part, folder / fname)
        weight_map.update(dict.fromkeys(names, fname))
    index = 'model.safetensors.index.json' if fmt == 'safetensors' else \
        'pytorch_model.bin.index.json'
    (folder / index).write_text(json.dumps({'metadata': {}, 'weight_map': weight_map}))
    return folder / index


# ----------------------------------------------------------------------------- layouts
def test_hf_safetensors_file(tmp_path, weights, logs):
    save_file(weights, str(tmp_path / 'model.safetensors'))
    assert_matches_reference(load(tmp_path / 'model.safetensors'), weights)
    assert any('loaded' in m for m in logs)


def test_hf_directory_bin(tmp_path, weights):
    torch.save(weights, tmp_path / 'pytorch_model.bin')
    assert_matches_reference(load(tmp_path), weights)


@pytest.mark.parametrize('fmt', ['safetensors', 'bin'])
def test_hf_sharded_directory_and_index_file(tmp_path, weights, fmt):
    index = write_sharded(weights, tmp_path, fmt)
    assert_matches_reference(load(tmp_path), weights)
    assert_matches_reference(load(index), weights)


def test_internvl_chat_prefix_and_non_vision_keys(tmp_path, weights, logs):
    sd = {'vision_model.' + k: v for k, v in weights.items()}
    sd['mlp1.0.weight'] = torch.randn(8, 8)
    sd['language_model.model.layers.0.self_attn.q_proj.weight'] = torch.randn(8, 8)
    sd['language_model.model.layers.1.self_attn.q_proj.weight'] = torch.randn(8, 8)
    write_sharded(sd, tmp_path, 'safetensors')
    with pytest.raises(CheckpointMismatchError) as err:
        load(tmp_path)
    msg = str(err.value)
    assert 'keys outside the vision encoder (3)' in msg
    assert 'language_model.model.layers.{0-1}.self_attn.q_proj.weight' in msg
    assert 'mlp1.{0}.weight' in msg and 'ignore_extra_keys=True' in msg
    m = load(tmp_path, init_extra=dict(ignore_extra_keys=True))
    assert_matches_reference(m, weights)
    assert any('ignored 3 keys' in m for m in logs)


def test_sharded_chat_checkpoint_opens_only_vision_shards(tmp_path, weights, monkeypatch):
    sd = {'vision_model.' + k: v for k, v in weights.items()}
    save_file(sd, str(tmp_path / 'vision.safetensors'))
    save_file({'language_model.w': torch.zeros(2)}, str(tmp_path / 'llm.safetensors'))
    weight_map = dict.fromkeys(sd, 'vision.safetensors')
    weight_map['language_model.w'] = 'llm.safetensors'
    (tmp_path / 'model.safetensors.index.json').write_text(
        json.dumps({'weight_map': weight_map}))
    opened = []
    orig = ckpt_mod.CheckpointReader._open
    monkeypatch.setattr(ckpt_mod.CheckpointReader, '_open',
                        lambda self, f: opened.append(f) or orig(self, f))
    load(tmp_path, init_extra=dict(ignore_extra_keys=True))
    assert {f.split('/')[-1] for f in opened} == {'vision.safetensors'}


def test_old_module_wrapped_pth(tmp_path, weights):
    torch.save(to_old_layout(weights), tmp_path / 'old.pth')
    assert_matches_reference(load(tmp_path / 'old.pth'), weights)


def test_frozen_bf16_model_loads_fp32_weights(tmp_path, weights):
    save_file(weights, str(tmp_path / 'model.safetensors'))
    m = load(tmp_path / 'model.safetensors', frozen=True, param_dtype='bfloat16')
    torch.testing.assert_close(
        m.blocks[1].attn.qkv.weight,
        weights['encoder.layers.1.attn.qkv.weight'].to(torch.bfloat16))


# ----------------------------------------------------------------------------- resizing
def test_position_grid_resized_bicubically_and_logged(tmp_path, weights, logs):
    save_file(weights, str(tmp_path / 'model.safetensors'))
    m = load(tmp_path / 'model.safetensors', img_size=(84, 112))  # grid 6 x 8
    pos = weights['embeddings.position_embedding']
    grid = pos[:, 1:].reshape(1, GRID, GRID, -1).permute(0, 3, 1, 2)
    expect = F.interpolate(grid, size=(6, 8), mode='bicubic', align_corners=False)
    torch.testing.assert_close(m.pos_embed[:, 0], pos[:, 0])
    torch.testing.assert_close(m.pos_embed[:, 1:],
                               expect.permute(0, 2, 3, 1).reshape(1, 48, -1))
    assert any('(4, 4) to (6, 8)' in msg for msg in logs)
    # and the resized model still equals the reference at its own resolution
    x = torch.randn(1, 3, 84, 112)
    ref = naive_forward(weights, x, num_heads=4, out_indices=[2])[0]
    torch.testing.assert_close(m(x)[1], ref, rtol=1e-4, atol=1e-4)


def test_patch14_weights_into_patch16_model(tmp_path, weights, logs):
    save_file(weights, str(tmp_path / 'model.safetensors'))
    m16 = load(tmp_path / 'model.safetensors', patch_size=16, img_size=64)
    assert m16.patch_embed.weight.shape[-2:] == (16, 16)
    assert m16.pos_embed.shape[1] == 1 + 16
    assert any('(14, 14) to (16, 16)' in msg for msg in logs)
    # Pseudo-inverse resize: a 16x16 patch that is the bilinear upsampling of a 14x14
    # patch gets the same embedding from the new kernel as the original from the old.
    x14 = torch.randn(2, 3, 14, 14, dtype=torch.float64)
    x16 = F.interpolate(x14, size=(16, 16), mode='bilinear', align_corners=False)
    w14 = weights['embeddings.patch_embedding.weight'].double()
    e14 = F.conv2d(x14, w14, stride=14)
    e16 = F.conv2d(x16, m16.patch_embed.weight.double(), stride=16)
    torch.testing.assert_close(e16, e14, rtol=1e-4, atol=1e-5)


def test_resize_patch_kernel_identity_and_downsize():
    w = torch.randn(4, 3, 14, 14)
    assert resize_patch_kernel(w, (14, 14)) is w
    assert resize_patch_kernel(w, (8, 8)).shape == (4, 3, 8, 8)


# ----------------------------------------------------------------------------- errors
def test_missing_key_is_listed(tmp_path, weights):
    del weights['encoder.layers.1.attn.q_norm.weight']
    del weights['embeddings.class_embedding']
    save_file(weights, str(tmp_path / 'model.safetensors'))
    with pytest.raises(CheckpointMismatchError, match='missing keys \\(2\\)') as err:
        load(tmp_path / 'model.safetensors')
    assert 'blocks.{1}.attn.q_norm.weight' in str(err.value)
    assert 'cls_token' in str(err.value)


def test_deeper_checkpoint_is_an_error_even_with_ignore_extra_keys(tmp_path):
    deeper = hf_state_dict_for(dict(ARCH, num_layers=5), grid=GRID)
    save_file(deeper, str(tmp_path / 'model.safetensors'))
    for extra in ({}, dict(ignore_extra_keys=True)):
        with pytest.raises(CheckpointMismatchError) as err:
            load(tmp_path / 'model.safetensors', init_extra=extra)
        assert 'unexpected keys (26)' in str(err.value)
        assert 'encoder.layers.{3-4}.attn.qkv.weight' in str(err.value)


def test_shape_mismatch_is_listed(tmp_path):
    wider = hf_state_dict_for(dict(ARCH, embed_dims=64), grid=GRID)
    save_file(wider, str(tmp_path / 'model.safetensors'))
    with pytest.raises(CheckpointMismatchError, match='shape mismatches') as err:
        load(tmp_path / 'model.safetensors')
    assert 'checkpoint (192, 64) vs model (144, 48)' in str(err.value)


def test_wrong_family_is_listed(tmp_path):
    """300M-layout weights (LayerNorm, qkv bias) into a 6B-layout model."""
    other = hf_state_dict_for(tiny_arch('300m'), grid=GRID)
    save_file(other, str(tmp_path / 'model.safetensors'))
    with pytest.raises(CheckpointMismatchError) as err:
        load(tmp_path / 'model.safetensors')
    msg = str(err.value)
    assert 'missing keys' in msg and 'blocks.{0-2}.attn.q_norm.weight' in msg
    assert 'unexpected keys' in msg and 'encoder.layers.{0-2}.attn.qkv.bias' in msg


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / 'nope' / 'model.safetensors'
    with pytest.raises(FileNotFoundError, match=str(path)):
        load(path)


def test_directory_without_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match='no checkpoint in directory'):
        load(tmp_path)


def test_missing_shard_names_it(tmp_path, weights):
    write_sharded(weights, tmp_path, 'safetensors')
    (tmp_path / 'model-00002-of-00002.safetensors').unlink()
    with pytest.raises(FileNotFoundError, match='model-00002-of-00002.safetensors'):
        load(tmp_path)


@pytest.mark.parametrize('name', ['model.safetensors', 'model.pth'])
def test_corrupt_file_names_it(tmp_path, name):
    (tmp_path / name).write_bytes(b'\x00garbage' * 10)
    with pytest.raises(ValueError, match=name):
        load(tmp_path / name)


def test_no_vision_weights(tmp_path):
    save_file({'text.weight': torch.zeros(2)}, str(tmp_path / 'model.safetensors'))
    with pytest.raises(CheckpointMismatchError, match='no InternViT weights'):
        load(tmp_path / 'model.safetensors')


def test_weights_load_once_through_a_parent_module(tmp_path, weights, monkeypatch):
    """mmengine parents call children's init_weights unless they report is_init."""
    from mmengine.model import BaseModule
    save_file(weights, str(tmp_path / 'model.safetensors'))
    calls = []
    orig = ckpt_mod.CheckpointReader.__init__
    monkeypatch.setattr(ckpt_mod.CheckpointReader, '__init__',
                        lambda self, p: calls.append(p) or orig(self, p))

    class Parent(BaseModule):
        def __init__(self):
            super().__init__()
            self.backbone = make_model(tmp_path / 'model.safetensors')
    parent = Parent()
    parent.init_weights()
    parent.init_weights()
    assert len(calls) == 1


# ----------------------------------------------------------------------------- memory
def test_safetensors_tensors_are_read_straight_into_the_parameters(tmp_path, weights,
                                                                    monkeypatch):
    """Tensors stored with the model's dtype and shape are read from the file into the
    parameter (no intermediate copy); a cast or a resized grid goes through copy_."""
    bf16 = {k: v.to(torch.bfloat16) for k, v in weights.items()}
    write_sharded(bf16, tmp_path, 'safetensors')
    direct = []
    orig = ckpt_mod.CheckpointReader.read_into
    monkeypatch.setattr(ckpt_mod.CheckpointReader, 'read_into',
                        lambda self, k, t: orig(self, k, t) and not direct.append(k))
    m = load(tmp_path, frozen=True, param_dtype='bfloat16', img_size=84)  # grid 4 -> 6
    assert 'embeddings.position_embedding' not in direct  # resized: copied
    assert len(direct) == len(bf16) - 1
    for key, name in (('encoder.layers.1.attn.qkv.weight', 'blocks.1.attn.qkv.weight'),
                      ('embeddings.class_embedding', 'cls_token'),
                      ('encoder.layers.2.ls2', 'blocks.2.ls2')):
        assert torch.equal(m.state_dict()[name], bf16[key])
    direct.clear()
    load(tmp_path)  # fp32 model from bf16 files: every tensor cast by copy_
    assert direct == []


def test_load_unmaps_the_checkpoint_files(tmp_path, weights):
    save_file(weights, str(tmp_path / 'model.safetensors'))
    load(tmp_path / 'model.safetensors')
    with open('/proc/self/maps') as f:
        assert str(tmp_path) not in f.read()


def test_pretrained_init_cfg_skips_the_random_draw(tmp_path, weights):
    """Weights init_cfg will load are zeros until then (not a random draw that the
    load overwrites), on the device the model is built on; on the meta device the
    model stays there (tools/analysis_tools/model_info.py)."""
    save_file(weights, str(tmp_path / 'model.safetensors'))
    m = make_model(tmp_path / 'model.safetensors')
    assert all(p.device.type == 'cpu' and not p.any() for p in m.parameters())
    m.init_weights()
    assert_matches_reference(m.eval(), weights)
    with torch.device('meta'):
        assert make_model(tmp_path / 'model.safetensors').cls_token.is_meta
    drawn = InternViT(**ARCH, img_size=56)  # no init_cfg: random weights as before
    assert drawn.blocks[0].attn.qkv.weight.std() > 0
