# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""Many probe heads on one frozen InternViT forward (a probing grid in one run)."""
import copy
import itertools
import zlib
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import add_prefix

from internvit_dense.models import resolve_preset
from internvit_dense.models.internvit import _normalize_out_indices

from .batched_slide import BatchedSlideEncoderDecoder, slide_windows

_GRID_KEYS = ('head', 'lr', 'weight_decay', 'blocks')


def _as_list(value, name: str) -> list:
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f'sweep.{name} must not be empty')
        return list(value)
    return [value]


def _blocks_name(blocks: Sequence[int]) -> str:
    return 'b' + '-'.join(str(b) for b in blocks)


def expand_sweep(sweep: Optional[dict], heads: Optional[Sequence[dict]],
                 base_head: Optional[dict], num_layers: int) -> List[dict]:
    """The heads of a sweep, one dict each: ``name``, ``head`` (its config), ``lr``
    and ``weight_decay`` (None: the optimizer's), ``blocks`` (block indices >= 0,
    concatenated in this order when several).

    ``sweep`` is a grid (every combination of its ``blocks``, ``lr``,
    ``weight_decay``, in that nesting order; ``blocks='all'``: one entry per block);
    ``heads`` an explicit list of such dicts. ``head`` defaults to ``base_head`` (the
    config's ``decode_head``).
    """
    if (sweep is None) == (heads is None):
        raise ValueError('SweepEncoderDecoder needs exactly one of sweep=dict(...) (a grid) '
                         'and heads=[...] (an explicit list)')
    if sweep is not None:
        if not isinstance(sweep, dict):
            raise TypeError(f'sweep must be a dict, got {type(sweep).__name__}')
        unknown = set(sweep) - set(_GRID_KEYS)
        if unknown:
            raise ValueError(f'sweep has unknown keys {sorted(unknown)}; it takes '
                             f'{list(_GRID_KEYS)}')
        blocks = sweep.get('blocks', [[-1]])
        if blocks == 'all':
            blocks = [[i] for i in range(num_layers)]
        blocks = _as_list(blocks, 'blocks')
        grid = itertools.product(blocks, _as_list(sweep.get('lr'), 'lr'),
                                 _as_list(sweep.get('weight_decay'), 'weight_decay'))
        heads = [dict(head=sweep.get('head'), blocks=b, lr=lr, weight_decay=wd)
                 for b, lr, wd in grid]
    elif not isinstance(heads, (list, tuple)) or not heads:
        raise ValueError('heads must be a non-empty list of dicts')
    entries = []
    for i, spec in enumerate(heads):
        if not isinstance(spec, dict):
            raise TypeError(f'heads[{i}] must be a dict, got {type(spec).__name__}')
        unknown = set(spec) - set(_GRID_KEYS)
        if unknown:
            raise ValueError(f'heads[{i}] has unknown keys {sorted(unknown)}; it takes '
                             f'{list(_GRID_KEYS)}')
        head = spec.get('head') or base_head
        if not isinstance(head, dict) or 'type' not in head:
            raise ValueError(f'heads[{i}]: no head config (give head=dict(type=...) or '
                             'the config a decode_head)')
        blocks = spec.get('blocks', [-1])
        blocks = _normalize_out_indices(blocks, num_layers, name=f'heads[{i}].blocks',
                                        ordered=False)
        for key in ('lr', 'weight_decay'):
            value = spec.get(key)
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f'heads[{i}].{key} must be a number >= 0 or None, '
                                 f'got {value!r}')
        entries.append(dict(head=copy.deepcopy(head), blocks=blocks,
                            lr=spec.get('lr'), weight_decay=spec.get('weight_decay')))
    # names show what varies across the sweep (the blocks always); a head's seed comes
    # from all of its fields (``key``), so it does not depend on the other heads
    types = {str(e['head']['type']).split('.')[-1] for e in entries}
    lrs = {e['lr'] for e in entries}
    wds = {e['weight_decay'] for e in entries}
    for e in entries:
        name = _blocks_name(e['blocks'])
        if len(lrs) > 1:
            name += f"_lr{e['lr']:g}" if e['lr'] is not None else '_lr-default'
        if len(wds) > 1:
            name += (f"_wd{e['weight_decay']:g}" if e['weight_decay'] is not None
                     else '_wd-default')
        if len(types) > 1:
            name += '_' + str(e['head']['type']).split('.')[-1]
        e['name'] = name
        e['key'] = repr((e['blocks'], e['lr'], e['weight_decay'], sorted(
            (k, repr(v)) for k, v in e['head'].items())))
    keys = [e['key'] for e in entries]
    for e in entries:
        if keys.count(e['key']) > 1:
            raise ValueError(f"the sweep has two identical heads ({e['name']}): every "
                             'head needs its own blocks, lr, weight decay or head config')
    names = [e['name'] for e in entries]
    for i, e in enumerate(entries):
        if names.count(e['name']) > 1:  # same visible fields, other head settings
            e['name'] += f'_h{i}'
    return entries


