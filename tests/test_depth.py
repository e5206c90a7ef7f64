"""Monocular depth: the linear bins probe, the loss and metric on masked depth, the
checked depth loader, the depth configs, and the RGB-D demo end to end."""
import os.path as osp
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.models.losses import SiLogLoss
from mmseg.registry import MODELS, TRANSFORMS
from mmseg.structures import SegDataSample
from PIL import Image

import mmseg_internvit  # noqa: F401
from mmseg_internvit.models.decode_heads.depth_bins_head import valid_depth_mask

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(type='InternViT', arch='internvit-300m-448px', embed_dims=32, num_layers=4,
            num_heads=2, mlp_hidden_dims=64, img_size=56, init_cfg=None)


def build(cfg):
    init_default_scope('mmseg')
    torch.manual_seed(0)
    module = MODELS.build(cfg)
    module.init_weights()
    return module


def head_cfg(**kw):
    return dict(dict(type='DepthBinsHead', in_channels=8, in_index=0, n_bins=5,
                     min_depth=1.0, max_depth=5.0, eps=0.1, upsample=2,
                     norm_cfg=None), **kw)


def test_the_bins_head_is_the_hand_computation():
    """1x1 classifier over [map, class token], ReLU + eps, divided by the sum, times
    the bin centres 1..5 m: written out for one pixel."""
    head = build(head_cfg(with_cls_token=True, in_channels=4))
    assert torch.equal(head.bin_centers, torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]))
    fmap = torch.randn(1, 4, 3, 3)
    cls = torch.randn(1, 4)
    depth = head([[fmap, cls]])
    assert depth.shape == (1, 1, 6, 6)
    # pixel (0, 0) of the 2x upsampled map (align_corners=False) is patch (0, 0)
    feat = torch.cat([fmap[0, :, 0, 0], cls[0]])
    w = head.conv_depth.weight[:, :, 0, 0]
    scores = torch.relu(w @ feat + head.conv_depth.bias) + 0.1
    expected = (scores / scores.sum() * torch.arange(1.0, 6.0)).sum()
    torch.testing.assert_close(depth[0, 0, 0, 0], expected)
    # every depth lies between the first and the last bin centre
    assert depth.min() >= 1.0 and depth.max() <= 5.0


def test_lin4_concatenates_the_blocks_and_dinov3_leaves_the_token_out():
    lin4 = build(head_cfg(in_channels=[8, 8, 8, 8], in_index=[0, 1, 2, 3],
                          with_cls_token=True, norm_cfg=dict(type='BN')))
    assert lin4.conv_depth.in_channels == 64 and lin4.norm.num_features == 64
    outs = [[torch.randn(2, 8, 3, 3), torch.randn(2, 8)] for _ in range(4)]
    assert lin4(outs).shape == (2, 1, 6, 6)
    dinov3 = build(head_cfg(norm_cfg=dict(type='BN')))
    assert dinov3.conv_depth.in_channels == 8
    with pytest.raises(TypeError, match='with_cls_token=True'):
        dinov3([[torch.randn(2, 8, 3, 3), torch.randn(2, 8)]])
    with pytest.raises(TypeError, match='output_cls_token=True'):
        lin4([torch.randn(2, 8, 3, 3)] * 4)


def depth_sample(depth):
    s = SegDataSample()
    s.gt_depth_map = PixelData(data=torch.as_tensor(depth, dtype=torch.float32)[None])
    return s


def test_the_loss_is_mmseg_silog_on_the_valid_pixels_only():
    head = build(head_cfg(loss_decode=dict(type='SiLogLoss')))
    g = torch.Generator().manual_seed(0)
    pred = 1 + 4 * torch.rand(2, 1, 8, 8, generator=g)
    target = 1 + 4 * torch.rand(2, 1, 8, 8, generator=g)
    target[0, 0, :2] = float('nan')    # unmeasured
    target[0, 0, 2, :3] = 0.0          # unmeasured
    target[1, 0, 5:] = 7.0             # beyond max_depth
    target[1, 0, 0, 0] = 0.5           # below min_depth
    losses = head.loss_by_feat(pred, [depth_sample(t[0]) for t in target])
    valid = valid_depth_mask(target, 1.0, 5.0)
    assert valid.sum() == 128 - 16 - 3 - 24 - 1
    # mmseg's SiLogLoss on each image's valid pixels alone, averaged over the images
    per_image = [SiLogLoss()(pred[i][valid[i]][None], target[i][valid[i]][None])
                 for i in range(2)]
    torch.testing.assert_close(losses['loss_silog'], sum(per_image) / 2)
    assert torch.isfinite(losses['loss_silog'])


