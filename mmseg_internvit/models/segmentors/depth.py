# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""mmseg's DepthEstimator with the test-time flip of the depth probing protocols."""
from typing import List, Optional

import torch
from mmengine.config import ConfigDict
from mmseg.models.segmentors import DepthEstimator
from mmseg.registry import MODELS

from .batched_slide import derive_widths


@MODELS.register_module()
class FlipDepthEstimator(DepthEstimator):
    """``DepthEstimator`` whose ``test_cfg.flip=True`` averages the prediction with
    that of the horizontally flipped image, in ``'whole'`` and ``'slide'`` mode (the
    DINOv2 / DINOv3 NYUv2 evaluations flip whole images).

    mmseg 1.2's ``DepthEstimator.inference`` runs ``'whole'`` after ``'slide'`` (its
    ``if mode == 'slide_flip' ... else`` overwrites the slide result) and flips only
    in ``'slide_flip'``; this class dispatches each mode once.

    As ``BatchedSlideEncoderDecoder``, it derives the head's ``in_channels`` from an
    InternViT backbone (a stated width must match).
    """

    def __init__(self, backbone: dict, decode_head: dict, neck: Optional[dict] = None,
                 auxiliary_head: Optional[dict] = None, **kwargs) -> None:
        backbone, decode_head, neck, auxiliary_head = derive_widths(
            backbone, decode_head, neck, auxiliary_head)
        super().__init__(backbone=backbone, decode_head=decode_head, neck=neck,
                         auxiliary_head=auxiliary_head, **kwargs)
        if isinstance(self.test_cfg, dict) and not isinstance(self.test_cfg, ConfigDict):
            self.test_cfg = ConfigDict(self.test_cfg)  # read by attribute, as from a file

    def inference(self, inputs: torch.Tensor, batch_img_metas: List[dict]) -> torch.Tensor:
        mode = self.test_cfg.get('mode', 'whole')
        if mode == 'slide_flip':
            return self.slide_flip_inference(inputs, batch_img_metas)
        if mode not in ('whole', 'slide'):
            raise ValueError(f"test_cfg.mode must be 'whole', 'slide' or 'slide_flip', "
                             f'got {mode!r}')
        run = self.slide_inference if mode == 'slide' else self.whole_inference
        depth = run(inputs, batch_img_metas)
        if self.test_cfg.get('flip', False):
            depth = (depth + run(inputs.flip(-1), batch_img_metas).flip(-1)) / 2
        return depth
