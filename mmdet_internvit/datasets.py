# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
import math
import os.path as osp

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS


@DATASETS.register_module()
class CheckedCocoDataset(CocoDataset):
    """mmdet's ``CocoDataset`` that stops, naming the annotation file, the image and
    the annotation id, on an image file that does not exist or a malformed box.

    mmdet's own fails later with a message that names neither the file nor the
    annotation for a missing image, crashes on a box of the wrong length, and silently
    drops boxes with a negative or non-finite size.
    """

    def parse_data_info(self, raw_data_info: dict) -> dict:
        img = raw_data_info['raw_img_info']
        where = f"{self.ann_file}: image {img.get('file_name')!r} (id {img.get('id')})"
        for ann in raw_data_info['raw_ann_info']:
            box = ann.get('bbox')
            ok = (isinstance(box, (list, tuple)) and len(box) == 4
                  and all(isinstance(v, (int, float)) and math.isfinite(v) for v in box)
                  and box[2] > 0 and box[3] > 0)
            if not ok:
                raise ValueError(f"{where}: annotation id {ann.get('id')} has a malformed "
                                 f'bbox {box!r} (expected [x, y, w, h] with w, h > 0)')
        info = super().parse_data_info(raw_data_info)
        path = info['img_path']
        if '://' not in path and not osp.isfile(path):
            raise FileNotFoundError(f'{where} references {path}, which does not exist')
        return info