def test_an_image_without_valid_depth_adds_no_loss_and_no_nan_gradient():
    head = build(head_cfg(loss_decode=dict(type='SiLogLoss')))
    pred = (2 + torch.rand(2, 1, 4, 4)).requires_grad_()
    target = torch.full((2, 1, 4, 4), float('nan'))
    target[1] = 3.0 + torch.rand(1, 4, 4)
    loss = head.loss_by_feat(pred, [depth_sample(t[0]) for t in target])['loss_silog']
    loss.backward()
    assert torch.isfinite(pred.grad).all() and not pred.grad[0].any()
    torch.testing.assert_close(loss, SiLogLoss()(pred[1:], target[1:]))


def test_the_metric_leaves_out_what_the_sensor_did_not_measure():
    """mmseg's DepthMetric on a prediction with a NaN / 0 / out-of-range ground truth:
    the same numbers as on the measured pixels alone."""
    from mmseg.evaluation import DepthMetric
    g = torch.Generator().manual_seed(1)
    gt = 0.5 + 5 * torch.rand(1, 20, 30, generator=g)
    pred = gt * (1 + 0.1 * torch.randn(1, 20, 30, generator=g))
    holes = gt.clone()
    holes[0, :5] = float('nan')
    holes[0, 5:7] = 0.0
    holes[0, 7, :10] = 12.0

    def score(gt_map, pred_map):
        metric = DepthMetric(min_depth_eval=1e-3, max_depth_eval=10.0)
        sample = dict(gt_depth_map=dict(data=gt_map), pred_depth_map=dict(data=pred_map))
        metric.process({}, [sample])
        return metric.compute_metrics(metric.results)

    keep = valid_depth_mask(holes, 1e-3, 10.0)
    with_holes = score(holes, pred)
    alone = score(gt[keep][None, None], pred[keep][None, None])
    assert with_holes.keys() == alone.keys()
    for k in alone:
        assert with_holes[k] == pytest.approx(alone[k], rel=1e-5), k
    assert all(np.isfinite(v) for v in with_holes.values())


