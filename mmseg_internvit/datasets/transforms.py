# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations, LoadDepthAnnotation
from mmseg.registry import TRANSFORMS
from mmseg.utils import datafrombytes

_MISSING = object()


@TRANSFORMS.register_module()
class LoadCheckedAnnotations(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` that fails loudly, naming the file, on a label map
    it cannot decode or one with values outside ``[0, num_classes)`` and the ignore
    index. mmseg's own raises an error without the path for an undecodable file and
    loads out-of-range values silently, which then corrupt the loss and the metric.

    Args:
        num_classes (int): number of classes after ``reduce_zero_label``.
        ignore_index (int): the one value allowed beyond the classes.
        **kwargs: ``LoadAnnotations`` arguments.

    Inputs without a ``seg_map_path`` (an image alone, as mmseg's inferencers pass it)
    go through unchanged, so inference works with the configs' test pipelines.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) \
                or num_classes <= 0:
            raise ValueError(f'num_classes must be a positive int, got {num_classes!r}')
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        # An input without a seg_map_path key is an image alone (mmseg's
        # MMSegInferencer / inference_model, which drop only transforms named exactly
        # 'LoadAnnotations'): there is nothing to load. Dataset items always carry the
        # key; a None or unreadable path there is an error.
        if 'seg_map_path' not in results:
            return results
        return super().transform(results)

    def _load_seg_map(self, results: dict) -> None:
        path = results.get('seg_map_path')
        try:
            super()._load_seg_map(results)
        except Exception as exc:  # PIL/cv2 errors do not say which file
            raise ValueError(f'cannot read segmentation map {path}: {exc}') from exc
        seg = results['gt_seg_map']
        bad = np.unique(seg[(seg >= self.num_classes) & (seg != self.ignore_index)])
        if bad.size:
            reduced = results.get('reduce_zero_label', self.reduce_zero_label)
            raw = (bad + 1) if reduced else bad
            raise ValueError(
                f'segmentation map {path} has label values {raw[:10].tolist()} outside '
                f'the {self.num_classes} classes'
                + (' (file values 1..N after reduce_zero_label)' if reduced else '')
                + f' and the ignore index {self.ignore_index}')

    def __repr__(self) -> str:
        return (f'{super().__repr__()[:-1]}, num_classes={self.num_classes}, '
                f'ignore_index={self.ignore_index})')


@TRANSFORMS.register_module()
class LoadCheckedDepthAnnotation(LoadDepthAnnotation):
    """mmseg's ``LoadDepthAnnotation`` that names the file at fault: a missing or
    undecodable depth map, one that is not a single-channel 16-bit PNG (NYUv2's
    layout: millimetres, 0 where the sensor measured nothing) or a float map (``.npy``
    style; NaN where unmeasured), one whose size differs from the image's, negative
    depths, or a map with no pixel in ``[min_depth, max_depth]`` after
    ``depth_rescale_factor``. Unmeasured pixels stay 0 / NaN: the depth heads and
    ``DepthMetric`` leave them out, never as numbers.

    Inputs without a ``depth_map_path`` (an image alone, as the inferencers pass it)
    go through unchanged.
    """

    def __init__(self, min_depth: float = 1e-3, max_depth: float = 10.0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0 <= min_depth < max_depth:
            raise ValueError(f'need 0 <= min_depth < max_depth, got {min_depth}, '
                             f'{max_depth}')
        self.min_depth, self.max_depth = min_depth, max_depth

    def transform(self, results: dict) -> dict:
        path = results.get('depth_map_path', _MISSING)
        if path is _MISSING:
            return results
        if path is None or not fileio.exists(path, backend_args=self.backend_args):
            raise FileNotFoundError(f'depth map {path} does not exist')
        try:
            raw = datafrombytes(fileio.get(path, self.backend_args),
                                backend=self.decode_backend)
        except Exception as exc:  # cv2 / numpy errors do not say which file
            raise ValueError(f'cannot read depth map {path}: {exc}') from exc
        if raw is None:
            raise ValueError(f'cannot read depth map {path}: not an image the '
                             f'{self.decode_backend!r} backend decodes')
        if raw.ndim != 2:
            raise ValueError(f'depth map {path} has shape {raw.shape}; a depth map has '
                             'one channel')
        if raw.dtype != np.uint16 and raw.dtype.kind != 'f':
            raise ValueError(f'depth map {path} is {raw.dtype}; NYUv2-layout depth is a '
                             '16-bit PNG (millimetres) or a float map')
        image_shape = results.get('ori_shape', results.get('img_shape'))
        if image_shape is not None and tuple(raw.shape) != tuple(image_shape[:2]):
            raise ValueError(f'depth map {path} is {raw.shape[0]}x{raw.shape[1]} but its '
                             f'image {results.get("img_path")} is '
                             f'{image_shape[0]}x{image_shape[1]}')
        depth = raw.astype(np.float32) * self.depth_rescale_factor
        if bool((depth < 0).any()):  # NaN compares False: unmeasured is allowed
            raise ValueError(f'depth map {path} has negative depths '
                             f'(min {np.nanmin(depth):.4g})')
        valid = (depth >= max(self.min_depth, 1e-12)) & (depth <= self.max_depth)
        if not bool(valid.any()):
            raise ValueError(f'depth map {path} has no pixel in [{self.min_depth}, '
                             f'{self.max_depth}] (after depth_rescale_factor='
                             f'{self.depth_rescale_factor})')
        results['gt_depth_map'] = depth
        results['seg_fields'].append('gt_depth_map')
        results['depth_rescale_factor'] = self.depth_rescale_factor
        return results


@TRANSFORMS.register_module()
class CropBox(BaseTransform):
    """Crop the image and every map in ``seg_fields`` to a fixed ``(x1, y1, x2, y2)``
    box: NYUv2's area inside the white border of its frames, (43, 45, 608, 472), which
    the DINOv2 / DINOv3 depth probes crop to before their random crop. An image
    smaller than the box is an error naming it."""

    def __init__(self, box) -> None:
        x1, y1, x2, y2 = (int(v) for v in box)
        if not (0 <= x1 < x2 and 0 <= y1 < y2):
            raise ValueError(f'CropBox: box must be (x1, y1, x2, y2) with x1 < x2, '
                             f'y1 < y2, got {box}')
        self.box = (x1, y1, x2, y2)

    def transform(self, results: dict) -> dict:
        x1, y1, x2, y2 = self.box
        h, w = results['img'].shape[:2]
        if x2 > w or y2 > h:
            raise ValueError(f'CropBox {self.box} does not fit {results.get("img_path")} '
                             f'({h}x{w})')
        results['img'] = results['img'][y1:y2, x1:x2]
        for key in results.get('seg_fields', []):
            results[key] = results[key][y1:y2, x1:x2]
        results['img_shape'] = results['img'].shape[:2]
        return results


@TRANSFORMS.register_module()
class DepthColorAug(BaseTransform):
    """The DINOv2 / DINOv3 depth probes' colour augmentation: with probability
    ``prob``, on the image scaled to [0, 1], a gamma, a brightness factor and one
    factor per channel, each uniform in its range, then clipped. (mmseg's
    ``PhotoMetricDistortion`` draws other changes.)"""

    def __init__(self, prob: float = 0.5, gamma=(0.9, 1.1), brightness=(0.75, 1.25),
                 color=(0.9, 1.1)) -> None:
        self.prob, self.gamma, self.brightness, self.color = prob, gamma, brightness, color

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        img = results['img'].astype(np.float32) / 255.0
        img = img ** np.random.uniform(*self.gamma)
        img = img * np.random.uniform(*self.brightness)
        img = img * np.random.uniform(*self.color, size=img.shape[-1])
        results['img'] = (np.clip(img, 0.0, 1.0) * 255.0).astype(np.float32)
        return results
