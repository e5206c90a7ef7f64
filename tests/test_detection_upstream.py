"""The upstream InternViT-6B detection recipes on mmdet 3.x: PIIP's Mask R-CNN baseline
and the InternVL authors' frozen-backbone Mask R-CNN.

* Their leaves state the upstream configs' fields (the values below are written from
  PIIP's ``mask_rcnn_internvit_6b_fpn_1x_coco_bs16_ms.py`` and InternVL-MMDetSeg's
  ``mask_rcnn_intern_vit_6b_fpn_1x_coco_bs16_frozen.py``, their mmdet 2.x bases and
  zero_configs).
* Upstream checkpoints (the naive re-implementation of ``upstream_piip_det.py`` with
  tiny random weights, in every container the upstream tools write), converted by
  ``tools/model_converters/piip2mmdet.py`` and loaded strictly into the leaf shrunk in
  width and depth only, give the upstream features, RPN outputs and box / mask head
  outputs at 1e-5 in fp32, on a 1333 x 800-like input and a square one.
* Unconverted, such a checkpoint is refused by every loader, naming the converter.
* The position-embedding rule holds for every input size within a run.
"""
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmdet_internvit  # noqa: F401
from internvit_dense.engine.strict_load import load_plain_checkpoint
from internvit_dense.models import CheckpointMismatchError, InternViT

from upstream_internvl import save_upstream_checkpoint
from upstream_piip_det import WindowedAttention, build_upstream_detector, state_dict_of

ROOT = Path(__file__).resolve().parents[1]
LEAVES = ROOT / 'configs' / 'internvit_det'
CONVERTER = ROOT / 'tools' / 'model_converters' / 'piip2mmdet.py'
PIIP = 'mask-rcnn_internvit-6b_simplefpn_8xb2-ms-1x_coco.py'
FROZEN = 'mask-rcnn_internvit-6b-frozen_simplefpn_8xb2-1x_coco.py'
OURS = 'mask-rcnn_internvit-6b-frozen-win14_simplefpn_8xb2-1x_coco.py'
WIDTH, HEADS, DEPTH, CH, FC = 32, 2, 2, 16, 32
# (leaf, upstream grid side, window size)
RECIPES = {'piip': (PIIP, 14, 0), 'internvl': (FROZEN, 16, 16)}
# a 1333 x 800 image padded to 64 (PIIP) / 32 (InternVL), and a square one
INPUTS = {'piip': [(832, 1344), (512, 512)], 'internvl': [(800, 1344), (400, 400)]}


def tiny_leaf(name: str) -> Config:
    """A leaf with a tiny backbone, neck and heads; everything else as it is."""
    cfg = Config.fromfile(str(LEAVES / name))
    m = cfg.model
    m.backbone.update(embed_dims=WIDTH, num_heads=HEADS, num_layers=DEPTH,
                      mlp_hidden_dims=4 * WIDTH, init_cfg=None, param_dtype=None,
                      with_cp=False, drop_path_rate=0.0)
    m.neck.update(in_channels=WIDTH, out_channels=CH)
    m.rpn_head.update(in_channels=CH, feat_channels=CH)
    m.roi_head.bbox_roi_extractor.out_channels = CH
    m.roi_head.bbox_head.update(in_channels=CH, fc_out_channels=FC)
    m.roi_head.mask_roi_extractor.out_channels = CH
    m.roi_head.mask_head.update(in_channels=CH, conv_out_channels=CH)
    return cfg


def build(cfg: Config):
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


def upstream(recipe: str, seed: int = 0):
    _, grid, window = RECIPES[recipe]
    return build_upstream_detector(embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS,
                                   grid=grid, window_size=window, out_channels=CH,
                                   fc_out_channels=FC, seed=seed)


def rois_for(h: int, w: int) -> torch.Tensor:
    """Boxes of every size (all four RoI levels), on image 0."""
    boxes = [[4., 6., 30., 40.], [20., 10., 120., 90.], [50., 60., 300., 260.],
             [0., 0., w - 1., h - 1.], [w / 3, h / 4, w * 0.9, h * 0.8]]
    return torch.tensor([[0.] + b for b in boxes])


def ours_outputs(model, img, rois):
    with torch.no_grad():
        feats = model.extract_feat(img)
        rpn_cls, rpn_reg = model.rpn_head(feats)
        bbox = model.roi_head._bbox_forward(feats, rois)
        mask = model.roi_head._mask_forward(feats, rois)
    return dict(feats=list(feats), rpn_cls=list(rpn_cls), rpn_reg=list(rpn_reg),
                cls_score=bbox['cls_score'], bbox_pred=bbox['bbox_pred'],
                mask_pred=mask['mask_preds'])


def assert_same_outputs(ours, ref):
    assert set(ours) == set(ref)
    for key in ref:
        a, b = ours[key], ref[key]
        for x, y in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
            assert x.shape == y.shape, key
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5, msg=key)