def test_the_dpt_head_reassembles_four_blocks_with_their_tokens():
    from mmseg_internvit.models import DPTDepthHead
    head = build(dict(type='DPTDepthHead', in_channels=[32] * 4, channels=16,
                      min_depth=0.5, max_depth=5.0))
    assert isinstance(head, DPTDepthHead)
    # DINOv2's widths: w/8, w/4, w/2, w
    assert [p.conv.out_channels for p in head.reassemble_blocks.projects] == [4, 8, 16, 32]
    outs = [[torch.randn(2, 32, 4, 6), torch.randn(2, 32)] for _ in range(4)]
    depth = head(outs)
    # the 4x-reassembled grid, upsampled by three fusions and the output head
    assert depth.shape == (2, 1, 4 * 4 * 8 * 2 // 4, 6 * 4 * 8 * 2 // 4)
    assert depth.min() >= 0.5
    with pytest.raises(TypeError, match='output_cls_token=True'):
        head([torch.randn(2, 32, 4, 6)] * 4)
    with pytest.raises(ValueError, match='four blocks of one width'):
        build(dict(type='DPTDepthHead', in_channels=[32, 32], in_index=[0, 1]))


# ------------------------------------------------------------------ the loader
def write_pair(tmp_path, depth, name='x', image_shape=None, suffix='.png'):
    shape = image_shape or getattr(depth, 'shape', (6, 8))[:2]
    img = tmp_path / f'{name}.jpg'
    Image.fromarray(np.zeros((*shape, 3), np.uint8)).save(img)
    ann = tmp_path / f'{name}{suffix}'
    if suffix == '.png':
        Image.fromarray(depth).save(ann)
    else:
        ann.write_bytes(depth)
    return str(img), str(ann)


def load(img, ann, **kw):
    init_default_scope('mmseg')
    pipe = [TRANSFORMS.build(dict(type='LoadImageFromFile')),
            TRANSFORMS.build(dict(type='LoadCheckedDepthAnnotation',
                                  depth_rescale_factor=1e-3, **kw))]
    results = dict(img_path=img, depth_map_path=ann, seg_fields=[])
    for t in pipe:
        results = t(results)
    return results


def test_the_loader_reads_nyu_pngs_and_keeps_unmeasured_pixels_at_zero(tmp_path):
    mm = np.full((6, 8), 1500, np.uint16)
    mm[0] = 0
    out = load(*write_pair(tmp_path, mm))
    assert out['gt_depth_map'].dtype == np.float32
    assert out['gt_depth_map'][1, 0] == pytest.approx(1.5)
    assert (out['gt_depth_map'][0] == 0).all()


@pytest.mark.parametrize('case, match', [
    ('missing', 'does not exist'),
    ('corrupt', 'cannot read depth map'),
    ('uint8', 'is uint8.*16-bit PNG'),
    ('rgb', 'one channel'),
    ('size', r'is 6x8 but its image .* is 7x8'),
    ('empty', r'no pixel in \[0.001, 10.0\]'),
])
def test_bad_depth_maps_are_errors_naming_the_file(tmp_path, case, match):
    mm = np.full((6, 8), 1500, np.uint16)
    if case == 'uint8':
        img, ann = write_pair(tmp_path, mm.astype(np.uint8))
    elif case == 'rgb':
        img, ann = write_pair(tmp_path, np.zeros((6, 8, 3), np.uint8))
    elif case == 'size':
        img, ann = write_pair(tmp_path, mm, image_shape=(7, 8))
    elif case == 'empty':
        img, ann = write_pair(tmp_path, np.full((6, 8), 20000, np.uint16))
    elif case == 'corrupt':
        img, ann = write_pair(tmp_path, b'not a png at all', suffix='.png.bad')
    else:
        img, ann = write_pair(tmp_path, mm)
        ann = ann[:-4] + '_gone.png'
    with pytest.raises((ValueError, FileNotFoundError), match=match) as err:
        load(img, ann)
    assert osp.basename(ann) in str(err.value)


def test_negative_float_depths_are_an_error_and_nan_is_kept(tmp_path):
    img, _ = write_pair(tmp_path, np.full((4, 4), 1000, np.uint16))
    depth = np.full((4, 4), 2000.0, np.float32)
    depth[0, 0] = np.nan
    path = tmp_path / 'd.npy'
    np.save(path, depth)
    out = load(img, str(path), decode_backend='numpy')
    assert np.isnan(out['gt_depth_map'][0, 0]) and out['gt_depth_map'][1, 1] == 2.0
    depth[1, 1] = -5.0
    np.save(path, depth)
    with pytest.raises(ValueError, match='d.npy has negative depths'):
        load(img, str(path), decode_backend='numpy')


def test_crop_box_and_colour_augmentation(tmp_path):
    init_default_scope('mmseg')
    img = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    depth = np.arange(120, dtype=np.float32).reshape(10, 12)
    out = TRANSFORMS.build(dict(type='CropBox', box=(2, 3, 9, 8)))(
        dict(img=img.copy(), gt_depth_map=depth.copy(), seg_fields=['gt_depth_map']))
    assert out['img'].shape == (5, 7, 3) and out['img_shape'] == (5, 7)
    assert np.array_equal(out['gt_depth_map'], depth[3:8, 2:9])
    with pytest.raises(ValueError, match=r'does not fit x.jpg \(10x12\)'):
        TRANSFORMS.build(dict(type='CropBox', box=(0, 0, 13, 4)))(
            dict(img=img, img_path='x.jpg', seg_fields=[]))
    aug = TRANSFORMS.build(dict(type='DepthColorAug', prob=1.0, gamma=(2.0, 2.0),
                                brightness=(1.5, 1.5), color=(1.0, 1.0)))
    flat = np.full((2, 2, 3), 102, np.uint8)
    got = aug(dict(img=flat))['img']
    assert got == pytest.approx(np.full((2, 2, 3), min(1.0, (102 / 255) ** 2 * 1.5) * 255),
                                rel=1e-5)
    assert TRANSFORMS.build(dict(type='DepthColorAug', prob=0.0))(
        dict(img=flat))['img'] is flat


def test_the_backbone_gives_each_block_with_its_class_token():
    plain = build(dict(TINY, out_indices=[1, 3]))
    with_cls = build(dict(TINY, out_indices=[1, 3], output_cls_token=True))
    with_cls.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 56, 42)
    maps, outs = plain(x), with_cls(x)
    assert len(outs) == 2
    for fmap, (same, cls) in zip(maps, outs):
        assert torch.equal(fmap, same) and cls.shape == (2, 32)
    assert not torch.allclose(outs[0][1], outs[1][1])  # each block's own token
    with pytest.raises(ValueError, match='needs with_cls_token=True'):
        build(dict(TINY, with_cls_token=False, output_cls_token=True))


