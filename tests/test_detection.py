"""COCO detection / instance segmentation with InternViT on mmdet 3.x."""
import glob
import json
import os
import os.path as osp
from pathlib import Path

import pytest
import torch
from conftest import assert_optimizer_holds_trainable_params, load_tool, train_user_config
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

import mmdet_internvit  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
DET_CONFIGS = sorted(glob.glob(str(ROOT / 'configs' / 'internvit_det' / '*.py')) +
                     glob.glob(str(ROOT / 'configs' / 'demo' / '*coco*.py')))
DEMO_CONFIG = str(ROOT / 'configs' / 'demo' /
                  'mask-rcnn_internvit-tiny-frozen_1xb2-600it_demo-coco.py')
TINY = 32


def tiny_det_cfg(cfg):
    b = cfg.model.backbone
    b.update(embed_dims=TINY, num_heads=2, mlp_hidden_dims=2 * TINY, init_cfg=None,
             with_cp=False)
    cfg.model.neck.in_channels = TINY
    if cfg.model.neck.norm_cfg.type == 'SyncBN':
        cfg.model.neck.norm_cfg = dict(type='BN', requires_grad=True)
    return cfg


@pytest.fixture(scope='session')
def coco_root(tmp_path_factory):
    prepare_demo_data = load_tool('prepare_demo_data')
    out = tmp_path_factory.mktemp('coco')
    prepare_demo_data.main(['--task', 'det', '--coco-out', str(out), '--min-images', '1'])
    return str(out)


PIIP = 'mask-rcnn_internvit-6b_simplefpn_8xb2-ms-1x_coco.py'
FROZEN = 'mask-rcnn_internvit-6b-frozen_simplefpn_8xb2-1x_coco.py'  # the InternVL setting
UPSTREAM = (PIIP, FROZEN)  # the recipes: tests/test_detection_upstream.py


def test_detection_config_set():
    names = {osp.basename(p) for p in DET_CONFIGS}
    for name in (FROZEN, 'mask-rcnn_internvit-6b-frozen-win14_simplefpn_8xb2-1x_coco.py',
                 'mask-rcnn_internvit-300m_simplefpn_32xb2-lsj-100e_coco.py',
                 'cascade-mask-rcnn_internvit-300m_simplefpn_32xb2-lsj-100e_coco.py',
                 'mask-rcnn_internvit-6b_simplefpn_32xb2-lsj-100e_coco.py',
                 'cascade-mask-rcnn_internvit-6b_simplefpn_32xb2-lsj-100e_coco.py',
                 PIIP):
        assert name in names


@pytest.mark.parametrize('path', [p for p in DET_CONFIGS if 'demo' not in p],
                         ids=osp.basename)
def test_detection_batch_matches_the_file_name(path):
    # "32xb2": 2 images per GPU, and mmdet's lr auto-scaling keyed to 32 x 2
    import re
    gpus, per_gpu = map(int, re.search(r'_(\d+)xb(\d+)-', osp.basename(path)).groups())
    cfg = Config.fromfile(path)
    assert cfg.train_dataloader.batch_size == per_gpu
    assert cfg.auto_scale_lr.base_batch_size == gpus * per_gpu


