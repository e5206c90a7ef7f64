# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmdet.models.necks import FPN
from mmdet.registry import MODELS
from mmengine.model import BaseModule


class Rescale(BaseModule):
    """The 4x / 2x / 1x / 0.5x rescales of a plain-ViT map (ViTDet's simple pyramid):
    two 2x2 transposed convs with norm + GELU between, one transposed conv, identity,
    2x2 max-pool. The same modules, under the same names, as mmseg's ``Feature2Pyramid``
    (so checkpoints are interchangeable); written here because importing mmseg's would
    make mmdet_internvit import all of ``mmseg.models``."""

    def __init__(self, channels: int, rescales: Sequence[float], norm_cfg: dict) -> None:
        super().__init__()
        self.rescales = list(rescales)
        for k in self.rescales:
            if k == 4:
                self.upsample_4x = nn.Sequential(
                    nn.ConvTranspose2d(channels, channels, 2, 2),
                    build_norm_layer(norm_cfg, channels)[1], nn.GELU(),
                    nn.ConvTranspose2d(channels, channels, 2, 2))
            elif k == 2:
                self.upsample_2x = nn.Sequential(nn.ConvTranspose2d(channels, channels, 2, 2))
            elif k == 1:
                self.identity = nn.Identity()
            elif k == 0.5:
                self.downsample_2x = nn.MaxPool2d(2, 2)
            elif k == 0.25:
                self.downsample_4x = nn.MaxPool2d(4, 4)
            else:
                raise ValueError(f'scales entry {k} is not one of 4, 2, 1, 0.5, 0.25')

    def forward(self, inputs: List[torch.Tensor]) -> List[torch.Tensor]:
        if len(inputs) != len(self.rescales):
            raise ValueError(f'{len(inputs)} maps for {len(self.rescales)} rescales')
        names = {4: 'upsample_4x', 2: 'upsample_2x', 1: 'identity', 0.5: 'downsample_2x',
                 0.25: 'downsample_4x'}
        return [getattr(self, names[k])(x) for k, x in zip(self.rescales, inputs)]


_SAME = 'same'


@MODELS.register_module()
class SimpleFeaturePyramid(BaseModule):
    """ViTDet-style pyramid for a single-scale ViT: :class:`Rescale` (mmseg's
    ``Feature2Pyramid`` design) rescales the stride-p map by ``scales`` (transposed
    convs up, max-pool down) and mmdet's ``FPN`` maps every level to ``out_channels`` and adds
    the extra max-pooled level(s) up to ``num_outs``.

    The upstream detectors (PIIP's and the InternVL authors' mmdet 2.x code) build the
    rescales inside their backbone (``up1..up4``: a channels-first LayerNorm between the
    4x branch's transposed convs, ``norm_cfg=dict(type='LN2d', eps=1e-6)`` here, and
    those convs initialised N(0, sqrt(2 / fan_out)), ``init_cfg=dict(type='Kaiming',
    layer='ConvTranspose2d')``) and put mmdet's plain FPN (no norm,
    ``fpn_norm_cfg=None``) after it; ``tools/model_converters/piip2mmdet.py`` maps their
    keys here.

    Args:
        in_channels (int): backbone width.
        out_channels (int): channels of every output level.
        scales (Sequence[float]): rescales of the backbone map, largest first.
        num_outs (int): number of output levels (len(scales) + pooled extras).
        norm_cfg (dict, optional): norm of the 4x branch (between its transposed
            convs). Defaults to SyncBN.
        fpn_norm_cfg (dict, optional): norm of the FPN's convs; None: none (mmdet's
            FPN default). ``'same'`` (the default): ``norm_cfg``.
        init_cfg (dict | list[dict], optional): mmengine init of the neck's layers
            (the FPN's own Xavier init of its convs applies in any case).
    """

    def __init__(self, in_channels: int, out_channels: int = 256,
                 scales: Sequence[float] = (4, 2, 1, 0.5), num_outs: int = 5,
                 norm_cfg: Optional[dict] = None,
                 fpn_norm_cfg: Union[dict, None, str] = _SAME,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        norm_cfg = norm_cfg or dict(type='SyncBN', requires_grad=True)
        if isinstance(fpn_norm_cfg, str):
            if fpn_norm_cfg != _SAME:
                raise ValueError(f"fpn_norm_cfg must be a dict, None or 'same', got "
                                 f'{fpn_norm_cfg!r}')
            fpn_norm_cfg = norm_cfg
        self.num_scales = len(scales)
        self.rescale = Rescale(in_channels, scales, norm_cfg)
        self.fpn = FPN([in_channels] * len(scales), out_channels, num_outs,
                       norm_cfg=fpn_norm_cfg)

    def rescale_maps(self, inputs: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """The rescaled backbone maps (the part of this neck that the upstream
        detectors compute inside their backbone), before the FPN."""
        # the backbone returns the last block's map only; every scale starts from it
        feats = list(inputs) * self.num_scales if len(inputs) == 1 else list(inputs)
        # mmcv's RoIAlign misreads channels-last maps (open-mmlab/mmcv#2203), and the
        # FPN's convolutions keep their input's memory layout: contiguous inputs, and
        # contiguous rescaled maps (LN2d normalises a permuted view and hands back a
        # channels-last map), give the RoI heads contiguous levels whatever backbone
        # feeds this neck (no-ops when they are).
        feats = [f.contiguous() for f in feats]
        return [f.contiguous() for f in self.rescale(feats)]

    def forward(self, inputs: List[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        return self.fpn(self.rescale_maps(inputs))