def estimator(**test_cfg):
    return build(dict(
        type='FlipDepthEstimator',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[0, 0, 0], std=[1, 1, 1]),
        backbone=dict(TINY, output_cls_token=True),
        decode_head=head_cfg(in_channels=None, with_cls_token=True, upsample=4),
        test_cfg=dict(test_cfg)))


def test_the_estimator_derives_the_width_and_flips_at_test_time():
    model = estimator(mode='whole', flip=True).eval()
    assert model.decode_head.conv_depth.in_channels == 64  # (32 + token 32), derived
    x = torch.rand(1, 3, 56, 70)
    metas = [dict(img_shape=(56, 70), ori_shape=(56, 70), pad_shape=(56, 70))]
    with torch.no_grad():
        both = model.inference(x, metas)
        plain = model.whole_inference(x, metas)
        mirrored = model.whole_inference(x.flip(-1), metas).flip(-1)
    torch.testing.assert_close(both, (plain + mirrored) / 2)
    assert not torch.allclose(plain, mirrored)
    # mmseg 1.2 would run 'whole' after 'slide'; here slide is slide
    slide = estimator(mode='slide', crop_size=(56, 56), stride=(28, 28)).eval()
    calls = []
    slide.backbone.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[-1]))
    with torch.no_grad():
        slide.inference(x, metas)
    assert calls == [56, 56]
    with pytest.raises(ValueError, match="'whole', 'slide' or 'slide_flip'"):
        estimator(mode='tiles').inference(x, metas)


def test_the_dinov3_schedule_is_their_arithmetic():
    import math

    from internvit_dense.engine import WarmupOneCycleLR
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=3e-4,
                            betas=(0.9, 0.99))
    sched = WarmupOneCycleLR(opt, total_steps=100, warmup_iters=30)
    seen = []
    for _ in range(100):
        seen.append((opt.param_groups[0]['lr'], opt.param_groups[0]['betas']))
        opt.step()
        sched.step()
    top, low = 3e-4, 3e-4 / 25 / 1000

    def cos(a, b, pct):
        return b + (a - b) / 2 * (math.cos(math.pi * pct) + 1)
    for s in (0, 1, 17, 29):
        want = top / 1000 + top * (1 + math.cos(math.pi * s / 100)) / 2 * s / 30
        assert seen[s][0] == pytest.approx(want) and seen[s][1] == (0.0, 0.99)
    for s in (30, 64, 99):
        assert seen[s][0] == pytest.approx(cos(top, low, (s + 1) / 100))
        assert seen[s][1][0] == pytest.approx(cos(0.85, 0.95, (s - 30) / 70))


def test_scale_invariant_log_loss_is_dinov2_sigloss():
    from mmseg_internvit.models.losses import ScaleInvariantLogLoss
    loss = ScaleInvariantLogLoss(warm_up_iters=2).train()
    g = torch.Generator().manual_seed(0)
    pred = 0.5 + torch.rand(2, 1, 6, 6, generator=g)
    target = 0.5 + torch.rand(2, 1, 6, 6, generator=g)
    target[0, 0, 0] = 0.0  # left out
    keep = target > 0
    d = torch.log(pred[keep] + 1e-3) - torch.log(target[keep] + 1e-3)
    warm = torch.sqrt(0.15 * d.mean() ** 2)
    full = torch.sqrt(torch.var(d) + 0.15 * d.mean() ** 2)
    for want in (warm, warm, full, full):
        torch.testing.assert_close(loss(pred, target), want)
    assert int(loss.calls) == 4 and 'calls' in loss.state_dict()  # resumes with the run
    loss.eval()
    torch.testing.assert_close(loss(pred, target), full)
    assert int(loss.calls) == 4


# ------------------------------------------------------------------ the configs
DEPTH_LEAVES = sorted((ROOT / 'configs' / 'internvit_depth').glob('*.py'))


