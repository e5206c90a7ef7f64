# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
from typing import List, Tuple

import torch
from mmseg.models.necks import Feature2Pyramid
from mmseg.registry import MODELS


@MODELS.register_module()
class LastMapFeature2Pyramid(Feature2Pyramid):
    """mmseg's ``Feature2Pyramid`` with every level built from one map, the backbone's
    last: a simple feature pyramid (ViTDet) with Feature2Pyramid's modules and names.

    The PIIP InternViT-6B UperNet baseline builds its 4x / 2x / 1x / 0.5x levels so
    (``use_simple_fpn=True`` in PIIP's ``internvit_6b.py``: all four branches take the
    output of block 47); ``Feature2Pyramid`` itself takes one map per level. The
    parameters are Feature2Pyramid's, so checkpoints of either map onto the other.
    """

    def forward(self, inputs: List[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        if not inputs:
            raise ValueError('LastMapFeature2Pyramid got no feature maps')
        return super().forward([inputs[-1]] * len(self.rescales))
