# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
import hashlib
import os.path as osp
import random
from typing import Union

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmseg.registry import DATASETS


@DATASETS.register_module()
class HeldOutSplit:
    """One of two disjoint parts of a dataset: a seeded held-out part of ``size``
    images, or the rest (``part='train'``).

    Two configs with the same inner dataset, ``size`` and ``seed`` split it the same
    way, so a training dataloader on ``part='train'`` never sees the images a
    ``part='held_out'`` dataloader (with the test pipeline) selects heads on. The
    held-out images are ``random.Random(seed).sample`` of the file-name-sorted list.

    Args:
        dataset (dict | BaseDataset): the dataset to split (any mmseg dataset).
        size (int | float): held-out images: a count, or a fraction in (0, 1).
        seed (int): seed of the draw.
        part (str): ``'held_out'`` or ``'train'``.
    """

    def __init__(self, dataset: Union[dict, BaseDataset], size: Union[int, float] = 0.05,
                 seed: int = 0, part: str = 'held_out') -> None:
        if part not in ('held_out', 'train'):
            raise ValueError(f"HeldOutSplit: part must be 'held_out' or 'train', got {part!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f'HeldOutSplit: seed must be an int, got {seed!r}')
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.dataset.full_init()
        total = len(self.dataset)
        if isinstance(size, bool) or not isinstance(size, (int, float)) or size <= 0 or (
                isinstance(size, float) and size >= 1):
            raise ValueError(f'HeldOutSplit: size must be an int >= 1 or a fraction in '
                             f'(0, 1), got {size!r}')
        count = size if isinstance(size, int) else max(1, round(size * total))
        if count >= total:
            raise ValueError(f'HeldOutSplit: size {size!r} holds out {count} of the '
                             f'{total} images, leaving none to train on')
        paths = [self.dataset.get_data_info(i)['img_path'] for i in range(total)]
        order = sorted(range(total), key=lambda i: paths[i])
        held = set(random.Random(seed).sample(order, count))
        keep = sorted(held) if part == 'held_out' else [i for i in range(total)
                                                        if i not in held]
        self.indices = keep
        self.part, self.size, self.seed = part, size, seed
        files = sorted(osp.basename(paths[i]) for i in held)
        digest = hashlib.sha1('\n'.join(files).encode()).hexdigest()[:12]
        print_log(f'HeldOutSplit: {part} part, {len(keep)} of {total} images (held out '
                  f'{count}, seed {seed}, sha1 of the held-out names {digest})',
                  logger='current')

    @property
    def metainfo(self) -> dict:
        return self.dataset.metainfo

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, idx: int) -> dict:
        return self.dataset[self.indices[idx]]

    def get_data_info(self, idx: int) -> dict:
        return self.dataset.get_data_info(self.indices[idx])