def test_there_is_a_depth_leaf_per_release_and_protocol():
    names = {p.name for p in DEPTH_LEAVES}
    for release in ('6b-224px', '6b-448px-v2-5', '300m-448px'):
        for head in ('lin1', 'lin4', 'dinov3-linear', 'dpt'):
            assert f'depth-{head}_internvit-{release}-frozen_8xb2-38k_nyu-416x544.py' in names
    assert len(names) == 12


@pytest.mark.parametrize('path', DEPTH_LEAVES, ids=lambda p: p.name)
def test_a_depth_leaf_is_its_protocol_and_trains_tiny(path):
    """Each leaf's protocol fields (DINOv2 lin. 1 / lin. 4 or DINOv3), then the model
    built at tiny width with its own head and loss, one training step."""
    from conftest import cached_config
    from mmengine.optim import build_optim_wrapper
    cfg = cached_config(str(path))
    head, backbone = cfg.model.decode_head, cfg.model.backbone
    assert cfg.model.type == 'FlipDepthEstimator' and backbone.frozen
    assert cfg.model.test_cfg == dict(mode='whole', flip=True)
    kind = path.name.split('_')[0]
    assert (head.min_depth, head.max_depth) == (1e-3, 10.0)
    assert head.loss_decode.type == 'ScaleInvariantLogLoss'
    assert head.loss_decode.variance_focus == 0.85 and head.loss_decode.warm_up_iters == 100
    if kind != 'depth-dpt':
        assert head.n_bins == 256 and head.eps == 0.1
    assert cfg.crop_size == (416, 544) and cfg.train_cfg.max_iters == 38400
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.val_evaluator == dict(type='DepthMetric', min_depth_eval=1e-3,
                                     max_depth_eval=10.0, crop_type='nyu_crop')
    steps = [t['type'] for t in cfg.train_pipeline]
    assert steps == ['LoadImageFromFile', 'LoadCheckedDepthAnnotation', 'CropBox',
                     'RandomRotate', 'RandomFlip', 'RandomCrop', 'DepthColorAug',
                     'PackSegInputs']
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=35.0, norm_type=2)
    if kind == 'depth-dpt':
        assert head.type == 'DPTDepthHead' and backbone.output_cls_token
        assert backbone.out_indices == 'stages' and head.in_index == [0, 1, 2, 3]
        assert (head.channels, head.readout_type, head.norm_cfg) == (256, 'project', None)
    elif kind == 'depth-dinov3-linear':
        assert not backbone.output_cls_token and not head.with_cls_token
        assert head.upsample == 1 and head.norm_cfg.type == 'SyncBN'
        assert backbone.out_indices == [-1]
        assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=3e-4,
                                                   betas=(0.9, 0.99), weight_decay=1e-4)
        assert [s['type'] for s in cfg.param_scheduler] == ['WarmupOneCycleLR']
        assert cfg.randomness.seed == 321
    else:
        assert backbone.output_cls_token and head.with_cls_token
        assert head.upsample == 4 and head.norm_cfg is None
        assert backbone.out_indices == ('stages' if kind == 'depth-lin4' else [-1])
    if 'dinov3' not in kind:
        assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=1e-4,
                                                   betas=(0.9, 0.999), weight_decay=0.01)
        assert [s['type'] for s in cfg.param_scheduler] == ['LinearLR',
                                                            'CosineAnnealingLR']
    release = path.name.split('_internvit-')[1].split('-frozen')[0]
    assert backbone.arch == {'6b-224px': 'internvit-6b-224px',
                             '300m-448px': 'internvit-300m-448px'}.get(
                                 release, 'internvit-6b-448px')
    # tiny and trainable for one step
    model_cfg = cfg.model.copy()
    model_cfg.backbone = dict(backbone, embed_dims=32, num_layers=4, num_heads=2,
                              mlp_hidden_dims=64, init_cfg=None, param_dtype=None)
    if head.norm_cfg:
        model_cfg.decode_head = dict(head, norm_cfg=dict(type='BN'))
    if kind == 'depth-dpt':
        model_cfg.decode_head = dict(head, channels=16)
    model = build(model_cfg)
    if kind == 'depth-dpt':
        assert model.decode_head.in_channels == [32] * 4  # derived
        first = model.decode_head.depth_convs[0]
    else:
        want = 32 * (4 if kind == 'depth-lin4' else 1) * (1 if 'dinov3' in kind else 2)
        assert model.decode_head.conv_depth.in_channels == want
        first = model.decode_head.conv_depth
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    x = torch.rand(2, 3, 56, 70) * 255
    samples = [depth_sample(0.5 + 2 * torch.rand(56, 70)) for _ in range(2)]
    for s in samples:
        s.set_metainfo(dict(img_shape=(56, 70), pad_shape=(56, 70), ori_shape=(56, 70)))
    model.train()
    losses = model.loss(x, samples)
    loss, _ = model.parse_losses(losses)
    before = first.weight.detach().clone()
    wrapper.update_params(loss)
    assert torch.isfinite(loss)
    assert not torch.equal(before, first.weight)
    assert not any(p.requires_grad for p in model.backbone.parameters())


