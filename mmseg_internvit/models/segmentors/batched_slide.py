# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
import copy
import inspect
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.config import ConfigDict
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import add_prefix
from torch.func import functional_call

from internvit_dense.models import InternViT, resolve_preset
from internvit_dense.models.checkpoint import unconverted_layout_guard
from internvit_dense.models.layouts import unconverted_hint


@MODELS.register_module()
class BatchedSlideEncoderDecoder(EncoderDecoder):
    """``EncoderDecoder`` whose sliding-window inference stacks the windows of an
    image into one backbone call.

    mmseg's ``slide_inference`` runs the whole model once per window with the batch of
    the test loader (one image per GPU). For a 6B backbone that leaves most of a GPU
    idle: the windows of an image are independent and all of the crop size, so here
    they go through ``encode_decode`` together: whole windows (all images of the
    batch at that window), as many as fit in ``test_cfg.slide_batch_size`` crops per
    call (at least one window), which bounds the memory.

    The windows, their order, the zero padding of each window's logits into the
    full-size map, the count map and the division by it are those of mmseg 1.2.2's
    ``EncoderDecoder.slide_inference``; overlapping windows are summed in the same
    order. Only the batch each crop is computed in differs, so the result equals
    mmseg's up to the rounding of batched GEMMs (``tests/test_batched_slide.py``).

    ``test_cfg.slide_batch_size`` None or 0 keeps mmseg's per-window loop, and so does
    a model in training mode: batch-statistics layers (BatchNorm in ``train()``) would
    otherwise see a different batch than mmseg gives them.

    The widths that follow from an ``InternViT`` / ``InternViTAdapter`` backbone are
    derived here, so that a config switches releases by naming the backbone alone
    (:func:`derive_widths`): the ``Feature2Pyramid`` neck's ``embed_dim`` and the
    heads' ``in_channels``, when a config leaves them out. A width a config does
    state must agree with the backbone, or building fails naming the key.

    ``fp32_heads=True`` runs the decode and auxiliary heads in fp32 whatever the
    precision of the rest of the model, as the InternVL authors' heads do (their
    FCNHead / UPerHead / EncoderDecoder call ``self.to(torch.float32)`` in forward):
    the features are cast to fp32 and autocast is off inside the heads; weights that
    DeepSpeed holds in bf16 are used as fp32 copies (their values, so the gradients
    reach the bf16 weights), and floating buffers (BatchNorm statistics) are kept in
    fp32 from their first use on, as that ``.to()`` leaves them. Under ZeRO-3, whose
    partitioned parameters DeepSpeed gathers in its own hooks, the heads compute in the
    parameters' dtype instead.

    Loading a checkpoint in the InternVL authors' mmseg 0.x layout (the released
    ``OpenGVLab/InternVL`` segmentation files) into this model, through any loader
    (``load_from``, ``tools/test.py``, mmseg's ``init_model`` and inferencers, which load
    with ``strict=False``), is an error that names the converter,
    ``tools/model_converters/internvl2mmseg.py``, instead of a partial load.
    """

    def __init__(self, backbone: dict, decode_head: dict, neck: Optional[dict] = None,
                 auxiliary_head: Optional[dict] = None, fp32_heads: bool = False,
                 **kwargs) -> None:
        if not isinstance(fp32_heads, bool):
            raise TypeError(f'fp32_heads must be True or False, got {fp32_heads!r}')
        backbone, decode_head, neck, auxiliary_head = derive_widths(
            backbone, decode_head, neck, auxiliary_head)
        super().__init__(backbone=backbone, decode_head=decode_head, neck=neck,
                         auxiliary_head=auxiliary_head, **kwargs)
        self.fp32_heads = fp32_heads
        if isinstance(self.test_cfg, dict) and not isinstance(self.test_cfg, ConfigDict):
            # mmseg reads test_cfg by attribute (test_cfg.stride), which a config file
            # gives; a model built from a plain dict gets the same
            self.test_cfg = ConfigDict(self.test_cfg)
        self.slide_batch_size  # a bad setting fails when the model is built
        self.register_load_state_dict_pre_hook(unconverted_layout_guard(unconverted_hint))

    # ------------------------------------------------------------------ heads
    def _run_head(self, head: nn.Module, method: str, feats: Sequence[torch.Tensor],
                  *args):
        """``head.<method>(feats, *args)``, in fp32 when ``fp32_heads``."""
        if not self.fp32_heads:
            return getattr(head, method)(feats, *args)
        if any(hasattr(p, 'ds_id') for p in head.parameters()):
            # ZeRO-3 partitions the parameters and gathers them in its own module
            # hooks, which no fp32 copy may stand in for: the heads compute in the
            # dtype DeepSpeed holds them in (the published recipes run ZeRO-1)
            dtype = next(head.parameters()).dtype
            return getattr(head, method)([f.to(dtype) for f in feats], *args)
        feats = [f.float() for f in feats]
        for module in head.modules():
            for name, buf in module._buffers.items():
                if buf is not None and buf.is_floating_point() and buf.dtype != torch.float32:
                    module._buffers[name] = buf.float()
        low = {f'head.{n}': p.float() for n, p in head.named_parameters()
               if p.is_floating_point() and p.dtype != torch.float32}
        with torch.autocast(device_type=feats[0].device.type, enabled=False):
            if not low:
                return getattr(head, method)(feats, *args)
            return functional_call(_HeadCall(head, method), low, (feats, *args),
                                   strict=False)

    def encode_decode(self, inputs: torch.Tensor, batch_img_metas: List[dict]):
        x = self.extract_feat(inputs)
        return self._run_head(self.decode_head, 'predict', x, batch_img_metas,
                              self.test_cfg)

    def _decode_head_forward_train(self, inputs, data_samples) -> dict:
        loss = self._run_head(self.decode_head, 'loss', inputs, data_samples,
                              self.train_cfg)
        return add_prefix(loss, 'decode')

    def _auxiliary_head_forward_train(self, inputs, data_samples) -> dict:
        losses = dict()
        if isinstance(self.auxiliary_head, nn.ModuleList):
            for idx, aux_head in enumerate(self.auxiliary_head):
                loss = self._run_head(aux_head, 'loss', inputs, data_samples,
                                      self.train_cfg)
                losses.update(add_prefix(loss, f'aux_{idx}'))
        else:
            losses.update(add_prefix(self._run_head(self.auxiliary_head, 'loss', inputs,
                                                    data_samples, self.train_cfg), 'aux'))
        return losses

    def _forward(self, inputs: torch.Tensor, data_samples=None):
        return self._run_head(self.decode_head, 'forward', self.extract_feat(inputs))

    def slide_inference(self, inputs: torch.Tensor,
                        batch_img_metas: List[dict]) -> torch.Tensor:
        chunk = self.slide_batch_size
        if not chunk or self.training:
            return super().slide_inference(inputs, batch_img_metas)
        h_stride, w_stride = self.test_cfg.stride
        h_crop, w_crop = self.test_cfg.crop_size
        batch_size, _, h_img, w_img = inputs.size()
        windows = slide_windows(h_img, w_img, h_crop, w_crop, h_stride, w_stride)
        preds = inputs.new_zeros((batch_size, self.out_channels, h_img, w_img))
        count_mat = inputs.new_zeros((batch_size, 1, h_img, w_img))
        # whole windows per call: every image of the batch at a window goes together
        per_call = max(1, chunk // batch_size)
        for start in range(0, len(windows), per_call):
            group = windows[start:start + per_call]
            crops = torch.cat([inputs[:, :, y1:y2, x1:x2] for y1, y2, x1, x2 in group])
            # as mmseg does: the decode head resizes its logits to this size
            batch_img_metas[0]['img_shape'] = crops.shape[2:]
            logits = self.encode_decode(crops, batch_img_metas)
            for i, (y1, y2, x1, x2) in enumerate(group):
                # the same sums as mmseg's preds += F.pad(logit, ...): padding adds
                # exact zeros outside the window
                preds[:, :, y1:y2, x1:x2] += logits[i * batch_size:(i + 1) * batch_size]
                count_mat[:, :, y1:y2, x1:x2] += 1
        assert (count_mat == 0).sum() == 0
        return preds / count_mat

    @property
    def slide_batch_size(self) -> Optional[int]:
        size = self.test_cfg.get('slide_batch_size') if self.test_cfg else None
        if size is not None and (isinstance(size, bool) or not isinstance(size, int)
                                 or size < 0):
            raise ValueError('test_cfg.slide_batch_size must be None or an int >= 0, '
                             f'got {size!r}')
        return size


class _HeadCall(nn.Module):
    """``head.<method>`` as a module's forward, for ``torch.func.functional_call``
    (which calls ``forward`` only) over the head's parameters."""

    def __init__(self, head: nn.Module, method: str) -> None:
        super().__init__()
        self.head, self.method = head, method

    def forward(self, *args):
        return getattr(self.head, self.method)(*args)


# mmseg heads whose in_channels is one width per input level
_MULTI_LEVEL_HEADS = ('UPerHead', 'Mask2FormerHead', 'MaskFormerHead')


def _internvit_maps(backbone) -> Optional[Tuple[int, int, str]]:
    """(width, number of output maps, arch) of an InternViT / InternViTAdapter
    config; None for any other backbone."""
    kind = backbone.get('type') if isinstance(backbone, dict) else None
    kind = getattr(kind, '__name__', kind)
    if not isinstance(kind, str) or kind.split('.')[-1] not in ('InternViT',
                                                                 'InternViTAdapter'):
        return None
    arch = backbone.get('arch',
                        inspect.signature(InternViT).parameters['arch'].default)
    width = backbone.get('embed_dims', resolve_preset(arch)['embed_dims'])
    if kind.split('.')[-1] == 'InternViTAdapter':
        return width, 4, arch  # strides 4, 8, 16, 32
    out = backbone.get('out_indices', -1)
    maps = 4 if out == 'stages' else 1 if isinstance(out, int) else len(out)
    return width, maps, arch


def _fill(part: dict, key: str, want, where: str, arch: str) -> None:
    given = part.get(key)
    if given is None:
        part[key] = want
    elif (list(given) if isinstance(given, (list, tuple)) else given) != want:
        raise ValueError(
            f'{where}.{key}={given!r} does not match the backbone: {arch} gives '
            f'{want!r}. Leave {key} out of the config and it is derived.')


def derive_widths(backbone: dict, decode_head, neck=None, auxiliary_head=None):
    """Fill in the widths an InternViT backbone determines, or check them.

    - ``Feature2Pyramid`` / ``LastMapFeature2Pyramid`` neck: ``embed_dim`` = the
      backbone's width;
    - each head without a neck, or after ``Feature2Pyramid``: ``in_channels`` = the
      width, as a list of one width per input level for ``UPerHead`` /
      ``Mask2FormerHead`` or any head whose ``in_index`` is a list.

    Missing (or None) values are filled; stated ones must be equal, else a
    ``ValueError`` names the key and both values. Other backbones and other necks
    (which choose their own output widths) are left alone. Returns copies.
    """
    backbone, decode_head, neck, auxiliary_head = (
        copy.deepcopy(x) for x in (backbone, decode_head, neck, auxiliary_head))
    found = _internvit_maps(backbone)
    if found is None:
        return backbone, decode_head, neck, auxiliary_head
    width, maps, arch = found
    if neck is not None:
        if neck.get('type') not in ('Feature2Pyramid', 'LastMapFeature2Pyramid'):
            return backbone, decode_head, neck, auxiliary_head
        _fill(neck, 'embed_dim', width, 'model.neck', arch)
        maps = len(neck.get('rescales', (4, 2, 1, 0.5)))
    for name, heads in (('decode_head', decode_head), ('auxiliary_head', auxiliary_head)):
        for head in heads if isinstance(heads, (list, tuple)) else [heads]:
            if head is None:
                continue
            index = head.get('in_index')
            multi = isinstance(index, (list, tuple)) or head.get('type') in \
                _MULTI_LEVEL_HEADS
            want = ([width] * (len(index) if isinstance(index, (list, tuple)) else maps)
                    if multi else width)
            _fill(head, 'in_channels', want, f'model.{name}', arch)
    return backbone, decode_head, neck, auxiliary_head


def slide_windows(h_img: int, w_img: int, h_crop: int, w_crop: int, h_stride: int,
                  w_stride: int) -> List[tuple]:
    """``(y1, y2, x1, x2)`` of every window, in mmseg 1.2.2's order and placement: a
    grid at the stride, the last row/column moved back inside the image, windows
    clipped to the image when it is smaller than the crop."""
    h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
    windows = []
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y2 = min(h_idx * h_stride + h_crop, h_img)
            x2 = min(w_idx * w_stride + w_crop, w_img)
            windows.append((max(y2 - h_crop, 0), y2, max(x2 - w_crop, 0), x2))
    return windows
