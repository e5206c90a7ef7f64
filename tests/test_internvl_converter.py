"""The InternVL authors' segmentation checkpoints (mmseg 0.x layout, the eight released
at the root of the Hugging Face repo ``OpenGVLab/InternVL``): converted by
``tools/model_converters/internvl2mmseg.py`` and loaded strictly into our published
configs, they compute what the upstream models compute.

The upstream models are the naive re-implementation in ``upstream_internvl.py``
(line by line after InternVL ``segmentation/`` and InternVL-MMDetSeg), with tiny random
weights saved in every container the upstream tools write. Our side is the published
leaf itself, shrunk only in width, depth and input size (the recipe otherwise as it
is), computed in fp32 (``param_dtype=None``) so that 1e-5 is a real bound.
"""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import load_tool
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmseg_internvit  # noqa: F401
from internvit_dense.engine.strict_load import load_plain_checkpoint
from internvit_dense.models import CheckpointMismatchError
from internvit_dense.models.layouts import convert_internvl_segmentor

from upstream_internvl import (
    build_upstream_segmentor,
    save_upstream_checkpoint,
    to_bf16_like_release,
)

ROOT = Path(__file__).resolve().parents[1]
CONVERTER = ROOT / 'tools' / 'model_converters' / 'internvl2mmseg.py'
LEAVES = ROOT / 'configs' / 'internvit'
WIDTH, HEADS, DEPTH, SIZE, CHANNELS = 48, 4, 8, 56, 32

# form -> (published leaf, upstream head, upstream out_indices for DEPTH, aux in_index)
FORMS = {
    # linear probing: block 44 of 48, the fourth-last -> 4 of 8
    'linear': ('linear_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py', 'linear',
               (DEPTH - 4, ), None),
    # head tuning: stage ends, auxiliary head on level 1
    'head': ('upernet_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py', 'upernet',
             (1, 3, 5, 7), 1),
    # full tuning: stage ends, auxiliary head on level 2 (upernet_r50's default)
    'full': ('upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504.py', 'upernet',
             (1, 3, 5, 7), 2),
    # few-shot: linear head on the last block, backbone trained
    'few-shot': ('linear_internvit-6b-224px_8xb2-5k_ade20k-1of16-504x504.py', 'linear',
                 (DEPTH - 1, ), None),
}


def tiny_leaf(name: str, num_classes: int = 150) -> Config:
    """A published leaf with a tiny backbone (and heads), everything else untouched."""
    cfg = Config.fromfile(str(LEAVES / name))
    cfg.model.backbone.update(embed_dims=WIDTH, num_heads=HEADS, num_layers=DEPTH,
                              mlp_hidden_dims=4 * WIDTH, img_size=SIZE, init_cfg=None,
                              param_dtype=None)
    if cfg.model.decode_head.type == 'UPerHead':
        cfg.model.decode_head.channels = CHANNELS
        cfg.model.auxiliary_head.channels = CHANNELS
    return cfg


def build(cfg: Config):
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


def upstream(form: str, seed: int = 0):
    _, head, out_indices, aux = FORMS[form]
    return build_upstream_segmentor(
        head, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS, img_size=SIZE,
        out_indices=out_indices, num_classes=150, channels=CHANNELS,
        aux_channels=CHANNELS, aux_in_index=aux or 2, seed=seed)


def as_released(ref) -> dict:
    """The reference's weights with a released file's dtypes (bf16 from the DeepSpeed
    run), and the reference itself switched to those (rounded) values."""
    sd = to_bf16_like_release(ref.state_dict())
    ref.load_state_dict({k: v.float() if v.is_floating_point() else v
                         for k, v in sd.items()})
    return sd


