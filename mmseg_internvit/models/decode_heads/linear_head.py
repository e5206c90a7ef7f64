# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
from typing import List, Optional

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.losses import CrossEntropyLoss
from mmseg.registry import MODELS

from .upsampled_ce import upsampled_cross_entropy


@MODELS.register_module()
class BNLinearHead(BaseDecodeHead):
    """Linear probe: BatchNorm + 1x1 conv over one feature map, or over several maps
    resized to the first one's size and concatenated (``input_transform=
    'resize_concat'``), as in the published InternViT / DINOv2 linear evaluations.

    Everything else (input selection, dropout, the 1x1 ``conv_seg`` classifier,
    losses, resizing to the label size) is mmseg's ``BaseDecodeHead``; ``channels`` is
    the width of the (concatenated) input, so no projection sits between BN and the
    classifier.

    ``fused_loss``: the training loss. mmseg computes it on the logits resized to the
    label size, a full-size tensor per head kept for backward, which costs more than
    the head itself (and, in a probing sweep, N times over). With a plain
    ``CrossEntropyLoss`` (no sigmoid, mask or class weights, mean reduction) and no
    pixel sampler, ``upsampled_cross_entropy`` gives the same loss, gradient and
    ``acc_seg`` to float rounding without that tensor. ``None`` (default): fused when
    the loss is such a CE, mmseg's path otherwise; ``True``: fused or an error;
    ``False``: always mmseg's path.
    """

    def __init__(self, fused_loss: Optional[bool] = None, **kwargs) -> None:
        in_channels = kwargs.get('in_channels')
        width = sum(in_channels) if isinstance(in_channels, (list, tuple)) else in_channels
        if kwargs.setdefault('channels', width) != width:
            raise ValueError(f"BNLinearHead: channels ({kwargs['channels']}) must equal "
                             f'the input width ({width}); it has no projection layer')
        super().__init__(**kwargs)
        self.bn = build_norm_layer(self.norm_cfg or dict(type='BN'), self.channels)[1]
        reason = self._unfusable()
        if fused_loss and reason:
            raise ValueError(f'BNLinearHead(fused_loss=True): {reason}; use '
                             'fused_loss=None (mmseg\'s loss when not fusable) or False')
        self.fused_loss = reason is None and fused_loss is not False

    def _unfusable(self) -> Optional[str]:
        """Why the fused loss cannot stand for this head's mmseg loss (None: it can)."""
        if self.sampler is not None:
            return 'a pixel sampler weights the loss'
        losses = self.loss_decode
        if isinstance(losses, nn.ModuleList):
            if len(losses) != 1:
                return f'{len(losses)} losses in loss_decode'
            losses = losses[0]
        if type(losses) is not CrossEntropyLoss:
            return f'loss_decode is {type(losses).__name__}, not CrossEntropyLoss'
        if losses.use_sigmoid or losses.use_mask:
            return 'the CrossEntropyLoss uses a sigmoid or a mask'
        if losses.class_weight is not None:
            return 'the CrossEntropyLoss has class weights'
        if losses.reduction != 'mean':
            return f'the CrossEntropyLoss reduction is {losses.reduction!r}, not mean'
        return None

    def forward(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        return self.cls_seg(self.bn(self._transform_inputs(inputs)))

    def loss_by_feat(self, seg_logits: torch.Tensor, batch_data_samples) -> dict:
        if not self.fused_loss:
            return super().loss_by_feat(seg_logits, batch_data_samples)
        ce = self.loss_decode
        if isinstance(ce, nn.ModuleList):
            ce = ce[0]
        labels = self._stack_batch_gt(batch_data_samples).squeeze(1)
        loss, acc = upsampled_cross_entropy(
            seg_logits, labels, align_corners=self.align_corners,
            ignore_index=self.ignore_index, loss_weight=ce.loss_weight,
            avg_non_ignore=ce.avg_non_ignore)
        return {ce.loss_name: loss, 'acc_seg': acc}
