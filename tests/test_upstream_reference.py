"""Self-tests of tests/upstream_internvl.py, the independent re-implementation of the
upstream (mmseg 0.x) InternVL / PIIP segmentors that the conversion tests compare with."""
import torch
import torch.nn.functional as F

from upstream_internvl import (
    LayerNorm,
    build_upstream_segmentor,
    pretrained_transform,
    save_upstream_checkpoint,
    to_bf16_like_release,
)

CONV_MODULE = ['conv.weight', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var',
               'bn.num_batches_tracked']
BLOCK = ['norm1.weight', 'attn.qkv.weight', 'attn.proj.weight', 'attn.proj.bias',
         'attn.q_norm.weight', 'attn.k_norm.weight', 'ls1.gamma', 'norm2.weight',
         'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias', 'ls2.gamma']


def _img(size, seed=1):
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_linear_keys_exact():
    sd = build_upstream_segmentor('linear', depth=1, out_indices=(0,)).state_dict()
    expected = (['backbone.pos_embed', 'backbone.cls_token', 'backbone.patch_embed.proj.weight',
                 'backbone.patch_embed.proj.bias']
                + ['backbone.blocks.0.' + k for k in BLOCK]
                + ['decode_head.conv_seg.weight', 'decode_head.conv_seg.bias',
                   'decode_head.norm.weight', 'decode_head.norm.bias',
                   'decode_head.norm.running_mean', 'decode_head.norm.running_var',
                   'decode_head.norm.num_batches_tracked'])
    assert list(sd) == expected
    assert sd['backbone.pos_embed'].shape == (1, 1 + 4 * 4, 48)
    assert sd['backbone.patch_embed.proj.weight'].shape == (48, 3, 14, 14)
    assert sd['backbone.blocks.0.attn.qkv.weight'].shape == (144, 48)
    assert sd['decode_head.conv_seg.weight'].shape == (5, 48, 1, 1)


def test_upernet_keys_exact():
    sd = build_upstream_segmentor('upernet', depth=4, channels=32, aux_channels=24).state_dict()
    backbone = [k for k in sd if k.startswith('backbone.')]
    assert backbone[:4] == ['backbone.pos_embed', 'backbone.cls_token',
                            'backbone.patch_embed.proj.weight', 'backbone.patch_embed.proj.bias']
    assert backbone[4:-8] == [f'backbone.blocks.{i}.{k}' for i in range(4) for k in BLOCK]
    assert backbone[-8:] == ['backbone.up1.0.weight', 'backbone.up1.0.bias',
                             'backbone.up1.1.weight', 'backbone.up1.1.bias',
                             'backbone.up1.3.weight', 'backbone.up1.3.bias',
                             'backbone.up2.0.weight', 'backbone.up2.0.bias']
    decode = ['decode_head.conv_seg.weight', 'decode_head.conv_seg.bias']
    decode += [f'decode_head.psp_modules.{j}.1.{k}' for j in range(4) for k in CONV_MODULE]
    decode += ['decode_head.bottleneck.' + k for k in CONV_MODULE]
    decode += [f'decode_head.lateral_convs.{j}.{k}' for j in range(3) for k in CONV_MODULE]
    decode += [f'decode_head.fpn_convs.{j}.{k}' for j in range(3) for k in CONV_MODULE]
    decode += ['decode_head.fpn_bottleneck.' + k for k in CONV_MODULE]
    assert [k for k in sd if k.startswith('decode_head.')] == decode
    assert [k for k in sd if k.startswith('auxiliary_head.')] == (
        ['auxiliary_head.conv_seg.weight', 'auxiliary_head.conv_seg.bias']
        + ['auxiliary_head.convs.0.' + k for k in CONV_MODULE])
    assert len(sd) == len(backbone) + len(decode) + 8
    assert sd['backbone.up1.0.weight'].shape == (48, 48, 2, 2)  # ConvTranspose2d (in, out)
    assert sd['decode_head.psp_modules.0.1.conv.weight'].shape == (32, 48, 1, 1)
    assert sd['decode_head.bottleneck.conv.weight'].shape == (32, 48 + 4 * 32, 3, 3)
    assert sd['decode_head.fpn_bottleneck.conv.weight'].shape == (32, 4 * 32, 3, 3)
    assert sd['auxiliary_head.convs.0.conv.weight'].shape == (24, 48, 3, 3)
    assert sd['auxiliary_head.conv_seg.weight'].shape == (5, 24, 1, 1)


