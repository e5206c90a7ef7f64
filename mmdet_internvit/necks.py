# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
from typing import List, Sequence, Tuple

import torch
from mmdet.models.necks import FPN
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from mmseg.models.necks import Feature2Pyramid


@MODELS.register_module()
class SimpleFeaturePyramid(BaseModule):
    """ViTDet-style pyramid for a single-scale ViT, from existing parts: mmseg's
    ``Feature2Pyramid`` rescales the stride-p map by ``scales`` (transposed convs up,
    max-pool down) and mmdet's ``FPN`` maps every level to ``out_channels`` and adds
    the extra max-pooled level(s) up to ``num_outs``.

    Args:
        in_channels (int): backbone width.
        out_channels (int): channels of every output level.
        scales (Sequence[float]): rescales of the backbone map, largest first.
        num_outs (int): number of output levels (len(scales) + pooled extras).
        norm_cfg (dict): norm of the transposed-conv stage and of the FPN convs.
    """

    def __init__(self, in_channels: int, out_channels: int = 256,
                 scales: Sequence[float] = (4, 2, 1, 0.5), num_outs: int = 5,
                 norm_cfg: dict = dict(type='SyncBN', requires_grad=True),
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_scales = len(scales)
        self.rescale = Feature2Pyramid(in_channels, rescales=list(scales),
                                       norm_cfg=norm_cfg)
        self.fpn = FPN([in_channels] * len(scales), out_channels, num_outs,
                       norm_cfg=norm_cfg)

    def forward(self, inputs: List[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        # the backbone returns the last block's map only; every scale starts from it
        feats = list(inputs) * self.num_scales if len(inputs) == 1 else list(inputs)
        # mmcv's RoIAlign misreads channels-last maps (open-mmlab/mmcv#2203). Every op
        # below keeps its input's memory layout, so contiguous inputs give the RoI heads
        # contiguous levels whatever backbone feeds this neck (a no-op when they are).
        feats = [f.contiguous() for f in feats]
        return self.fpn(self.rescale(feats))