def assert_same_outputs(ours, ref, form: str) -> None:
    img = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    metas = [dict(img_shape=(SIZE, SIZE))] * 2
    with torch.no_grad():
        got = ours.encode_decode(img, metas)
        want = ref.encode_decode(img)
        assert got.shape == want.shape == (2, 150, SIZE, SIZE)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        if FORMS[form][3] is not None:  # the auxiliary head too, at feature resolution
            aux = ours.auxiliary_head(ours.extract_feat(img))
            torch.testing.assert_close(aux, ref.aux_logits(img), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('form', list(FORMS))
def test_converted_checkpoint_loads_strictly_and_matches_upstream(form, tmp_path):
    ref = upstream(form)
    src = save_upstream_checkpoint(as_released(ref), tmp_path / 'released.pth', 'bare')
    dst = tmp_path / 'converted.pth'
    summary = load_tool('internvl2mmseg').convert_file(str(src), str(dst))
    assert summary['container'] == 'bare' and summary['dataset'] == 'ade20k'
    assert summary['form'] == FORMS[form][1] and summary['blocks'] == DEPTH
    ours = build(tiny_leaf(FORMS[form][0]))
    ckpt = load_plain_checkpoint(ours, str(dst))  # strict: every key, every shape
    from mmseg.datasets import ADE20KDataset
    assert ckpt['meta']['dataset_meta']['classes'] == list(
        ADE20KDataset.METAINFO['classes'])
    assert_same_outputs(ours, ref, form)


@pytest.mark.parametrize('container', ['mmcv', 'module', 'deepspeed', 'deepspeed-dir'])
def test_every_upstream_container_converts(container, tmp_path):
    """mmcv 1.x {meta, state_dict, optimizer}, {'module': ...}, a DeepSpeed
    mp_rank_00_model_states.pt (and the directory holding it), all read with
    weights_only=True."""
    ref = upstream('head', seed=3)
    sd = as_released(ref)
    if container == 'deepspeed-dir':
        folder = tmp_path / 'iter_80000' / 'global_step80000'
        folder.mkdir(parents=True)
        save_upstream_checkpoint(sd, folder / 'mp_rank_00_model_states.pt', 'deepspeed',
                                 frozen_backbone=True)
        src = folder
    else:
        src = save_upstream_checkpoint(sd, tmp_path / 'up.pth', container,
                                       frozen_backbone=True)
    dst = tmp_path / 'converted.pth'
    summary = load_tool('internvl2mmseg').convert_file(str(src), str(dst))
    assert summary['container'] == container.replace('-dir', '')
    ours = build(tiny_leaf(FORMS['head'][0]))
    load_plain_checkpoint(ours, str(dst))
    assert_same_outputs(ours, ref, 'head')


def test_piip_upernet_baseline_converts_into_its_config(tmp_path):
    """PIIP's InternViT-6B UperNet baseline (no class token, tanh-GELU MLP, the last
    block into all four pyramid levels, patch 16) has the same module names: its
    checkpoint converts with the same tool and loads into the PIIP leaf."""
    ref = build_upstream_segmentor('upernet', variant='piip', embed_dim=WIDTH,
                                   depth=DEPTH, num_heads=HEADS, img_size=64,
                                   patch_size=16, num_classes=150, channels=CHANNELS,
                                   aux_channels=CHANNELS, aux_in_index=2, seed=5)
    src = save_upstream_checkpoint(as_released(ref), tmp_path / 'piip.pth', 'bare')
    dst = tmp_path / 'piip_mmseg.pth'
    load_tool('internvl2mmseg').convert_file(str(src), str(dst))
    cfg = Config.fromfile(str(LEAVES / 'upernet_internvit-6b-224px_8xb2-80k_ade20k-512x512.py'))
    cfg.model.backbone.update(embed_dims=WIDTH, num_heads=HEADS, num_layers=DEPTH,
                              mlp_hidden_dims=4 * WIDTH, img_size=64, init_cfg=None)
    cfg.model.decode_head.channels = cfg.model.auxiliary_head.channels = CHANNELS
    ours = build(cfg)
    load_plain_checkpoint(ours, str(dst))
    img = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = ours.encode_decode(img, [dict(img_shape=(64, 64))] * 2)
        torch.testing.assert_close(got, ref.encode_decode(img), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.auxiliary_head(ours.extract_feat(img)),
                                   ref.aux_logits(img), atol=1e-5, rtol=1e-5)


def test_converter_command_line(tmp_path):
    """`python tools/model_converters/internvl2mmseg.py SRC DST`, as a user runs it."""
    ref = upstream('linear')
    src = save_upstream_checkpoint(as_released(ref), tmp_path / 'linear.pth', 'bare')
    dst = tmp_path / 'out' / 'linear_mmseg.pth'
    run = subprocess.run([sys.executable, str(CONVERTER), str(src), str(dst)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert 'linear head' in run.stdout and '150 classes: ade20k' in run.stdout
    assert dst.is_file() and not list(dst.parent.glob('.*tmp*'))  # no leftovers
    ours = build(tiny_leaf(FORMS['linear'][0]))
    load_plain_checkpoint(ours, str(dst))
    assert_same_outputs(ours, ref, 'linear')


def test_the_mapping_covers_every_upstream_key():
    """Every key of each upstream form maps onto a key of our model, none is left over
    and none of ours is missing."""
    for form in FORMS:
        converted, unknown = convert_internvl_segmentor(upstream(form).state_dict())
        assert unknown == []
        ours = build(tiny_leaf(FORMS[form][0])).state_dict()
        assert set(converted) == set(ours), form
        assert all(converted[k].shape == ours[k].shape for k in ours)


def test_converter_refuses_what_it_cannot_map(tmp_path):
    convert = load_tool('internvl2mmseg').convert_file
    ref = build_upstream_segmentor('upernet', embed_dim=WIDTH, depth=4, num_heads=HEADS,
                                   img_size=SIZE, num_classes=150, with_final_norm=True)
    src = save_upstream_checkpoint(ref.state_dict(), tmp_path / 'final_norm.pth', 'bare')
    with pytest.raises(ValueError, match=r'final_norm\.pth.*up1\.4.*with_final_norm'):
        convert(str(src), str(tmp_path / 'x.pth'))
    odd = upstream('linear').state_dict()
    odd['decode_head.conv_seg.weight'] = odd['decode_head.conv_seg.weight'][:7]
    torch.save(odd, tmp_path / 'seven.pth')
    with pytest.raises(ValueError, match=r'seven\.pth predicts 7 classes.*--dataset'):
        convert(str(tmp_path / 'seven.pth'), str(tmp_path / 'x.pth'))
    torch.save({'optimizer': {}}, tmp_path / 'nostate.pth')
    with pytest.raises(ValueError, match=r'nostate\.pth has no state dict'):
        convert(str(tmp_path / 'nostate.pth'), str(tmp_path / 'x.pth'))
    (tmp_path / 'dir').mkdir()
    with pytest.raises(FileNotFoundError, match=r'dir is a directory without '
                                                 r'mp_rank_00_model_states\.pt'):
        convert(str(tmp_path / 'dir'), str(tmp_path / 'x.pth'))
    assert not (tmp_path / 'x.pth').exists()


def test_coco_stuff_checkpoints_get_coco_stuff_names(tmp_path):
    from mmseg.datasets import COCOStuffDataset
    ref = build_upstream_segmentor('linear', embed_dim=WIDTH, depth=DEPTH,
                                   num_heads=HEADS, img_size=SIZE, num_classes=171,
                                   out_indices=(DEPTH - 4, ))
    src = save_upstream_checkpoint(ref.state_dict(), tmp_path / 'stuff.pth', 'bare')
    dst = tmp_path / 'stuff_mmseg.pth'
    assert load_tool('internvl2mmseg').convert_file(str(src), str(dst))['dataset'] == \
        'coco-stuff164k'
    cfg = tiny_leaf('linear_internvit-6b-224px-frozen_8xb2-80k_coco-stuff164k-504x504.py')
    ckpt = load_plain_checkpoint(build(cfg), str(dst))
    assert ckpt['meta']['dataset_meta']['classes'] == list(
        COCOStuffDataset.METAINFO['classes'])


# ----------------------------------------------------------------- unconverted files
@pytest.fixture(scope='module')
def unconverted(tmp_path_factory):
    """A head-tuning checkpoint as released (upstream layout), not converted."""
    path = tmp_path_factory.mktemp('up') / 'upernet_frozen.pth'
    return save_upstream_checkpoint(as_released(upstream('head')), path, 'bare')


def test_a_models_own_keys_are_never_taken_for_the_upstream_layout(tmp_path):
    """mmseg's SETRUPHead has a `norm` of its own (decode_head.norm.*, an upstream
    marker name): its model loads its own checkpoint through every path."""
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = dict(type='BatchedSlideEncoderDecoder',
               backbone=dict(type='InternViT', embed_dims=WIDTH, num_heads=HEADS,
                             num_layers=2, mlp_hidden_dims=64, img_size=SIZE),
               decode_head=dict(type='SETRUPHead', in_channels=WIDTH, channels=16,
                                num_classes=3, norm_cfg=dict(type='BN')))
    model = MODELS.build(cfg)
    assert any(k.startswith('decode_head.norm.') for k in model.state_dict())
    model.load_state_dict(model.state_dict())
    torch.save(dict(state_dict=model.state_dict(), meta={}), tmp_path / 'setr.pth')
    load_plain_checkpoint(MODELS.build(cfg), str(tmp_path / 'setr.pth'))


def test_strict_loading_names_the_converter(unconverted):
    """tools/test.py, tools/infer.py, load_from and --resume load through this."""
    ours = build(tiny_leaf(FORMS['head'][0]))
    with pytest.raises(CheckpointMismatchError,
                       match=r'upernet_frozen\.pth.*InternVL \(mmseg 0\.x\).*'
                             r'tools/model_converters/internvl2mmseg\.py SRC DST'):
        load_plain_checkpoint(ours, str(unconverted))


def test_mmseg_loaders_name_the_converter(unconverted):
    """mmseg's init_model and MMSegInferencer load with strict=False: the segmentor
    itself refuses the upstream layout instead of loading half of it."""
    from mmseg.apis import MMSegInferencer, init_model
    cfg = tiny_leaf(FORMS['head'][0])
    with pytest.raises(CheckpointMismatchError, match='internvl2mmseg'):
        init_model(cfg, str(unconverted), device='cpu')
    with pytest.raises(CheckpointMismatchError, match='internvl2mmseg'):
        MMSegInferencer(model=cfg, weights=str(unconverted), device='cpu')


def test_tools_test_names_the_converter(unconverted, demo_root, tmp_path):
    cfg = tmp_path / 'tiny_head_tuning.py'
    cfg.write_text(
        f"_base_ = [{str(LEAVES / FORMS['head'][0])!r}]\n"
        f"model = dict(backbone=dict(embed_dims={WIDTH}, num_heads={HEADS}, "
        f"num_layers={DEPTH}, mlp_hidden_dims={4 * WIDTH}, img_size={SIZE}, "
        "init_cfg=None, param_dtype=None),\n"
        f"    decode_head=dict(channels={CHANNELS}), auxiliary_head=dict(channels="
        f"{CHANNELS}), test_cfg=dict(mode='whole'))\n"
        f"test_dataloader = dict(num_workers=1, dataset=dict(data_root={demo_root!r}))\n")
    with pytest.raises(CheckpointMismatchError, match='internvl2mmseg'):
        load_tool('test').main([str(cfg), str(unconverted), '--work-dir',
                                str(tmp_path / 'work')])