@MODELS.register_module()
class SweepEncoderDecoder(BatchedSlideEncoderDecoder):
    """N probe heads trained together on one frozen backbone forward.

    One backbone call per batch, up to the deepest block any head reads, feeds every
    head its own blocks (several blocks are concatenated over channels, DINOv2's
    "last 4 layers"); each head has its own loss in the log (``<name>.loss_ce``) and,
    through ``SweepOptimWrapperConstructor``, its own optimizer parameter group with
    its lr and weight decay. Evaluation runs the backbone once and every head on it
    (with the batched windows of slide inference).

    Nothing couples the heads: the backbone must be frozen (no parameter trains), each
    head is built and initialised under its own seed (from its name and
    ``init_seed``), so a head starts from the same weights whatever else is in the
    sweep, and each trains on its own loss alone. Under the same seed and data order, a
    head ends with the weights of the single-head sweep of the same entry, to floating
    point tolerance, for heads without randomness (dropout draws from the shared
    generator). Gradient clipping over the global norm and a shared fp16 loss scale
    would couple them, so ``SweepOptimWrapperConstructor`` refuses both.

    The head called ``decode_head`` (prediction in ``pred_sem_seg``, the metric's
    ``mIoU``, ``tools/test.py``, TTA, inferencers) is the selected one
    (``selected_head``, a buffer saved with the checkpoint; ``SweepValLoop`` sets it
    from the held-out selection split). Every head's label map is in
    ``data_sample.sweep_pred_sem_seg`` ((N, H, W), the order of ``sweep_entries``) for
    ``SweepIoUMetric``.

    Memory of N heads: their parameters and optimizer states (a linear head on 3200
    channels is 0.5M parameters), and at evaluation N logit maps of the padded image
    (N x classes x H x W floats per image in slide mode).

    Args:
        sweep (dict, optional): the grid: ``head`` (default: ``decode_head``), ``lr``,
            ``weight_decay`` (numbers or lists; None: the optimizer's), ``blocks``
            (list of block lists or ints, negatives from the end; ``'all'``: each
            block alone).
        heads (list[dict], optional): an explicit list of entries with the same keys.
        decode_head (dict, optional): the head config the entries default to.
        init_seed (int): seeds every head's initialisation together with its fields
            (blocks, lr, weight decay, head config), so a head starts the same whatever
            else the sweep holds.
    """

    def __init__(self, backbone: dict, decode_head: Optional[dict] = None,
                 sweep: Optional[dict] = None, heads: Optional[Sequence[dict]] = None,
                 init_seed: int = 0, neck=None, auxiliary_head=None, **kwargs) -> None:
        if neck is not None or auxiliary_head is not None:
            raise ValueError('SweepEncoderDecoder feeds the backbone maps to its heads '
                             'directly: set neck=None and auxiliary_head=None')
        if isinstance(init_seed, bool) or not isinstance(init_seed, int):
            raise TypeError(f'init_seed must be an int, got {init_seed!r}')
        kind = str(backbone.get('type', '')).split('.')[-1]
        if kind != 'InternViT':
            raise ValueError(f'SweepEncoderDecoder needs an InternViT backbone, got {kind!r}')
        if not backbone.get('frozen', False):
            raise ValueError('SweepEncoderDecoder trains heads on a frozen backbone (a '
                             'trainable backbone would couple the heads): set '
                             'backbone.frozen=True')
        backbone = copy.deepcopy(backbone)
        arch = backbone.get('arch', 'internvit-6b-224px')
        num_layers = backbone.get('num_layers') or resolve_preset(arch)['num_layers']
        entries = expand_sweep(sweep, heads, decode_head, num_layers)
        union = sorted({b for e in entries for b in e['blocks']})
        if backbone.get('out_indices') not in (None, union):
            print_log(f"sweep: backbone out_indices {backbone['out_indices']} replaced by "
                      f'{union}, the blocks the heads read', logger='current')
        backbone['out_indices'] = union
        head_cfgs = []
        for e in entries:
            cfg = copy.deepcopy(e['head'])
            k = len(e['blocks'])
            cfg['in_index'] = list(range(k)) if k > 1 else 0
            if k > 1:
                cfg['input_transform'] = 'resize_concat'
            head_cfgs.append(cfg)
        self.sweep_entries = entries
        self._init_seed = init_seed
        self._positions = [[union.index(b) for b in e['blocks']] for e in entries]
        super().__init__(backbone=backbone, decode_head=head_cfgs, **kwargs)
        self.register_buffer('selected_head', torch.zeros((), dtype=torch.long))
        print_log(f'sweep: {len(entries)} heads on blocks {union} of {num_layers}',
                  logger='current')

    # ------------------------------------------------------------------ building
    def _init_decode_head(self, decode_head: List[dict]) -> None:
        heads = []
        for entry, cfg in zip(self.sweep_entries, decode_head):
            seed = (self._init_seed * 1000003 + zlib.crc32(entry['key'].encode())) % 2**31
            # each head is built and initialised from its own seed, never from the
            # shared generator, so it starts the same whatever else is in the sweep
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                head = MODELS.build(cfg)
                head.init_weights()
            heads.append(head)
        for name in ('num_classes', 'out_channels', 'align_corners'):
            values = {getattr(h, name) for h in heads}
            if len(values) > 1:
                raise ValueError(f'the sweep heads disagree on {name}: {sorted(values)}')
        # a plain nn.ModuleList: mmengine's init_weights skips it (the heads are
        # initialised above, under their seeds)
        self.heads = nn.ModuleList(heads)
        self.align_corners = heads[0].align_corners
        self.num_classes = heads[0].num_classes
        self.out_channels = heads[0].out_channels

    @property
    def decode_head(self) -> nn.Module:
        # mmseg's EncoderDecoder asks for it before the buffer exists: head 0
        selected = self._buffers.get('selected_head')
        return self.heads[0 if selected is None else int(selected)]

    @property
    def head_names(self) -> List[str]:
        return [e['name'] for e in self.sweep_entries]

    def select(self, index: int) -> None:
        if not 0 <= index < len(self.heads):
            raise IndexError(f'head index {index} out of range for {len(self.heads)} heads')
        self.selected_head.fill_(index)

    # ------------------------------------------------------------------ forward
    def _head_inputs(self, maps, i: int) -> List[torch.Tensor]:
        return [maps[j] for j in self._positions[i]]

    def loss(self, inputs: torch.Tensor, data_samples) -> Dict[str, torch.Tensor]:
        maps = self.extract_feat(inputs)
        losses = {}
        for i, head in enumerate(self.heads):
            loss = self._run_head(head, 'loss', self._head_inputs(maps, i), data_samples,
                                  self.train_cfg)
            losses.update(add_prefix(loss, self.sweep_entries[i]['name']))
        return losses

    def encode_decode(self, inputs: torch.Tensor, batch_img_metas: List[dict]):
        return self.encode_decode_all(inputs, batch_img_metas,
                                      only=int(self.selected_head))[0]

    def encode_decode_all(self, inputs: torch.Tensor, batch_img_metas: List[dict],
                          only: Optional[int] = None) -> List[torch.Tensor]:
        """Every head's logits (or head ``only``'s) from one backbone call."""
        maps = self.extract_feat(inputs)
        which = range(len(self.heads)) if only is None else [only]
        return [self._run_head(self.heads[i], 'predict', self._head_inputs(maps, i),
                               batch_img_metas, self.test_cfg) for i in which]

    def _forward(self, inputs: torch.Tensor, data_samples=None):
        maps = self.extract_feat(inputs)
        i = int(self.selected_head)
        return self._run_head(self.heads[i], 'forward', self._head_inputs(maps, i))

    def inference_all(self, inputs: torch.Tensor,
                      batch_img_metas: List[dict]) -> List[torch.Tensor]:
        """Every head's logits over the whole image, the backbone called once per
        window batch (slide) or once (whole)."""
        mode = self.test_cfg.get('mode', 'whole')
        if mode == 'whole':
            return self.encode_decode_all(inputs, batch_img_metas)
        if mode != 'slide':
            raise ValueError(f"test_cfg.mode must be 'slide' or 'whole', got {mode!r}")
        h_stride, w_stride = self.test_cfg.stride
        h_crop, w_crop = self.test_cfg.crop_size
        batch_size, _, h_img, w_img = inputs.size()
        windows = slide_windows(h_img, w_img, h_crop, w_crop, h_stride, w_stride)
        preds = [inputs.new_zeros((batch_size, self.out_channels, h_img, w_img))
                 for _ in self.heads]
        count_mat = inputs.new_zeros((batch_size, 1, h_img, w_img))
        per_call = max(1, (self.slide_batch_size or 1) // batch_size)
        for start in range(0, len(windows), per_call):
            group = windows[start:start + per_call]
            crops = torch.cat([inputs[:, :, y1:y2, x1:x2] for y1, y2, x1, x2 in group])
            batch_img_metas[0]['img_shape'] = crops.shape[2:]
            for pred, logits in zip(preds, self.encode_decode_all(crops, batch_img_metas)):
                for k, (y1, y2, x1, x2) in enumerate(group):
                    pred[:, :, y1:y2, x1:x2] += logits[k * batch_size:(k + 1) * batch_size]
            for y1, y2, x1, x2 in group:
                count_mat[:, :, y1:y2, x1:x2] += 1
        assert (count_mat == 0).sum() == 0
        return [pred / count_mat for pred in preds]

    def predict(self, inputs: torch.Tensor, data_samples=None):
        if data_samples is not None:
            batch_img_metas = [s.metainfo for s in data_samples]
        else:
            batch_img_metas = [dict(ori_shape=inputs.shape[2:], img_shape=inputs.shape[2:],
                                    pad_shape=inputs.shape[2:], padding_size=[0, 0, 0, 0])
                               ] * inputs.shape[0]
        logits = self.inference_all(inputs, batch_img_metas)
        chosen = int(self.selected_head)
        labels = []
        for i, head_logits in enumerate(logits):
            if i == chosen:
                continue
            # mmseg's own post-processing (unpadding, flip, resize to the original
            # size, argmax) on throw-away samples that carry only the meta
            scratch = [SegDataSample(metainfo=m) for m in batch_img_metas]
            self.postprocess_result(head_logits, scratch)
            labels.append((i, [s.pred_sem_seg.data[0] for s in scratch]))
        results = self.postprocess_result(logits[chosen], data_samples)
        labels.append((chosen, [s.pred_sem_seg.data[0] for s in results]))
        labels.sort(key=lambda x: x[0])
        for b, sample in enumerate(results):
            sample.set_field(torch.stack([maps[b].to(torch.int16) for _, maps in labels]),
                             'sweep_pred_sem_seg', field_type='data')
            sample.set_metainfo(dict(sweep_head_names=tuple(self.head_names)))
        return results
