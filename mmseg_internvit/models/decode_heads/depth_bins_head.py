# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""Linear depth probes over depth bins, as in the DINOv2 and DINOv3 evaluations."""
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS


def valid_depth_mask(depth: torch.Tensor, min_depth: float,
                     max_depth: float) -> torch.Tensor:
    """Pixels a sensor measured and that lie in the dataset's range: NaN and 0
    (unmeasured) and depths outside [min_depth, max_depth] are False."""
    return (depth >= min_depth) & (depth <= max_depth)  # NaN compares False


class DepthHead(BaseDecodeHead):
    """What the depth heads share: the valid-depth range, the loss on valid pixels
    only, and mmseg's depth-head interface (``num_classes = out_channels = 1``;
    ``BaseDecodeHead.__init__`` builds a segmentation classifier and a sampler that
    depth needs neither of, so, as mmseg's own ``VPDDepthHead``, the subclasses set
    what its methods read themselves through :meth:`_init_depth`)."""
    num_classes = 1
    out_channels = 1

    def _init_depth(self, min_depth: float, max_depth: float, align_corners: bool,
                    loss_decode) -> None:
        if not 0 < min_depth < max_depth:
            raise ValueError(f'{type(self).__name__}: need 0 < min_depth < max_depth, '
                             f'got {min_depth} and {max_depth}')
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)
        self.align_corners = align_corners
        if loss_decode is None:
            loss_decode = dict(type='ScaleInvariantLogLoss')
        losses = [loss_decode] if isinstance(loss_decode, dict) else list(loss_decode)
        self.loss_decode = nn.ModuleList(MODELS.build(c) for c in losses)

    def _stack_batch_gt(self, batch_data_samples) -> torch.Tensor:
        return torch.stack([s.gt_depth_map.data for s in batch_data_samples])

    def loss_by_feat(self, pred: torch.Tensor, batch_data_samples) -> dict:
        target = self._stack_batch_gt(batch_data_samples).to(pred.dtype)
        pred = resize(pred, size=target.shape[2:], mode='bilinear',
                      align_corners=self.align_corners)
        valid = valid_depth_mask(target, self.min_depth, self.max_depth)
        # 0 is what mmseg's depth losses skip; never a number for a NaN / out of range
        target = torch.where(valid, target, torch.zeros_like(target))
        # An image (crop) with no valid pixel has no loss: mmseg's SiLogLoss would
        # give sqrt(0) there, whose gradient is NaN even at weight 0.
        keep = valid.flatten(1).any(1)
        losses = {}
        for loss in self.loss_decode:
            value = (loss(pred[keep], target[keep]) if bool(keep.any())
                     else pred.sum() * 0.0)
            losses[loss.loss_name] = losses.get(loss.loss_name, 0) + value
        return losses


