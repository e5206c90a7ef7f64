# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
from typing import List

import torch
from mmcv.cnn import build_norm_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS


@MODELS.register_module()
class BNLinearHead(BaseDecodeHead):
    """Linear probe: BatchNorm + 1x1 conv over one feature map, or over several maps
    resized to the first one's size and concatenated (``input_transform=
    'resize_concat'``), as in the published InternViT / DINOv2 linear evaluations.

    Everything else (input selection, dropout, the 1x1 ``conv_seg`` classifier,
    losses, resizing to the label size) is mmseg's ``BaseDecodeHead``; ``channels`` is
    the width of the (concatenated) input, so no projection sits between BN and the
    classifier.
    """

    def __init__(self, **kwargs) -> None:
        in_channels = kwargs.get('in_channels')
        width = sum(in_channels) if isinstance(in_channels, (list, tuple)) else in_channels
        if kwargs.setdefault('channels', width) != width:
            raise ValueError(f"BNLinearHead: channels ({kwargs['channels']}) must equal "
                             f'the input width ({width}); it has no projection layer')
        super().__init__(**kwargs)
        self.bn = build_norm_layer(self.norm_cfg or dict(type='BN'), self.channels)[1]

    def forward(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        return self.cls_seg(self.bn(self._transform_inputs(inputs)))