# ------------------------------------------------------------------ end to end
DEMO_DEPTH = ROOT / 'configs/demo/depth-lin1_internvit-tiny_1xb4-300it_demo-nyu-196x196.py'


def test_the_rgbd_demo_trains_tests_and_draws(tmp_path):
    """The embedded RGB-D frame in NYUv2's layout; tools/train.py (60 iterations of the
    demo) lowers the RMSE of the unseen right part; tools/test.py gives the same RMSE
    from the checkpoint; depth_panels.py, tools/infer.py and MMSegInferencer write the
    coloured depth."""
    import json
    import re

    from conftest import load_tool
    data = tmp_path / 'nyu'
    load_tool('prepare_demo_data').main(['--task', 'depth', '--depth-out', str(data)])
    meta = json.loads((data / 'sources.json').read_text())
    assert len(meta['train']) == 18 and meta['test'] == ['arc2017_right']
    assert 0.3 < meta['measured_fraction'] < 0.7  # the frame's NaNs stay unmeasured
    test_png = np.asarray(Image.open(data / 'annotations/test/arc2017_right.png'))
    assert test_png.dtype == np.uint16 and test_png.shape == (480, 224)
    cfg = tmp_path / 'demo.py'
    cfg.write_text(f"_base_ = {str(DEMO_DEPTH)!r}\n"
                   f"data_root = {str(data)!r}\n"
                   "train_dataloader = dict(num_workers=0, persistent_workers=False,\n"
                   "                        dataset=dict(data_root=data_root))\n"
                   "val_dataloader = dict(num_workers=0, persistent_workers=False,\n"
                   "                      dataset=dict(data_root=data_root))\n"
                   "test_dataloader = val_dataloader\n"
                   "train_cfg = dict(max_iters=60, val_interval=60)\n"
                   "param_scheduler = [dict(type='LinearLR', start_factor=0.1,\n"
                   "                        by_epoch=False, begin=0, end=10)]\n"
                   "default_hooks = dict(checkpoint=dict(interval=60))\n")
    work = tmp_path / 'work'
    load_tool('train').main([str(cfg), '--work-dir', str(work)])
    log = next(work.glob('*/*.log')).read_text()
    before, after = map(float, re.search(
        r'rmse before training: ([\d.]+), after training: ([\d.]+)', log).groups())
    assert after < 0.5 * before
    ckpt = work / 'iter_60.pth'
    metrics = load_tool('test').main([str(cfg), str(ckpt), '--work-dir',
                                      str(tmp_path / 'test')])
    assert metrics['rmse'] == pytest.approx(after, rel=1e-3)
    written = load_tool('depth_panels').main([str(cfg), str(ckpt), str(tmp_path / 'p')])
    assert [Path(p).name for p, _ in written] == ['arc2017_right.png']
    assert written[0][1] == pytest.approx(after, rel=1e-2)
    panel = Image.open(written[0][0])
    assert panel.size[0] > 3 * panel.size[1]  # four panels side by side
    image = str(data / 'images/test/arc2017_right.jpg')
    out = load_tool('infer').main([str(cfg), str(ckpt), image, '--out-dir',
                                   str(tmp_path / 'infer')])
    drawn = Image.open(out[0])
    assert drawn.size == (224, 960)  # the image above its coloured depth
    from mmseg.apis import MMSegInferencer
    result = MMSegInferencer(str(cfg), str(ckpt), device='cpu')(image, return_vis=True)
    assert result['predictions'].shape == (480, 224)
    assert 1e-3 <= result['predictions'].min() and result['predictions'].max() <= 10.0
