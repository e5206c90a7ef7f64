# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""The scale-invariant log loss of the DINOv2 / DINOv3 depth probes."""
import torch
import torch.nn as nn
from mmseg.registry import MODELS


@MODELS.register_module()
class ScaleInvariantLogLoss(nn.Module):
    """``sqrt(var(g) + (1 - variance_focus) * mean(g)^2)`` with
    ``g = log(pred + eps) - log(target + eps)`` over the valid pixels of the whole
    batch (``target > 0``; DepthBinsHead sets unmeasured and out-of-range pixels to 0),
    ``var`` unbiased: the loss the DINOv2 and DINOv3 NYUv2 probes train with
    (variance focus 0.85, eps 1e-3, no x10 factor). For its first ``warm_up_iters``
    training calls only the mean term, ``sqrt((1 - variance_focus) * mean(g)^2)``, as
    they warm up; the count is a buffer, so a resumed run continues it.

    mmseg's ``SiLogLoss`` is ``sqrt(mean(g^2) - 0.5 mean(g)^2)`` per image (variance
    focus 0.5, biased variance, no warm-up): use it for mmseg's own recipes.
    """

    def __init__(self, variance_focus: float = 0.85, warm_up_iters: int = 100,
                 eps: float = 1e-3, loss_weight: float = 1.0,
                 loss_name: str = 'loss_sig') -> None:
        super().__init__()
        if not 0.0 <= variance_focus <= 1.0:
            raise ValueError(f'variance_focus must be in [0, 1], got {variance_focus}')
        self.variance_focus = variance_focus
        self.warm_up_iters = int(warm_up_iters)
        self.eps = eps
        self.loss_weight = loss_weight
        self._loss_name = loss_name
        self.register_buffer('calls', torch.zeros((), dtype=torch.long))

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def forward(self, pred: torch.Tensor, target: torch.Tensor, **kwargs) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f'ScaleInvariantLogLoss: pred {tuple(pred.shape)} and target '
                             f'{tuple(target.shape)} differ')
        valid = target > 0
        if not bool(valid.any()):
            return pred.sum() * 0.0
        g = torch.log(pred[valid] + self.eps) - torch.log(target[valid] + self.eps)
        mean_term = (1.0 - self.variance_focus) * g.mean() ** 2
        warming = self.training and int(self.calls) < self.warm_up_iters
        if self.training:
            self.calls += 1
        value = mean_term if warming or g.numel() < 2 else torch.var(g) + mean_term
        # sqrt's gradient at 0 is infinite: a perfect batch gets a zero gradient instead
        return self.loss_weight * torch.sqrt(value.clamp_min(1e-12))
