# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
import numpy as np
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS


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
