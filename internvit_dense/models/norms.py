# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""Norm layers the InternVL dense recipes use and mmcv does not register."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map, computed in fp32.

    The norm between the two transposed convolutions of the InternVL authors' 4x
    pyramid branch (their ``LayerNorm(data_format='channels_first')``, eps 1e-6): the
    input and the affine weights are taken to fp32, normalised over the channel axis,
    and the result goes back to the input's dtype, so a bf16 model normalises in fp32.
    Registered as norm type ``'LN2d'``, so mmseg's ``Feature2Pyramid(norm_cfg=dict(
    type='LN2d'))`` builds that branch.
    """

    def __init__(self, num_features: int, eps: float = 1e-6, **kwargs) -> None:
        super().__init__(num_features, eps=eps, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f'LayerNorm2d expects (B, C, H, W) input, got {tuple(x.shape)}')
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        y = F.layer_norm(x.float().permute(0, 2, 3, 1), self.normalized_shape, weight,
                         bias, self.eps)
        return y.permute(0, 3, 1, 2).to(x.dtype)