@pytest.mark.parametrize('path', DET_CONFIGS, ids=osp.basename)
def test_every_detection_config_builds_and_runs_tiny(path):
    from mmdet.registry import MODELS
    cfg = tiny_det_cfg(Config.fromfile(path))
    assert cfg.default_scope == 'mmdet'
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    model.init_weights()
    b = model.backbone
    # our designs: windowed attention with global blocks; the upstream recipes: global
    # throughout (PIIP) or windows of 16 everywhere (InternVL)
    assert b.patch_size == 16 and (b.window_size > 0 and b.global_attn_indexes or
                                   osp.basename(path) == PIIP and b.window_size == 0 or
                                   osp.basename(path) == FROZEN and b.window_size == 16)
    feats = model.extract_feat(torch.randn(2, 3, 128, 160))
    out_ch = cfg.model.neck.out_channels
    assert [tuple(f.shape) for f in feats] == [
        (2, out_ch, 128 // s, 160 // s) for s in (4, 8, 16, 32)] + [(2, out_ch, 2, 3)]
    assert_optimizer_holds_trainable_params(model, cfg.optim_wrapper)


def test_roi_features_do_not_depend_on_the_batch():
    # Regression: the backbone's map used to be channels-last in memory, the pyramid's
    # convolutions kept that layout and mmcv's RoIAlign reads its input as NCHW without
    # checking (open-mmlab/mmcv#2203). A 2-image training batch gave the heads
    # scrambled RoI features, a 1-image test batch correct ones: the demo's losses fell
    # while its AP stayed near 0.
    from mmdet.registry import MODELS
    from mmdet.structures.bbox import bbox2roi
    cfg = tiny_det_cfg(Config.fromfile(DEMO_CONFIG))
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    model.init_weights()
    imgs = torch.randn(2, 3, 160, 192)
    boxes = torch.tensor([[8., 16., 90., 120.], [40., 30., 180., 150.], [0., 0., 32., 32.]])
    rois = bbox2roi([boxes])  # all on image 0
    with torch.no_grad():
        assert all(f.is_contiguous() for f in model.backbone(imgs))
        alone, batched = model.extract_feat(imgs[:1]), model.extract_feat(imgs)
        assert all(f.is_contiguous() for f in batched)
        # the neck guards against any backbone that hands it channels-last maps
        cl = [f.contiguous(memory_format=torch.channels_last)
              for f in model.backbone(imgs)]
        assert all(f.is_contiguous() for f in model.neck(cl))
        for extractor in (model.roi_head.bbox_roi_extractor,
                          model.roi_head.mask_roi_extractor):
            n = extractor.num_inputs
            torch.testing.assert_close(extractor(batched[:n], rois),
                                       extractor(alone[:n], rois), atol=1e-4, rtol=1e-4)


# 48 blocks of width 3200 and the patch-16 kernel (5.9B), without the position grid
BLOCKS_6B = 5_903_366_400 - 3200 * 257


@pytest.mark.parametrize('name,frozen,expected_total,positions', [
    (FROZEN, True, 6_049_444_464, 1 + 16 * 16),
    ('mask-rcnn_internvit-6b-frozen-win14_simplefpn_8xb2-1x_coco.py', True,
     6_073_112_560, 1 + 84 * 84),
    ('mask-rcnn_internvit-6b_simplefpn_32xb2-lsj-100e_coco.py', False, 6_073_112_560,
     1 + 84 * 84),
    ('cascade-mask-rcnn_internvit-6b_simplefpn_32xb2-lsj-100e_coco.py', False,
     6_108_666_366, 1 + 84 * 84),
    (PIIP, False, 6_049_252_464, 1 + 14 * 14),
])
def test_6b_detectors_on_the_meta_device(name, frozen, expected_total, positions):
    # the counts of the README's detection table
    model_info = load_tool('model_info')
    path = str(ROOT / 'configs' / 'internvit_det' / name)
    model, backbone, _ = model_info.build(model_info.parse_args([path]))
    trainable, total = model_info.count_params(model)
    backbone_total = sum(p.numel() for p in backbone.parameters())
    # the position grid: 14 x 14 (PIIP), 16 x 16 (InternVL), 84 x 84 (ours, 1344 px);
    # the class token only in ours
    cls_token = 0 if name in UPSTREAM else 3200
    assert backbone_total == BLOCKS_6B + 3200 * positions + cls_token
    assert total == expected_total
    assert trainable == (total - backbone_total if frozen else total)


# ----------------------------------------------------------------------------- data
def write_coco(tmp_path, images, annotations):
    (tmp_path / 'train2017').mkdir(exist_ok=True)
    (tmp_path / 'annotations').mkdir(exist_ok=True)
    for im in images:
        if im.pop('_exists', True):
            Image.new('RGB', (im['width'], im['height'])).save(
                tmp_path / 'train2017' / im['file_name'])
    ann = tmp_path / 'annotations' / 'instances_train2017.json'
    ann.write_text(json.dumps(dict(images=images, annotations=annotations,
                                   categories=[dict(id=1, name='person')])))
    return ann


def checked_dataset(tmp_path, ann):
    from mmdet_internvit import CheckedCocoDataset
    init_default_scope('mmdet')
    return CheckedCocoDataset(data_root=str(tmp_path), ann_file=str(ann),
                              data_prefix=dict(img='train2017/'), pipeline=[],
                              metainfo=dict(classes=('person', )))


def good_ann(**kw):
    a = dict(id=7, image_id=1, category_id=1, bbox=[1, 2, 10, 12], area=120, iscrowd=0,
             segmentation=[[1, 2, 11, 2, 11, 14]])
    a.update(kw)
    return a


def test_checked_coco_loads_a_good_file(tmp_path):
    ann = write_coco(tmp_path, [dict(id=1, file_name='a.jpg', width=32, height=32)],
                     [good_ann()])
    ds = checked_dataset(tmp_path, ann)
    assert len(ds) == 1 and ds[0]['instances'][0]['bbox'] == [1, 2, 11, 14]


def test_missing_image_is_named(tmp_path):
    ann = write_coco(tmp_path, [dict(id=1, file_name='gone.jpg', width=32, height=32,
                                     _exists=False)], [good_ann()])
    with pytest.raises(FileNotFoundError, match=r"image 'gone.jpg' \(id 1\).*gone.jpg"):
        checked_dataset(tmp_path, ann)


@pytest.mark.parametrize('bbox', [[1, 2, 10], [1, 2, -3, 4], [1, 2, 'a', 4],
                                  [1, 2, float('nan'), 4], None])
def test_malformed_box_is_named(tmp_path, bbox):
    ann = write_coco(tmp_path, [dict(id=1, file_name='a.jpg', width=32, height=32)],
                     [good_ann(bbox=bbox)])
    with pytest.raises(ValueError, match=r"instances_train2017.json: image 'a.jpg' "
                       r'\(id 1\): annotation id 7 has a malformed bbox'):
        checked_dataset(tmp_path, ann)


# ----------------------------------------------------------------------------- end to end
def test_demo_coco_data(coco_root):
    with open(osp.join(coco_root, 'annotations', 'instances_train2017.json')) as f:
        d = json.load(f)
    assert d['images'] and d['annotations'] and len(d['categories']) == 80
    for a in d['annotations']:
        assert a['bbox'][2] > 0 and a['bbox'][3] > 0 and a['segmentation']['counts']
        assert osp.isfile(osp.join(coco_root, 'train2017',
                                   next(i['file_name'] for i in d['images']
                                        if i['id'] == a['image_id'])))


def test_mmdet_packaged_train_and_test(coco_root, tmp_path):
    """mmdet's own tools/train.py and tools/test.py (shipped in the pip package) run
    our detection config: its runner_type brings InternViTRunner."""
    import subprocess
    import sys

    import mmdet
    tools = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools')
    cfg = tmp_path / 'user_det.py'
    cfg.write_text(
        f"_base_ = '{DEMO_CONFIG}'\n"
        f"data_root = '{coco_root}/'\n"
        "model = dict(backbone=dict(init_cfg=None))\n"
        "train_dataloader = dict(num_workers=0, persistent_workers=False,\n"
        "    dataset=dict(data_root=data_root))\n"
        "val_dataloader = dict(num_workers=0, persistent_workers=False,\n"
        "    dataset=dict(data_root=data_root, indices=2))\n"
        "test_dataloader = val_dataloader\n"
        "val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')\n"
        "test_evaluator = val_evaluator\n"
        "train_cfg = dict(max_iters=2, val_interval=2)\n"
        "default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1))\n"
        "custom_hooks = []\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for args in (['train.py', cfg, '--work-dir', tmp_path / 'w'],
                 ['test.py', cfg, tmp_path / 'w' / 'iter_2.pth', '--work-dir',
                  tmp_path / 't']):
        proc = subprocess.run([sys.executable, osp.join(tools, args[0])] +
                              [str(a) for a in args[1:]], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-4000:]
    assert 'coco/bbox_mAP' in proc.stdout + proc.stderr


def test_detection_train_val_and_infer_end_to_end(coco_root, tmp_path):
    infer = load_tool('infer')
    from safetensors.torch import save_file

    from mmseg_internvit import InternViT
    # a patch-14 backbone of the demo's size stands in for the segmentation demo's
    seg_backbone = InternViT(arch='internvit-300m-448px', embed_dims=96, num_layers=6,
                             num_heads=3, mlp_hidden_dims=384, img_size=196)
    seg_backbone.init_weights()
    weights = tmp_path / 'backbone.safetensors'
    save_file(seg_backbone.state_dict(), str(weights))
    user_cfg, ckpt, log = train_user_config(tmp_path, DEMO_CONFIG, (
        f"model = dict(backbone=dict(init_cfg=dict(checkpoint='{weights}')))\n"
        f"data_root = '{coco_root}/'\n"
        "train_dataloader = dict(num_workers=0, persistent_workers=False,\n"
        "    dataset=dict(data_root=data_root))\n"
        "val_dataloader = dict(num_workers=0, persistent_workers=False,\n"
        "    dataset=dict(data_root=data_root, indices=3))\n"
        "test_dataloader = val_dataloader\n"
        "val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')\n"
        "test_evaluator = val_evaluator\n"))
    assert 'coco/bbox_mAP before training' in log and 'coco/segm_mAP' in log
    assert 'resized patch-embedding kernel from (14, 14) to (16, 16)' in log
    # the curves are plotted against the iteration of each evaluation (mmdet's runtime
    # logs metrics by epoch unless told otherwise: every point landed at 0)
    plot_curves = load_tool('plot_curves')
    _, val = plot_curves.read_scalars(str(ckpt.parent))
    assert [r['step'] for r in val if 'coco/bbox_mAP' in r] == [0, 2]
    img = sorted(glob.glob(osp.join(coco_root, 'val2017', '*.jpg')))[0]
    out = infer.main([str(user_cfg), str(ckpt), img, '--out-dir', str(tmp_path / 'inf'),
                      '--score-thr', '0.0'])
    assert Image.open(out[0]).size == Image.open(img).size
    # mmdet's own inferencer on the same config and checkpoint: the class names come
    # from the checkpoint (the demo's 9 COCO categories), not COCO's 80
    from mmdet.apis import DetInferencer
    inferencer = DetInferencer(model=str(user_cfg), weights=str(ckpt), device='cpu')
    result = inferencer(img, out_dir=str(tmp_path / 'detinf'), no_save_vis=False)
    classes = inferencer.model.dataset_meta['classes']
    saved = torch.load(ckpt, weights_only=True)['meta']['dataset_meta']['classes']
    assert tuple(classes) == tuple(saved) and len(result['predictions']) == 1
    assert glob.glob(str(tmp_path / 'detinf' / 'vis' / '*'))