def convert(src, dst, *extra):
    proc = subprocess.run([sys.executable, str(CONVERTER), str(src), str(dst), *extra],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def coco_classes():
    from mmdet.datasets import CocoDataset
    return list(CocoDataset.METAINFO['classes'])


# ---------------------------------------------------------------------------- fields
def test_piip_leaf_is_the_upstream_recipe():
    """PIIP mask_rcnn_internvit_6b_fpn_1x_coco_bs16_ms.py, field by field."""
    path = LEAVES / PIIP
    assert 'Published: 53.8 box AP / 48.1 mask AP' in path.read_text()
    cfg = Config.fromfile(str(path))
    m, b, n = cfg.model, cfg.model.backbone, cfg.model.neck
    assert (m.type, m.fp32_heads) == ('InternViTMaskRCNN', True)
    # backbone: InternViT6B(pretrain_img_size=224, pretrain_patch_size=14, patch_size=16,
    # embed_dim=3200, depth=48, num_heads=25, qkv_bias=False, drop_path_rate=0.4,
    # init_values=0.1, with_cp=True, qk_normalization=True, with_fpn=True,
    # out_indices=[47], output_dtype='float32', norm_layer_type='RMSNorm'); cls_token None
    assert (b.arch, b.patch_size, b.img_size, b.pos_embed_mode, b.with_cls_token) == (
        'internvit-6b-224px', 16, 224, 'resize', False)
    assert (b.window_size, b.get('global_attn_indexes', []), b.out_indices,
            b.drop_path_rate, b.with_cp) == (0, [], [-1], 0.4, True)
    assert b.init_cfg.patch_resize == 'bicubic' and b.get('mlp_act', 'gelu') == 'gelu'
    assert not b.get('frozen', False)
    # up1..up4 (channels-first LayerNorm, ConvT init N(0, sqrt(2 / fan_out))) + FPN
    # (in [3200] * 4, out 256, num_outs 5, no norm)
    assert (n.type, n.in_channels, n.out_channels, tuple(n.scales), n.num_outs) == (
        'SimpleFeaturePyramid', 3200, 256, (4, 2, 1, 0.5), 5)
    assert n.norm_cfg == dict(type='LN2d', eps=1e-6) and n.fpn_norm_cfg is None
    assert n.init_cfg == dict(type='Kaiming', layer='ConvTranspose2d')
    assert_plain_mask_rcnn_heads(m)
    # img_norm_cfg mean / std 127.5, to_rgb; Pad size_divisor 64
    pre = m.data_preprocessor
    assert (pre.mean, pre.std, pre.bgr_to_rgb, pre.pad_size_divisor) == (
        [127.5] * 3, [127.5] * 3, True, 64)
    steps = cfg.train_dataloader.dataset.pipeline
    assert [t.type for t in steps] == ['LoadImageFromFile', 'LoadAnnotations', 'RandomFlip',
                                       'RandomChoice', 'RandomCrop', 'PackDetInputs']
    scales = [(s, 1333) for s in range(480, 801, 32)]
    first, second = steps[3].transforms
    assert [t.type for t in first] == ['RandomChoiceResize'] and first[0].scales == scales
    assert [t.type for t in second] == ['RandomChoiceResize', 'RandomCrop',
                                        'RandomChoiceResize']
    assert second[0].scales == [(400, 1333), (500, 1333), (600, 1333)]
    assert (second[1].crop_type, second[1].crop_size, second[1].allow_negative_crop) == (
        'absolute_range', (384, 600), True)
    assert second[2].scales == scales and steps[2].prob == 0.5
    assert (steps[4].crop_type, steps[4].crop_size, steps[4].allow_negative_crop) == (
        'absolute_range', (1024, 1024), True)
    assert_test_resize_1333x800(cfg)
    # AdamW lr 1e-4, betas (0.9, 0.999), wd 0.05; CustomLayerDecayOptimizerConstructorMMDet
    # num_layers 48, layer_decay_rate 0.95 (backbone.pos_embed decayed); grad_clip None
    o = cfg.optim_wrapper
    assert (o.optimizer.type, o.optimizer.lr, o.optimizer.betas, o.optimizer.weight_decay,
            o.paramwise_cfg.layer_decay_rate, o.paramwise_cfg.decay_embeddings,
            o.clip_grad) == ('AdamW', 1e-4, (0.9, 0.999), 0.05, 0.95, True, None)
    # deepspeed=True, zero_configs/adam_zero1_bf16.json: stage 1, bf16, no clipping
    s = cfg.strategy
    assert (s.type, s.zero_optimization.stage, s.bf16.enabled, s.with_cp) == (
        'InternViTDeepSpeedStrategy', 1, True, True)
    assert s.zero_optimization.reduce_bucket_size == 5e8 and s.zero_optimization.overlap_comm
    assert 'gradient_clipping' not in s and 'fp16' not in s
    assert_schedule_1x(cfg)
    # checkpoint_config interval 1, max_keep_ckpts 1; evaluation interval 1, save_best None
    ck = cfg.default_hooks.checkpoint
    assert (ck.interval, ck.max_keep_ckpts, ck.get('save_best')) == (1, 1, None)


def test_internvl_frozen_leaf_is_the_upstream_recipe():
    """InternVL-MMDetSeg mask_rcnn_intern_vit_6b_fpn_1x_coco_bs16_frozen.py, field by
    field."""
    cfg = Config.fromfile(str(LEAVES / FROZEN))
    m, b, n = cfg.model, cfg.model.backbone, cfg.model.neck
    assert (m.type, m.fp32_heads) == ('InternViTMaskRCNN', True)
    # InternViT6B(pretrain_size=224, img_size=256, patch_size=16, depth=48,
    # drop_path_rate=0.0, freeze_vit=True, out_indices=[47], window_attn=[True] * 48,
    # window_size=[16] * 48, output_dtype='float32', with_fpn=True); cls_token None;
    # ToFloat16Hook: backbone fp16
    assert (b.arch, b.patch_size, b.img_size, b.pos_embed_mode, b.with_cls_token) == (
        'internvit-6b-224px', 16, 256, 'resize', False)
    assert (b.window_size, b.global_attn_indexes, b.window_pad_mask, b.out_indices,
            b.drop_path_rate) == (16, [], False, [-1], 0.0)
    assert (b.frozen, b.param_dtype, b.init_cfg.patch_resize) == (True, 'float16', 'bicubic')
    assert n.norm_cfg == dict(type='LN2d', eps=1e-6) and n.fpn_norm_cfg is None
    assert n.init_cfg == dict(type='Kaiming', layer='ConvTranspose2d')
    assert_plain_mask_rcnn_heads(m)
    # mmdet 2.x coco_instance.py: ImageNet mean / std, to_rgb, Resize (1333, 800)
    # keep_ratio, RandomFlip 0.5, Pad 32
    pre = m.data_preprocessor
    assert (pre.mean, pre.std, pre.bgr_to_rgb, pre.pad_size_divisor) == (
        [123.675, 116.28, 103.53], [58.395, 57.12, 57.375], True, 32)
    steps = cfg.train_dataloader.dataset.pipeline
    assert [t.type for t in steps] == ['LoadImageFromFile', 'LoadAnnotations', 'Resize',
                                       'RandomFlip', 'PackDetInputs']
    assert (steps[2].scale, steps[2].keep_ratio, steps[3].prob) == ((1333, 800), True, 0.5)
    assert_test_resize_1333x800(cfg)
    # AdamW 1e-4, wd 0.05, CustomLayerDecayOptimizerConstructor(layer_decay_rate=1.0)
    o = cfg.optim_wrapper
    assert (o.type, o.optimizer.type, o.optimizer.lr, o.optimizer.weight_decay,
            o.paramwise_cfg.layer_decay_rate) == ('OptimWrapper', 'AdamW', 1e-4, 0.05, 1.0)
    # zero_configs/adam_zero1_fp16.json
    s = cfg.strategy
    assert s.zero_optimization == dict(
        stage=1, allgather_partitions=True, allgather_bucket_size=1e9, overlap_comm=True,
        reduce_scatter=True, reduce_bucket_size=1e9, contiguous_gradients=True)
    assert s.fp16 == dict(enabled=True, auto_cast=True, loss_scale=0, initial_scale_power=32,
                          loss_scale_window=1000, hysteresis=2, min_loss_scale=1)
    assert (s.gradient_clipping, s.inputs_to_half, s.get('bf16')) == (1.0, ['inputs'], None)
    assert_schedule_1x(cfg)
    # checkpoint_config max_keep_ckpts 2; evaluation save_best 'auto'
    ck = cfg.default_hooks.checkpoint
    assert (ck.interval, ck.max_keep_ckpts, ck.save_best) == (1, 2, 'auto')


def assert_plain_mask_rcnn_heads(m):
    """mmdet 2.x mask_rcnn_r50_fpn.py's heads, unchanged by both configs."""
    assert (m.rpn_head.type, m.rpn_head.get('num_convs', 1), m.rpn_head.feat_channels) == (
        'RPNHead', 1, 256)
    assert m.rpn_head.anchor_generator == dict(type='AnchorGenerator', scales=[8],
                                               ratios=[0.5, 1.0, 2.0],
                                               strides=[4, 8, 16, 32, 64])
    bh, mh = m.roi_head.bbox_head, m.roi_head.mask_head
    assert (bh.type, bh.fc_out_channels, bh.num_classes, bh.reg_class_agnostic,
            bh.get('norm_cfg')) == ('Shared2FCBBoxHead', 1024, 80, False, None)
    assert (bh.loss_bbox.type, bh.bbox_coder.target_stds) == ('L1Loss', [0.1, 0.1, 0.2, 0.2])
    assert (mh.type, mh.num_convs, mh.conv_out_channels, mh.get('norm_cfg')) == (
        'FCNMaskHead', 4, 256, None)
    assert m.roi_head.bbox_roi_extractor.roi_layer == dict(type='RoIAlign', output_size=7,
                                                           sampling_ratio=0)
    assert m.roi_head.mask_roi_extractor.roi_layer.output_size == 14
    assert m.train_cfg.rpn_proposal.nms_pre == 2000 and m.test_cfg.rpn.nms_pre == 1000
    assert (m.train_cfg.rcnn.sampler.num, m.train_cfg.rcnn.mask_size) == (512, 28)
    assert (m.test_cfg.rcnn.score_thr, m.test_cfg.rcnn.max_per_img) == (0.05, 100)


def assert_test_resize_1333x800(cfg):
    test = cfg.test_dataloader.dataset.pipeline
    resize = next(t for t in test if t.type == 'Resize')
    assert (resize.scale, resize.keep_ratio) == ((1333, 800), True)
    assert cfg.val_dataloader.batch_size == 1


def assert_schedule_1x(cfg):
    """schedule_1x: warm-up linear 500 iterations from 0.001, steps at 8 and 11, 12
    epochs, 8 GPUs x 2 images."""
    warm, step = cfg.param_scheduler
    assert (warm.type, warm.start_factor, warm.end, warm.by_epoch) == (
        'LinearLR', 0.001, 500, False)
    assert (step.type, step.milestones, step.gamma) == ('MultiStepLR', [8, 11], 0.1)
    assert cfg.train_cfg.max_epochs == 12 and cfg.train_cfg.val_interval == 1
    assert cfg.train_dataloader.batch_size == 2 and cfg.auto_scale_lr.base_batch_size == 16


def test_our_windowed_leaf_is_ours():
    """The frozen design of this package keeps its own settings (the header lists them)."""
    cfg = Config.fromfile(str(LEAVES / OURS))
    b = cfg.model.backbone
    assert (b.img_size, b.pos_embed_mode, b.window_size, b.global_attn_indexes,
            b.get('window_pad_mask', True), b.get('with_cls_token', True)) == (
        1344, 'crop', 14, [11, 23, 35, 47], True, True)
    assert cfg.model.roi_head.bbox_head.type == 'Shared4Conv1FCBBoxHead'
    assert 'strategy' not in cfg and 'Differences from the upstream' in \
        (LEAVES / OURS).read_text()


# ---------------------------------------------------------------------- equivalence
@pytest.mark.parametrize('recipe', ['piip', 'internvl'])
def test_converted_upstream_detector_computes_the_same(recipe, tmp_path):
    leaf, _, _ = RECIPES[recipe]
    ref = upstream(recipe)
    src = save_upstream_checkpoint(state_dict_of(ref), tmp_path / 'upstream.pth', 'bare')
    if recipe == 'piip':  # the command line
        out = convert(src, tmp_path / 'ours.pth')
        assert f'bare container, {DEPTH} blocks, a 14 x 14 position grid, no class ' \
            'token, 80 classes: COCO' in out
    else:
        from conftest import load_tool
        load_tool('piip2mmdet').convert_file(str(src), str(tmp_path / 'ours.pth'))
    model = build(tiny_leaf(leaf))
    ckpt = load_plain_checkpoint(model, str(tmp_path / 'ours.pth'))
    assert ckpt['meta']['dataset_meta']['classes'] == coco_classes()
    g = torch.Generator().manual_seed(1)
    for h, w in INPUTS[recipe]:
        img = torch.randn(1, 3, h, w, generator=g)
        rois = rois_for(h, w)
        ours = ours_outputs(model, img, rois)
        assert_same_outputs(ours, ref.outputs(img, rois))
        assert ours['feats'][0].shape[-2:] == (h // 4, w // 4)


@pytest.mark.parametrize('container', ['mmcv', 'module', 'deepspeed', 'deepspeed-dir'])
def test_every_upstream_container_converts(container, tmp_path):
    ref = upstream('piip', seed=3)
    sd = state_dict_of(ref)
    if container == 'mmcv':  # mmdet 2.x's CheckpointHook meta
        meta = dict(mmdet_version='2.28.1', CLASSES=tuple(coco_classes()), epoch=12,
                    iter=87960, config="model = dict(type='MaskRCNN')\n")
        src = save_upstream_checkpoint(sd, tmp_path / 'epoch_12.pth', 'mmcv', meta)
    elif container == 'module':
        src = save_upstream_checkpoint(sd, tmp_path / 'module.pth', 'module')
    else:
        folder = tmp_path / 'global_step87960'
        folder.mkdir()
        src = save_upstream_checkpoint(sd, folder / 'mp_rank_00_model_states.pt',
                                       'deepspeed')
        src = folder if container == 'deepspeed-dir' else src
    from conftest import load_tool
    summary = load_tool('piip2mmdet').convert_file(str(src), str(tmp_path / 'ours.pth'))
    assert (summary['container'], summary['grid'], summary['cls_token']) == (
        container.split('-')[0], '14 x 14', False)
    model = build(tiny_leaf(PIIP))
    load_plain_checkpoint(model, str(tmp_path / 'ours.pth'))
    img = torch.randn(1, 3, 256, 320, generator=torch.Generator().manual_seed(2))
    assert_same_outputs(ours_outputs(model, img, rois_for(256, 320)),
                        ref.outputs(img, rois_for(256, 320)))


def test_unconverted_checkpoint_names_the_converter(tmp_path):
    """Through our strict loader, mmengine's load_checkpoint (strict=False, as mmdet's
    init_detector and inferencers load) and load_state_dict."""
    from mmdet.apis import init_detector
    from mmengine.runner import load_checkpoint
    sd = state_dict_of(upstream('piip'))
    src = save_upstream_checkpoint(sd, tmp_path / 'upstream.pth', 'bare')
    model = build(tiny_leaf(PIIP))
    for load in (lambda: load_plain_checkpoint(model, str(src)),
                 lambda: load_checkpoint(model, str(src), map_location='cpu'),
                 lambda: model.load_state_dict(sd, strict=False)):
        with pytest.raises(CheckpointMismatchError, match='piip2mmdet.py'):
            load()
    cfg = tiny_leaf(PIIP)
    cfg.pop('strategy')
    with pytest.raises(CheckpointMismatchError, match='piip2mmdet.py'):
        init_detector(cfg, str(src), device='cpu')


def test_converter_refuses_what_it_cannot_map(tmp_path):
    from conftest import load_tool
    piip2mmdet = load_tool('piip2mmdet')
    sd = state_dict_of(upstream('piip'))
    sd['backbone.up1.4.weight'] = torch.ones(WIDTH)  # with_final_norm=True
    torch.save(sd, tmp_path / 'final_norm.pth')
    with pytest.raises(ValueError, match='up1.4.weight'):
        piip2mmdet.convert_file(str(tmp_path / 'final_norm.pth'), str(tmp_path / 'x.pth'))
    torch.save({'backbone.pos_embed': torch.zeros(1, 5, 4)}, tmp_path / 'bb.pth')
    with pytest.raises(ValueError, match='not a PIIP / InternVL Mask R-CNN'):
        piip2mmdet.convert_file(str(tmp_path / 'bb.pth'), str(tmp_path / 'x.pth'))
    assert not (tmp_path / 'x.pth').exists()


@pytest.mark.parametrize('recipe,img_size', [('piip', 224), ('internvl', 256)])
def test_pretrained_weights_load_as_upstream_transforms_them(recipe, img_size, tmp_path):
    """The 224-px backbone file (16 x 16 grid, 14-px kernel, fp32) into the leaf's
    backbone: upstream's init_weights gives the same position grid (PIIP: resized to
    14 x 14; InternVL: 16 x 16, unchanged) and bicubic 16-px kernel."""
    from internvit_reference import hf_state_dict_for, to_old_layout
    arch = dict(arch='internvit-6b-224px', embed_dims=WIDTH, num_heads=HEADS,
                num_layers=DEPTH, mlp_hidden_dims=4 * WIDTH)
    old = to_old_layout(hf_state_dict_for(dict(arch, patch_size=14), grid=16, seed=2))
    torch.save(old, tmp_path / 'intern_vit_6b_224px.pth')
    b = Config.fromfile(str(LEAVES / RECIPES[recipe][0])).model.backbone
    b.update(embed_dims=WIDTH, num_heads=HEADS, num_layers=DEPTH, mlp_hidden_dims=4 * WIDTH,
             param_dtype=None)
    b.init_cfg.checkpoint = str(tmp_path / 'intern_vit_6b_224px.pth')
    b.pop('type')
    model = InternViT(**b)
    model.init_weights()
    ref = upstream(recipe).backbone
    ref.init_weights(old['module'], variant='piip' if recipe == 'piip' else 'internvl',
                     img_size=img_size)
    assert model.pos_embed.shape == ref.pos_embed.shape
    torch.testing.assert_close(model.pos_embed, ref.pos_embed, rtol=0, atol=1e-6)
    torch.testing.assert_close(model.patch_embed.weight, ref.patch_embed.proj.weight,
                               rtol=0, atol=1e-6)
    assert model.cls_token is None


# ------------------------------------------------------------------------ windows
@pytest.mark.parametrize('h,w', [(5, 7), (4, 4), (9, 3)])
def test_unmasked_window_padding_is_upstreams(h, w):
    """window_pad_mask=False: the normed tokens zero-padded to whole windows, the
    padding left in the softmax, as upstream's WindowedAttention; True masks it."""
    torch.manual_seed(0)
    kw = dict(arch='internvit-6b-224px', embed_dims=WIDTH, num_heads=HEADS, num_layers=1,
              mlp_hidden_dims=64, patch_size=16, img_size=64, with_cls_token=False,
              window_size=4, init_cfg=None)
    unmasked, masked = (InternViT(window_pad_mask=m, **kw) for m in (False, True))
    unmasked.init_weights()
    ref = WindowedAttention(WIDTH, HEADS, 4)
    blk = unmasked.blocks[0]
    with torch.no_grad():
        for p in list(blk.attn.parameters()):
            p.normal_(0, 0.3)
        ref.load_state_dict(blk.attn.state_dict())
        masked.load_state_dict(unmasked.state_dict())
        x = torch.randn(2, h * w, WIDTH)
        torch.testing.assert_close(blk.window_attn(x, (h, w)), ref(x, h, w),
                                   rtol=1e-5, atol=1e-5)
        same = torch.allclose(masked.blocks[0].window_attn(x, (h, w)), ref(x, h, w),
                              rtol=1e-5, atol=1e-5)
    assert same == (h % 4 == 0 and w % 4 == 0)  # they differ only where there is padding


# ---------------------------------------------------------------- position rule
def test_one_position_rule_for_every_input_of_a_run():
    """'crop' (ours): a 1333 x 800 input (1344 x 800 padded) and a square one both take
    their absolute positions from the top-left of the 1344-px grid, and an input beyond
    it is an error naming img_size; 'resize' (upstream): each input gets the grid
    stretched to its own patch grid, in fp32, as upstream's _get_pos_embed."""
    kw = dict(arch='internvit-300m-448px', embed_dims=8, num_layers=1, num_heads=2,
              mlp_hidden_dims=16, patch_size=16, init_cfg=None, with_cls_token=False)
    crop = InternViT(img_size=1344, pos_embed_mode='crop', **kw)
    torch.nn.init.normal_(crop.pos_embed)
    grid = crop.pos_embed[0, 1:].unflatten(0, (84, 84))
    wide, square = crop._pos_embed_for(50, 84), crop._pos_embed_for(50, 50)
    torch.testing.assert_close(wide[0, 1:].unflatten(0, (50, 84)), grid[:50])
    torch.testing.assert_close(square[0, 1:].unflatten(0, (50, 50)), grid[:50, :50])
    # the patch at (row 10, column 20) has one embedding whatever the input's shape
    assert torch.equal(wide[0, 1 + 10 * 84 + 20], square[0, 1 + 10 * 50 + 20])
    with torch.no_grad():
        out = crop(torch.randn(1, 3, 800, 1333))[0]
    assert out.shape[-2:] == (50, 84)
    for size in ((800, 1400), (1400, 1400)):
        with pytest.raises(ValueError, match=r'img_size=\(1344, 1344\)'):
            crop(torch.randn(1, 3, *size))
    resize = InternViT(img_size=224, pos_embed_mode='resize', **kw)
    torch.nn.init.normal_(resize.pos_embed)
    for h, w in ((52, 84), (32, 32)):
        rows = resize.pos_embed[:, 1:].reshape(1, 14, 14, -1).permute(0, 3, 1, 2)
        want = F.interpolate(rows.float(), size=(h, w), mode='bicubic',
                             align_corners=False).reshape(1, -1, h * w).permute(0, 2, 1)
        torch.testing.assert_close(resize._pos_embed_for(h, w)[:, 1:], want, rtol=0,
                                   atol=0)


def test_every_crop_config_covers_its_largest_input():
    """The detection configs with absolute positions: their grid covers a 1333 x 800
    image padded to the preprocessor's divisor (the largest input they see)."""
    import glob
    for path in sorted(glob.glob(str(ROOT / 'configs' / 'internvit_det' / '*.py')) +
                       glob.glob(str(ROOT / 'configs' / 'internvit_adapter_det' / '*.py'))):
        cfg = Config.fromfile(path)
        b = cfg.model.backbone
        if b.get('pos_embed_mode') != 'crop':
            continue
        d = cfg.model.data_preprocessor.get('pad_size_divisor', 1)
        longest = math.ceil(1333 / d) * d
        assert b.img_size >= longest, path


def test_pyramid_init_is_upstreams():
    """up1..up4 ``_init_weights``: ConvTranspose2d weight ~ N(0, sqrt(2 / fan_out)),
    fan_out = k * k * out_channels, bias 0; the channels-first LayerNorm ones / zeros."""
    torch.manual_seed(0)
    model = build(tiny_leaf(PIIP))
    r = model.neck.rescale
    for conv in (r.upsample_4x[0], r.upsample_4x[3], r.upsample_2x[0]):
        std = math.sqrt(2.0 / (4 * conv.out_channels))
        assert abs(conv.weight.std().item() / std - 1) < 0.05
        assert abs(conv.weight.mean().item()) < 0.05 * std and not conv.bias.any()
    ln = r.upsample_4x[1]
    assert type(ln).__name__ == 'LayerNorm2d' and ln.eps == 1e-6
    assert torch.equal(ln.weight, torch.ones(WIDTH)) and not ln.bias.any()
    assert all(m.norm is None for m in model.neck.fpn.lateral_convs)


# ---------------------------------------------------------------------- fp32 heads
def test_fp32_heads_compute_the_fpn_and_heads_in_fp32_on_half_weights():
    """As DeepSpeed holds the model (bf16 weights): the backbone and the pyramid's
    rescales compute in bf16, the FPN and heads in fp32 on the bf16 weights' values,
    and the gradients reach the bf16 weights."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    cfg = tiny_leaf(PIIP)
    model = build(cfg)
    model.to(torch.bfloat16)
    img = torch.randn(1, 3, 128, 192).to(torch.bfloat16)
    seen = {}
    model.neck.fpn.register_forward_pre_hook(lambda m, a: seen.update(fpn=a[0][0].dtype))
    model.rpn_head.register_forward_pre_hook(lambda m, a: seen.update(rpn=a[0][0].dtype))
    with torch.no_grad():
        feats = model.extract_feat(img)
        rescaled = model.neck.rescale_maps(model.backbone(img))
        fp32_fpn = {k: v.float() for k, v in model.neck.fpn.state_dict().items()}
        ref_fpn = type(model.neck.fpn)([WIDTH] * 4, CH, 5)
        ref_fpn.load_state_dict(fp32_fpn)
        want = ref_fpn([f.float() for f in rescaled])
    assert seen['fpn'] == torch.float32 and all(f.dtype == torch.float32 for f in feats)
    for a, b in zip(feats, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert model.neck.fpn.lateral_convs[0].conv.weight.dtype == torch.bfloat16
    model.train()
    sample = DetDataSample(metainfo=dict(img_shape=(128, 192), pad_shape=(128, 192),
                                         batch_input_shape=(128, 192), scale_factor=(1, 1)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[10., 20., 90., 100.]]),
                                       labels=torch.tensor([3]))
    from mmdet.structures.mask import BitmapMasks
    mask = torch.zeros(1, 128, 192, dtype=torch.uint8)
    mask[:, 20:100, 10:90] = 1
    sample.gt_instances.masks = BitmapMasks(mask.numpy(), 128, 192)
    losses = model.loss(img, [sample])
    assert seen['rpn'] == torch.float32
    total, _ = model.parse_losses(losses)
    assert total.dtype == torch.float32 and math.isfinite(total.item())
    total.backward()
    for p in (model.roi_head.bbox_head.fc_cls.weight, model.rpn_head.rpn_conv.weight,
              model.neck.fpn.fpn_convs[0].conv.weight, model.backbone.blocks[0].attn.qkv.weight):
        assert p.dtype == torch.bfloat16 and p.grad is not None and p.grad.abs().sum() > 0


# ------------------------------------------------------------------------ metafile
def test_metafile_lists_piips_released_checkpoint():
    import yaml
    meta = yaml.safe_load((LEAVES / 'metafile.yaml').read_text())
    weights = {m['Name']: m for m in meta['Models'] if 'Weights' in m}
    assert list(weights) == [Path(PIIP).stem]
    m = weights[Path(PIIP).stem]
    assert m['Weights'] == ('https://huggingface.co/OpenGVLab/PIIP/resolve/main/detection/'
                            'mask_rcnn_internvit_6b_fpn_1x_coco_bs16_ms.pth')
    assert 'piip2mmdet.py' in m['Metadata']['Weights Format']


# ------------------------------------------------------------------------ DeepSpeed
def test_piip_leaf_trains_under_its_own_zero1(tmp_path):
    """The PIIP leaf as it is (DeepSpeed ZeRO-1 bf16, fp32 heads), only shrunk and
    pointed at the embedded COCO data, trains in one process through
    tools/dist_train.sh: finite losses, DeepSpeed checkpoint directories, the pyramid,
    FPN, heads and backbone all move, and DeepSpeed holds every weight in bf16."""
    import glob
    import json
    import os

    from conftest import load_tool

    from internvit_dense.dist import free_port
    coco = tmp_path / 'coco'
    load_tool('prepare_demo_data').main(['--task', 'det', '--coco-out', str(coco),
                                         '--min-images', '1'])
    cfg = tmp_path / 'piip_tiny.py'
    cfg.write_text(
        f"_base_ = '{LEAVES / PIIP}'\n"
        f"data_root = '{coco}/'\n"
        f"model = dict(backbone=dict(embed_dims={WIDTH}, num_heads={HEADS}, "
        f"num_layers={DEPTH}, mlp_hidden_dims={4 * WIDTH}, init_cfg=None,\n"
        "                            drop_path_rate=0.0),\n"
        f"    neck=dict(in_channels={WIDTH}, out_channels={CH}),\n"
        f"    rpn_head=dict(in_channels={CH}, feat_channels={CH}),\n"
        "    train_cfg=dict(rpn=dict(sampler=dict(num=64)),\n"
        "                   rpn_proposal=dict(nms_pre=200, max_per_img=100),\n"
        "                   rcnn=dict(sampler=dict(num=64))),\n"
        f"    roi_head=dict(bbox_roi_extractor=dict(out_channels={CH}),\n"
        f"        bbox_head=dict(in_channels={CH}, fc_out_channels={FC}),\n"
        f"        mask_roi_extractor=dict(out_channels={CH}),\n"
        f"        mask_head=dict(in_channels={CH}, conv_out_channels={CH})))\n"
        "train_pipeline = [dict(type='LoadImageFromFile'),\n"
        "    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),\n"
        "    dict(type='Resize', scale=(320, 256), keep_ratio=True),\n"
        "    dict(type='RandomCrop', crop_type='absolute_range', crop_size=(256, 256),\n"
        "         allow_negative_crop=True),\n"
        "    dict(type='PackDetInputs')]\n"
        "train_dataloader = dict(num_workers=0, persistent_workers=False,\n"
        "    dataset=dict(data_root=data_root, pipeline=train_pipeline, indices=4))\n"
        "val_dataloader = None\nval_cfg = None\nval_evaluator = None\n"
        "test_dataloader = None\ntest_cfg = None\ntest_evaluator = None\n"
        "train_cfg = dict(max_epochs=2, val_interval=100)\n"
        "optim_wrapper = dict(optimizer=dict(lr=1e-3))\n"
        "default_hooks = dict(logger=dict(interval=1), checkpoint=dict(max_keep_ckpts=2))\n"
        "randomness = dict(seed=0)\n")
    work = tmp_path / 'work'
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()))
    proc = subprocess.run(['bash', str(ROOT / 'tools' / 'dist_train.sh'), str(cfg), '1',
                           '--work-dir', str(work)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-6000:]
    losses = [json.loads(line)['loss'] for path in glob.glob(str(work / '*/vis_data/scalars.json'))
              for line in Path(path).read_text().splitlines() if '"loss"' in line]
    assert len(losses) == 4 and all(map(math.isfinite, losses)), losses
    read = load_tool('consolidate_zero_checkpoint').read_zero_checkpoint
    first, _ = read(str(work / 'epoch_1.pth'))
    last, _ = read(str(work / 'epoch_2.pth'))
    for key in ('roi_head.bbox_head.fc_cls.weight', 'roi_head.mask_head.conv_logits.weight',
                'rpn_head.rpn_conv.weight', 'neck.fpn.lateral_convs.0.conv.weight',
                'neck.rescale.upsample_4x.1.weight', 'backbone.blocks.0.attn.qkv.weight',
                'backbone.pos_embed'):
        assert not torch.equal(first[key].float(), last[key].float()), key
    states = glob.glob(str(work / 'epoch_2.pth' / '*model_states.pt'))[0]
    from internvit_dense.engine.deepspeed import check_deepspeed_checkpoint
    check_deepspeed_checkpoint(str(work / 'epoch_2.pth'))
    module = torch.load(states, map_location='cpu', weights_only=False)['module']
    assert {v.dtype for v in module.values()} == {torch.bfloat16}


def test_internvl_leaf_strategy_is_deepspeed_fp16_zero1(tmp_path):
    """DeepSpeed's fp16 needs CUDA, so the run is not tried here; its strategy is built
    from the leaf: fp16 with the upstream loss scaling, clipping 1.0, images cast to
    the model's half precision, and the optimizer wrapper handed to DeepSpeed as is."""
    from internvit_dense.engine import InternViTDeepSpeedStrategy
    cfg = Config.fromfile(str(LEAVES / FROZEN))
    kwargs = dict(cfg.strategy)
    kwargs.pop('type')
    strategy = InternViTDeepSpeedStrategy(work_dir=str(tmp_path), **kwargs)
    optim = strategy._to_deepspeed_optim_wrapper(cfg.optim_wrapper)
    assert optim['type'] == 'DeepSpeedOptimWrapper' and 'bf16' not in strategy.config
    assert strategy.config['fp16']['initial_scale_power'] == 32
    assert strategy.config['gradient_clipping'] == 1.0
    assert strategy.config['zero_optimization']['stage'] == 1
    assert strategy._inputs_to_half == ['inputs'] and strategy.with_cp is False