def test_piip_keys():
    sd = build_upstream_segmentor('upernet', variant='piip', img_size=64, patch_size=16,
                                  qkv_bias=True).state_dict()
    assert 'backbone.cls_token' not in sd
    assert list(sd)[:3] == ['backbone.pos_embed', 'backbone.patch_embed.proj.weight',
                            'backbone.patch_embed.proj.bias']
    assert sd['backbone.pos_embed'].shape == (1, 1 + 4 * 4, 48)  # the cls row is kept
    assert sd['backbone.patch_embed.proj.weight'].shape == (48, 3, 16, 16)
    for k in ('attn.qkv.bias', 'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight',
              'mlp.fc2.bias'):  # FusedMLP: fc1 / fc2 with bias, as timm's Mlp
        assert 'backbone.blocks.3.' + k in sd
    assert 'backbone.up2.0.weight' in sd and 'decode_head.psp_modules.3.1.bn.weight' in sd


def test_output_shapes():
    lin = build_upstream_segmentor('linear', num_classes=7)
    assert lin.encode_decode(_img(56)).shape == (2, 7, 56, 56)
    assert [f.shape for f in lin.backbone_features(_img(56))] == [(2, 48, 4, 4)]
    up = build_upstream_segmentor('upernet', num_classes=7)
    feats = up.backbone_features(_img(56))
    assert [tuple(f.shape) for f in feats] == [(2, 48, 16, 16), (2, 48, 8, 8), (2, 48, 4, 4),
                                               (2, 48, 2, 2)]
    assert up.encode_decode(_img(56)).shape == (2, 7, 56, 56)
    assert up.aux_logits(_img(56)).shape == (2, 7, 4, 4)  # in_index 2: the stride-14 map
    head_tuning = build_upstream_segmentor('upernet', num_classes=7, aux_in_index=1)
    assert head_tuning.aux_logits(_img(56)).shape == (2, 7, 8, 8)
    try:
        up.encode_decode(_img(70))
    except AssertionError as e:
        assert 'fixed-size' in str(e)
    else:
        raise AssertionError('a wrong input size must be refused')


def test_weights_random_and_seeded():
    a = build_upstream_segmentor('upernet', seed=0).state_dict()
    b = build_upstream_segmentor('upernet', seed=0).state_dict()
    c = build_upstream_segmentor('upernet', seed=1).state_dict()
    for k, v in a.items():
        assert torch.equal(v, b[k]), k
        if torch.is_floating_point(v):
            assert not torch.equal(v, c[k]), k
            if v.numel() > 1:
                assert v.std() > 0, f'{k} is constant'
            assert not (v == 0).all() and not (v == 1).all(), k
        if k.endswith('running_var'):
            assert (v > 0).all()
        if k.endswith('num_batches_tracked'):
            assert v.dtype == torch.int64 and v > 0


