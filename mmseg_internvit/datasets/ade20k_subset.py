# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
import hashlib
import os.path as osp
from typing import List

import numpy as np
from mmengine.logging import print_log
from mmseg.datasets import ADE20KDataset
from mmseg.registry import DATASETS


@DATASETS.register_module()
class ADE20KSubsetDataset(ADE20KDataset):
    """ADE20K restricted to a seeded random fraction of its images (few-shot runs).

    The subset depends only on the sorted file list, ``subset_fraction`` and
    ``subset_seed``: two runs (or two ranks) with the same arguments train on the same
    images. The chosen file names are kept in ``subset_files``; a short fingerprint is
    logged and ``RecordSubsetHook`` writes the full list into the work dir.

    Args:
        subset_fraction (float): fraction of the images to keep, in (0, 1];
            ``round(fraction * N)`` images (at least one).
        subset_seed (int): seed of the random choice.
    """

    def __init__(self, subset_fraction: float = 1.0, subset_seed: int = 0, **kwargs) -> None:
        if isinstance(subset_fraction, bool) or not isinstance(subset_fraction,
                                                               (int, float)):
            raise TypeError(f'subset_fraction must be a float, got {subset_fraction!r}')
        if not 0 < subset_fraction <= 1:
            raise ValueError(f'subset_fraction must be in (0, 1], got {subset_fraction}')
        if isinstance(subset_seed, bool) or not isinstance(subset_seed, int):
            raise TypeError(f'subset_seed must be an int, got {subset_seed!r}')
        self.subset_fraction = subset_fraction
        self.subset_seed = subset_seed
        self.subset_files: List[str] = []
        super().__init__(**kwargs)

    def load_data_list(self) -> List[dict]:
        data_list = sorted(super().load_data_list(), key=lambda d: d['img_path'])
        total = len(data_list)
        if total == 0:
            raise FileNotFoundError(
                f"no images found under {self.data_prefix.get('img_path')}")
        keep = max(1, round(self.subset_fraction * total))
        order = np.random.default_rng(self.subset_seed).permutation(total)
        data_list = [data_list[i] for i in sorted(order[:keep])]
        self.subset_files = [osp.basename(d['img_path']) for d in data_list]
        digest = hashlib.sha1('\n'.join(self.subset_files).encode()).hexdigest()[:12]
        print_log(f'ADE20K subset: {keep} of {total} images (fraction '
                  f'{self.subset_fraction:g}, seed {self.subset_seed}, sha1 {digest})',
                  logger='current')
        return data_list