@MODELS.register_module()
class DepthBinsHead(DepthHead):
    """Depth as the expectation over ``n_bins`` depth bins of a linear classifier.

    The DINOv2 linear depth probes ("lin. 1": the last block; "lin. 4": four blocks
    concatenated), each block's class token concatenated to every patch feature
    (``with_cls_token``), the maps upsampled ``upsample`` (4) times bilinearly, a 1x1
    classifier (no norm: DINOv2's ``BNHead`` has its BatchNorm commented out) over
    bins whose centres are spaced linearly between ``min_depth`` and ``max_depth``;
    bin scores normalised linearly (ReLU + ``eps``, divided by their sum) and the depth
    their probability-weighted sum of centres. DINOv3's linear probe: the last block
    without the class token, BatchNorm (``norm_cfg``), no upsampling (``upsample=1``:
    the prediction at patch resolution, resized to the label for the loss).

    The loss (default: :class:`ScaleInvariantLogLoss`, the probes' SigLoss; mmseg's
    ``SiLogLoss`` works too) sees only the pixels :func:`valid_depth_mask` keeps: the
    others are set to 0, which both losses leave out.

    Args:
        in_channels (int | Sequence[int]): channels of each selected block's map.
        in_index (int | Sequence[int]): which backbone outputs; several are
            concatenated (resized to the first one's size).
        with_cls_token (bool): backbone outputs are ``[map, class_token]``
            (``InternViT(output_cls_token=True)``) and the token is concatenated to
            every patch.
        upsample (int): bilinear upsampling factor before the classifier.
        n_bins (int): number of depth bins.
        min_depth, max_depth (float): the bins' range and the valid-depth range.
        norm_cfg (dict, optional): the norm before the classifier (None: none).
        loss_decode (dict | list, optional): the loss(es); None: ScaleInvariantLogLoss.
        eps (float): added to the ReLU'd bin scores before normalising.
    """

    def __init__(self,
                 in_channels: Union[int, Sequence[int]],
                 in_index: Union[int, Sequence[int]] = -1,
                 with_cls_token: bool = False,
                 upsample: int = 4,
                 n_bins: int = 256,
                 min_depth: float = 1e-3,
                 max_depth: float = 10.0,
                 norm_cfg: Optional[dict] = None,
                 eps: float = 0.1,
                 align_corners: bool = False,
                 loss_decode: Optional[Union[dict, Sequence[dict]]] = None,
                 init_cfg: Optional[dict] = None):
        if init_cfg is None:  # DINOv3's classifier init: normal(0, 0.01), bias 0
            init_cfg = dict(type='Normal', std=0.01, bias=0.0,
                            override=dict(name='conv_depth'))
        super(BaseDecodeHead, self).__init__(init_cfg=init_cfg)
        multi = isinstance(in_index, (list, tuple))
        if multi != isinstance(in_channels, (list, tuple)) or (
                multi and len(in_index) != len(in_channels)):
            raise ValueError(f'DepthBinsHead: in_channels {in_channels!r} and in_index '
                             f'{in_index!r} must both be ints or lists of one length')
        self._init_depth(min_depth, max_depth, align_corners, loss_decode)
        if n_bins < 2 or upsample < 1 or eps <= 0:
            raise ValueError(f'DepthBinsHead: n_bins ({n_bins}) >= 2, upsample '
                             f'({upsample}) >= 1 and eps ({eps}) > 0 are needed')
        self.in_index = list(in_index) if multi else in_index
        self.in_channels = in_channels
        self.input_transform = 'resize_concat' if multi else None
        self.with_cls_token = with_cls_token
        self.upsample = upsample
        self.eps = eps
        width = sum(in_channels) if multi else in_channels
        self.channels = width * (2 if with_cls_token else 1)
        self.norm = (build_norm_layer(norm_cfg, self.channels)[1] if norm_cfg
                     else nn.Identity())
        self.conv_depth = nn.Conv2d(self.channels, n_bins, 1)
        self.register_buffer('bin_centers', torch.linspace(min_depth, max_depth, n_bins),
                             persistent=False)

    def _features(self, inputs) -> torch.Tensor:
        picked = ([inputs[i] for i in self.in_index] if isinstance(self.in_index, list)
                  else [inputs[self.in_index]])
        maps = []
        for i, item in enumerate(picked):
            if self.with_cls_token:
                if not isinstance(item, (list, tuple)) or len(item) != 2:
                    raise TypeError('DepthBinsHead(with_cls_token=True) needs [map, '
                                    'class_token] outputs: set the backbone\'s '
                                    'output_cls_token=True')
                fmap, cls = item
                item = torch.cat([fmap, cls[:, :, None, None].expand_as(fmap)], 1)
            elif isinstance(item, (list, tuple)):
                raise TypeError('the backbone gives [map, class_token]; set the head\'s '
                                'with_cls_token=True or the backbone\'s '
                                'output_cls_token=False')
            if maps and item.shape[2:] != maps[0].shape[2:]:
                item = resize(item, size=maps[0].shape[2:], mode='bilinear',
                              align_corners=self.align_corners)
            maps.append(item)
        x = torch.cat(maps, 1) if len(maps) > 1 else maps[0]
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode='bilinear',
                              align_corners=self.align_corners)
        return x

    def forward(self, inputs) -> torch.Tensor:
        """(B, 1, h * upsample, w * upsample) depth in the dataset's unit."""
        scores = self.conv_depth(self.norm(self._features(inputs)))
        probs = torch.relu(scores) + self.eps
        probs = probs / probs.sum(1, keepdim=True)
        return torch.einsum('bkhw,k->bhw', probs, self.bin_centers.to(probs))[:, None]
