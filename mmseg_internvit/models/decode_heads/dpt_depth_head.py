# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""DPT for depth on four ViT blocks, as the DINOv2 NYUv2 DPT probe builds it."""
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.decode_heads.dpt_head import FeatureFusionBlock, ReassembleBlocks
from mmseg.registry import MODELS

from .depth_bins_head import DepthHead


@MODELS.register_module()
class DPTDepthHead(DepthHead):
    """DPT (Ranftl et al. 2021) regressing depth from four ViT blocks.

    The body is mmseg's own DPT pieces (``ReassembleBlocks``: each block's patches with
    its class token read out by a projection, reassembled to 4x / 2x / 1x / 0.5x of the
    patch grid; ``FeatureFusionBlock`` x 4, coarse to fine; a 3x3 projection), as
    mmseg's ``DPTHead`` assembles them for segmentation. The output is DINOv2's depth
    head instead of a classifier: 3x3 conv to ``channels / 2``, 2x bilinear upsampling
    (``align_corners=True``), 3x3 conv to 32, ReLU, 1x1 conv to one channel, then
    ``relu(x) + min_depth`` (DINOv2's regression, ``classify=False``).

    Args:
        in_channels (Sequence[int]): the four blocks' widths (derived from the backbone
            by the depth estimator).
        channels (int): width of the fusion path (DINOv2: 256).
        post_process_channels (Sequence[int], optional): the four reassembled widths;
            None: DINOv2's rule, ``width / 8, width / 4, width / 2, width``.
        readout_type (str): how the class token enters (``'project'``, DINOv2's).
        norm_cfg (dict, optional): norm of the fusion units (DINOv2: None).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 channels: int = 256,
                 in_index: Sequence[int] = (0, 1, 2, 3),
                 post_process_channels: Optional[Sequence[int]] = None,
                 readout_type: str = 'project',
                 patch_size: int = 14,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: dict = dict(type='ReLU'),  # noqa: B006 (read only)
                 min_depth: float = 1e-3,
                 max_depth: float = 10.0,
                 align_corners: bool = False,
                 loss_decode: Optional[Union[dict, Sequence[dict]]] = None,
                 init_cfg: Optional[dict] = None):
        super(BaseDecodeHead, self).__init__(init_cfg=init_cfg)
        if not isinstance(in_channels, (list, tuple)) or len(in_channels) != 4 \
                or len(set(in_channels)) != 1 or len(in_index) != 4:
            raise ValueError(f'DPTDepthHead reads four blocks of one width: in_channels '
                             f'{in_channels!r}, in_index {in_index!r}')
        self._init_depth(min_depth, max_depth, align_corners, loss_decode)
        width = in_channels[0]
        if post_process_channels is None:
            post_process_channels = [width // 2**(3 - i) for i in range(4)]
        self.in_channels, self.in_index, self.channels = list(in_channels), list(in_index), channels
        self.input_transform = 'multiple_select'
        self.reassemble_blocks = ReassembleBlocks(width, list(post_process_channels),
                                                  readout_type, patch_size)
        self.convs = nn.ModuleList(
            ConvModule(c, channels, kernel_size=3, padding=1, act_cfg=None, bias=False)
            for c in post_process_channels)
        self.fusion_blocks = nn.ModuleList(
            FeatureFusionBlock(channels, act_cfg, norm_cfg) for _ in range(4))
        self.fusion_blocks[0].res_conv_unit1 = None  # the coarsest has nothing to fuse
        self.project = ConvModule(channels, channels, kernel_size=3, padding=1,
                                  norm_cfg=norm_cfg)
        self.depth_convs = nn.ModuleList([
            nn.Conv2d(channels, channels // 2, kernel_size=3, padding=1),
            nn.Conv2d(channels // 2, 32, kernel_size=3, padding=1),
            nn.Conv2d(32, 1, kernel_size=1)])

    def forward(self, inputs) -> torch.Tensor:
        picked = [inputs[i] for i in self.in_index]
        if not all(isinstance(x, (list, tuple)) and len(x) == 2 for x in picked):
            raise TypeError('DPTDepthHead needs [map, class_token] outputs: set the '
                            "backbone's output_cls_token=True")
        maps = self.reassemble_blocks([list(x) for x in picked])
        maps = [conv(x) for conv, x in zip(self.convs, maps)]
        out = self.fusion_blocks[0](maps[-1])
        for i in range(1, 4):
            out = self.fusion_blocks[i](out, maps[-(i + 1)])
        out = self.depth_convs[0](self.project(out))
        out = F.interpolate(out, scale_factor=2, mode='bilinear', align_corners=True)
        out = self.depth_convs[2](torch.relu(self.depth_convs[1](out)))
        return torch.relu(out) + self.min_depth
