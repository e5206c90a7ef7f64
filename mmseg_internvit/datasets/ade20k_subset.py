# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
import hashlib
import math
import os.path as osp
import random
from typing import List, Optional

from mmengine.logging import print_log
from mmseg.datasets import ADE20KDataset
from mmseg.registry import DATASETS


@DATASETS.register_module()
class ADE20KSubsetDataset(ADE20KDataset):
    """ADE20K restricted to a seeded random part of its images (few-shot runs), chosen
    as the InternVL authors' few-shot runs chose it.

    Their ``ADE20KDataset(max_image_num=20210 // 16)`` (InternVL ``segmentation/
    mmseg_custom/datasets/ade.py``) shuffles the file-name-sorted image list with
    Python's ``random.shuffle``, whose state the training script has just seeded with
    the run's seed (``random.seed(seed)``), and keeps the first ``max_image_num``. Here
    the same permutation comes from ``random.Random(subset_seed).shuffle`` of the
    sorted list, so the subset depends only on the file list, the fraction and the
    seed, never on what else used the global ``random`` state; the kept images stay in
    the shuffled order, as theirs. ``floor(fraction * N)`` images are kept, their
    ``20210 // k`` for ``fraction = 1 / k``.

    Args:
        subset_fraction (float): fraction of the images to keep, in (0, 1].
        subset_seed (int, optional): seed of the shuffle. ``None`` (the few-shot
            configs): the run's seed (``randomness.seed``; with none set, the random
            seed mmengine draws and logs), which ``InternViTRunner`` passes in when it
            builds the dataloader, as the upstream shuffle used the run seed. To pick
            the subset of a released run, set the seed its log records.

    The chosen file names are kept in ``subset_files``; a short fingerprint is logged
    and ``RecordSubsetHook`` writes the full list into the work dir. Every rank draws
    the same subset, since they share the run's seed; with
    ``randomness.diff_rank_seed=True`` each rank has its own seed and subset, as
    upstream's ``--diff_seed`` gave.
    """

    def __init__(self, subset_fraction: float = 1.0, subset_seed: Optional[int] = None,
                 **kwargs) -> None:
        if isinstance(subset_fraction, bool) or not isinstance(subset_fraction,
                                                               (int, float)):
            raise TypeError(f'subset_fraction must be a float, got {subset_fraction!r}')
        if not 0 < subset_fraction <= 1:
            raise ValueError(f'subset_fraction must be in (0, 1], got {subset_fraction}')
        if subset_seed is not None and (isinstance(subset_seed, bool)
                                        or not isinstance(subset_seed, int)):
            raise TypeError(f'subset_seed must be an int or None, got {subset_seed!r}')
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
        if self.subset_seed is None:
            raise ValueError(
                f'ADE20KSubsetDataset ({self.data_root}): subset_seed is None and no run '
                "seed was passed in. Build it through InternViTRunner (the configs' "
                'runner_type), which passes the run seed to it, also inside dataset '
                'wrappers, or set subset_seed in its config')
        # 1e-9: 20210 * (1 / 4) must give 5052, as 20210 // 4 does, not 5051.999...
        keep = max(1, math.floor(self.subset_fraction * total + 1e-9))
        random.Random(self.subset_seed).shuffle(data_list)
        data_list = data_list[:keep]
        self.subset_files = [osp.basename(d['img_path']) for d in data_list]
        digest = hashlib.sha1('\n'.join(self.subset_files).encode()).hexdigest()[:12]
        print_log(f'ADE20K subset: {keep} of {total} images (fraction '
                  f'{self.subset_fraction:g}, seed {self.subset_seed}, sha1 {digest})',
                  logger='current')
        return data_list