def test_channels_first_layer_norm():
    ln = LayerNorm(6)
    with torch.no_grad():
        ln.weight.copy_(torch.randn(6))
        ln.bias.copy_(torch.randn(6))
    x = torch.randn(2, 6, 5, 3)
    ref = F.layer_norm(x.permute(0, 2, 3, 1), (6,), ln.weight, ln.bias, 1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(ln(x), ref, rtol=1e-5, atol=1e-5)


def test_linear_head_is_bn_then_1x1_conv():
    model = build_upstream_segmentor('linear')
    x = _img(56)
    feat = model.backbone_features(x)[-1]
    sd = model.state_dict()
    bn = F.batch_norm(feat, sd['decode_head.norm.running_mean'],
                      sd['decode_head.norm.running_var'], sd['decode_head.norm.weight'],
                      sd['decode_head.norm.bias'], training=False, eps=1e-5)
    logits = F.conv2d(bn, sd['decode_head.conv_seg.weight'], sd['decode_head.conv_seg.bias'])
    logits = F.interpolate(logits, size=(56, 56), mode='bilinear', align_corners=False)
    torch.testing.assert_close(model.encode_decode(x), logits, rtol=1e-5, atol=1e-5)


def test_piip_pyramid_takes_the_last_block_four_times():
    model = build_upstream_segmentor('upernet', variant='piip', img_size=64, patch_size=16,
                                     out_indices=(0, 1, 2, 3))
    bb = model.backbone
    seen = {}
    hooks = [getattr(bb, f'up{i}').register_forward_hook(
        lambda m, inp, out, i=i: seen.__setitem__(i, inp[0])) for i in range(1, 5)]
    hooks.append(bb.blocks[3].register_forward_hook(
        lambda m, inp, out: seen.__setitem__('last', out)))
    feats = model.backbone_features(_img(64))
    for h in hooks:
        h.remove()
    last = seen['last'].reshape(2, 4, 4, 48).permute(0, 3, 1, 2)  # no cls row to drop
    for i in range(1, 5):
        assert torch.equal(seen[i], last)
    assert torch.equal(feats[2], last)  # up3 = Identity
    # the internvl variant feeds four different blocks
    ivl = build_upstream_segmentor('upernet').backbone_features(_img(56))
    assert not torch.equal(F.max_pool2d(ivl[2], 2), ivl[3])


def test_piip_load_transform_bicubic_14_to_16():
    g = torch.Generator().manual_seed(0)
    ckpt = {'model': {'patch_embed.proj.weight': torch.randn(8, 3, 14, 14, generator=g),
                      'pos_embed': torch.randn(1, 1 + 16 * 16, 8, generator=g),
                      'cls_token': torch.randn(1, 1, 8, generator=g)}}
    out = pretrained_transform(ckpt, variant='piip', img_size=512, patch_size=16,
                               pretrain_size=224, pretrain_patch_size=14)
    w = ckpt['model']['patch_embed.proj.weight']
    bicubic = F.interpolate(w, size=(16, 16), mode='bicubic', align_corners=False)
    assert out['patch_embed.proj.weight'].shape == (8, 3, 16, 16)
    assert torch.equal(out['patch_embed.proj.weight'], bicubic)
    bilinear = F.interpolate(w, size=(16, 16), mode='bilinear', align_corners=False)
    assert not torch.allclose(out['patch_embed.proj.weight'], bilinear)
    pos = ckpt['model']['pos_embed']
    assert out['pos_embed'].shape == (1, 1 + 32 * 32, 8)
    assert torch.equal(out['pos_embed'][:, 0], pos[:, 0])  # cls row kept as is
    grid = pos[0, 1:].reshape(16, 16, 8).permute(2, 0, 1)[None]
    grid = F.interpolate(grid, size=(32, 32), mode='bicubic', align_corners=False)
    torch.testing.assert_close(out['pos_embed'][0, 1:], grid[0].permute(1, 2, 0).reshape(-1, 8),
                               rtol=0, atol=0)
    # InternVL: grid from pretrain_size // 14 whatever the patch size, 'module' unwrapped
    ivl = pretrained_transform({'module': ckpt['model']}, variant='internvl', img_size=448,
                               patch_size=14, pretrain_size=224)
    assert ivl['pos_embed'].shape == (1, 1 + 32 * 32, 8)
    assert ivl['patch_embed.proj.weight'].shape == (8, 3, 14, 14)


def test_containers_and_release_dtypes(tmp_path):
    sd = build_upstream_segmentor('upernet', depth=2).state_dict()
    loaded = {}
    for container in ('bare', 'module', 'mmcv', 'deepspeed'):
        path = save_upstream_checkpoint(sd, tmp_path / f'{container}.pth', container,
                                        frozen_backbone=container == 'deepspeed')
        loaded[container] = torch.load(path, map_location='cpu', weights_only=False)
    assert list(loaded['bare']) == list(sd)
    assert list(loaded['module']) == ['module']
    mmcv = loaded['mmcv']
    assert set(mmcv) == {'meta', 'state_dict', 'optimizer'}
    assert {'mmseg_version', 'config', 'CLASSES', 'PALETTE', 'iter', 'epoch'} <= set(mmcv['meta'])
    groups = mmcv['optimizer']['param_groups']
    assert {'param_names', 'lr_scale', 'group_name', 'initial_lr'} <= set(groups[0])
    n_params = sum(not k.endswith(('running_mean', 'running_var', 'num_batches_tracked'))
                   for k in sd)
    assert sum(len(g['params']) for g in groups) == n_params == len(mmcv['optimizer']['state'])
    ds = loaded['deepspeed']
    for key in ('module', 'buffer_names', 'optimizer', 'param_shapes', 'frozen_param_shapes',
                'shared_params', 'frozen_param_fragments', 'lr_scheduler', 'data_sampler',
                'random_ltd', 'sparse_tensor_module_names', 'skipped_steps', 'global_steps',
                'global_samples', 'dp_world_size', 'mp_world_size', 'ds_config', 'ds_version'):
        assert key in ds, key
    assert ds['optimizer'] is None
    shaped = [n for g in ds['param_shapes'] for n in g]
    assert 'backbone.blocks.0.attn.qkv.weight' not in shaped  # frozen
    assert 'backbone.up1.0.weight' in shaped  # freeze_vit runs before up1..up4 exist
    for k, v in loaded['bare'].items():
        assert torch.equal(v, sd[k])

    rel = to_bf16_like_release(sd)
    assert rel['backbone.blocks.0.attn.qkv.weight'].dtype == torch.bfloat16
    assert rel['decode_head.bottleneck.conv.weight'].dtype == torch.bfloat16
    assert rel['decode_head.bottleneck.bn.weight'].dtype == torch.bfloat16
    assert rel['decode_head.bottleneck.bn.running_var'].dtype == torch.float32
    assert rel['auxiliary_head.convs.0.bn.running_mean'].dtype == torch.float32
    assert rel['auxiliary_head.convs.0.bn.num_batches_tracked'].dtype == torch.int64
