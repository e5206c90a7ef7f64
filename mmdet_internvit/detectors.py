# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""mmdet's Mask R-CNN and Cascade R-CNN for InternViT backbones: with the upstream
precision split (``fp32_heads``) and a guard against unconverted upstream checkpoints."""
from typing import Callable, List, Tuple

import torch
import torch.nn as nn
from mmdet.models.detectors import CascadeRCNN, MaskRCNN
from mmdet.registry import MODELS
from torch.func import functional_call

from internvit_dense.models.checkpoint import unconverted_layout_guard

from .layouts import unconverted_hint
from .necks import SimpleFeaturePyramid


class _InternViTDetector:
    """The part both detectors add to their mmdet class (a mixin before it).

    ``fp32_heads=True`` computes the FPN, the RPN head and the RoI heads in fp32
    whatever the precision of the rest of the model, as PIIP's and the InternVL
    authors' mmdet 2.x detectors do (their ``TwoStageDetector`` calls
    ``self.neck.to(torch.float32)``, ``self.rpn_head.to(...)``, ``self.roi_head.to(...)``
    at every forward, and their backbone, the simple pyramid's rescales ``up1..up4``
    included, runs in the bf16 / fp16 that DeepSpeed and their ``ToBFloat16HookMMDet`` /
    ``ToFloat16Hook`` hold it in, returning fp32 maps). Here: the backbone and the
    :class:`SimpleFeaturePyramid`'s rescales run in the model's precision (under the
    autocast of the call, if any); their maps are cast to fp32 and the FPN and the heads
    run with autocast off, on fp32 copies of parameters that DeepSpeed holds in bf16 /
    fp16 (their values, so the gradients reach DeepSpeed's weights: what upstream's
    ``.to(float32)`` of views that ZeRO re-points at its half-precision buffers after
    every step computes); floating buffers of those modules are kept in fp32 from their
    first use on, as that ``.to()`` leaves them. A neck that is not a
    ``SimpleFeaturePyramid`` runs whole in fp32. Under ZeRO-3, whose partitioned
    parameters DeepSpeed gathers in its own hooks, the FPN and heads compute in the
    parameters' dtype instead. In an fp32 model the switch changes nothing.

    Loading a checkpoint in the upstream (PIIP / InternVL, mmdet 2.x) layout into this
    model, through any loader (``load_from``, ``tools/test.py``, mmdet's
    ``init_detector`` and inferencers, which load with ``strict=False``), is an error
    that names the converter, ``tools/model_converters/piip2mmdet.py``, instead of a
    partial load.
    """

    def __init__(self, *args, fp32_heads: bool = False, **kwargs) -> None:
        if not isinstance(fp32_heads, bool):
            raise TypeError(f'fp32_heads must be True or False, got {fp32_heads!r}')
        super().__init__(*args, **kwargs)
        self.fp32_heads = fp32_heads
        self._outer_autocast = None  # (enabled, dtype) of the call while in fp32 heads
        self.register_load_state_dict_pre_hook(unconverted_layout_guard(unconverted_hint))

    def unconverted_checkpoint_hint(self, keys) -> str:
        """The converter to name when ``keys`` are an unconverted upstream
        detector's (read by the strict loader); empty otherwise."""
        return unconverted_hint(keys)

    # ------------------------------------------------------------------ fp32 heads
    def _fp32_parts(self) -> List[Tuple[str, nn.Module]]:
        parts = []
        if self.with_neck:
            parts.append(('neck.fpn', self.neck.fpn) if isinstance(
                self.neck, SimpleFeaturePyramid) else ('neck', self.neck))
        for name in ('rpn_head', 'roi_head'):
            if getattr(self, name, None) is not None:
                parts.append((name, getattr(self, name)))
        return parts

    def _head_dtype(self) -> torch.dtype:
        """fp32, or under ZeRO-3 the dtype DeepSpeed holds the heads in."""
        for _, part in self._fp32_parts():
            for p in part.parameters():
                if hasattr(p, 'ds_id'):
                    return p.dtype
        return torch.float32

    def _with_fp32_heads(self, fn: Callable, inputs: torch.Tensor, *args, **kwargs):
        if not self.fp32_heads or self._outer_autocast is not None:
            return fn(inputs, *args, **kwargs)
        device = inputs.device.type
        self._outer_autocast = (torch.is_autocast_enabled(device),
                                torch.get_autocast_dtype(device))
        try:
            low = {}
            if self._head_dtype() == torch.float32:
                for prefix, part in self._fp32_parts():
                    for module in part.modules():
                        for name, buf in module._buffers.items():
                            if buf is not None and buf.is_floating_point() \
                                    and buf.dtype != torch.float32:
                                module._buffers[name] = buf.float()
                    low.update({f'model.{prefix}.{n}': p.float()
                                for n, p in part.named_parameters()
                                if p.is_floating_point() and p.dtype != torch.float32})
            with torch.autocast(device_type=device, enabled=False):
                if not low:
                    return fn(inputs, *args, **kwargs)
                return functional_call(_Call(self, fn), low, (inputs, *args), kwargs,
                                       strict=False)
        finally:
            self._outer_autocast = None

    def extract_feat(self, batch_inputs: torch.Tensor):
        if not self.fp32_heads:
            return super().extract_feat(batch_inputs)
        if self._outer_autocast is None:
            return self._with_fp32_heads(self.extract_feat, batch_inputs)
        enabled, dtype = self._outer_autocast
        with torch.autocast(device_type=batch_inputs.device.type, dtype=dtype,
                            enabled=enabled):
            x = self.backbone(batch_inputs)
            if isinstance(self.neck, SimpleFeaturePyramid):
                x = self.neck.rescale_maps(x)
        if not self.with_neck:
            return x
        head_dtype = self._head_dtype()
        x = [f.to(head_dtype) for f in x]
        return self.neck.fpn(x) if isinstance(self.neck, SimpleFeaturePyramid) \
            else self.neck(x)

    def loss(self, batch_inputs, batch_data_samples):
        return self._with_fp32_heads(super().loss, batch_inputs, batch_data_samples)

    def predict(self, batch_inputs, batch_data_samples, rescale: bool = True):
        return self._with_fp32_heads(super().predict, batch_inputs, batch_data_samples,
                                     rescale=rescale)

    def _forward(self, batch_inputs, batch_data_samples=None):
        return self._with_fp32_heads(super()._forward, batch_inputs, batch_data_samples)


class _Call(nn.Module):
    """A bound method of ``model`` as a module's forward, for
    ``torch.func.functional_call`` (which calls ``forward`` only) over its parameters."""

    def __init__(self, model: nn.Module, fn: Callable) -> None:
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


@MODELS.register_module()
class InternViTMaskRCNN(_InternViTDetector, MaskRCNN):
    """mmdet's ``MaskRCNN`` with ``fp32_heads`` and the unconverted-checkpoint guard
    (see :class:`_InternViTDetector`)."""


@MODELS.register_module()
class InternViTCascadeRCNN(_InternViTDetector, CascadeRCNN):
    """mmdet's ``CascadeRCNN`` with ``fp32_heads`` and the unconverted-checkpoint guard
    (see :class:`_InternViTDetector`)."""
