# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""The key layout of the InternViT detectors trained upstream (mmdet 2.x), and how it
maps onto this package's mmdet 3.x detectors.

PIIP (``OpenGVLab/PIIP`` ``mmdetection/``) and the InternVL authors' detection code
(InternVL-MMDetSeg ``mmdetection/``) share one backbone layout, ``InternViT6B`` with
``with_fpn=True``: it builds the simple pyramid itself, ``up1`` = ConvT, channels-first
LayerNorm, GELU, ConvT; ``up2`` = ConvT; ``up3`` = identity; ``up4`` = max-pool (keys
``backbone.up1.{0,1,3}``, ``backbone.up2.0``), and names the patch projection
``patch_embed.proj`` and the layer scales ``ls1.gamma`` / ``ls2.gamma``. Here the pyramid
is the ``SimpleFeaturePyramid`` neck (``neck.rescale.upsample_4x.{0,1,3}``,
``neck.rescale.upsample_2x.0``, the same Sequentials in the same order) and mmdet's FPN
sits inside it as ``neck.fpn`` (mmdet 2.x's ``neck.lateral_convs`` / ``neck.fpn_convs``).
mmdet's RPN and RoI heads keep their names from 2.x to 3.3 (``rpn_head.rpn_conv`` /
``rpn_cls`` / ``rpn_reg``; ``roi_head.bbox_head.shared_fcs`` / ``fc_cls`` / ``fc_reg``;
``roi_head.mask_head.convs.{i}.conv`` / ``upsample`` / ``conv_logits``).
"""
import re
from collections import OrderedDict
from typing import Dict, Iterable, List, Tuple

from internvit_dense.models.layouts import convert_by_rules, upstream_hint

CONVERTER = 'tools/model_converters/piip2mmdet.py'

_DETECTOR_RULES = [
    (re.compile(r'^backbone\.patch_embed\.proj\.(weight|bias)$'), r'backbone.patch_embed.\1'),
    (re.compile(r'^backbone\.blocks\.(\d+)\.(ls[12])\.gamma$'), r'backbone.blocks.\1.\2'),
    (re.compile(r'^backbone\.(cls_token|pos_embed)$'), r'backbone.\1'),
    (re.compile(r'^backbone\.(blocks\.\d+\..+)$'), r'backbone.\1'),
    (re.compile(r'^backbone\.up1\.([013])\.(weight|bias)$'), r'neck.rescale.upsample_4x.\1.\2'),
    (re.compile(r'^backbone\.up2\.0\.(weight|bias)$'), r'neck.rescale.upsample_2x.0.\1'),
    (re.compile(r'^neck\.((lateral_convs|fpn_convs)\..+)$'), r'neck.fpn.\1'),
    (re.compile(r'^((rpn_head|roi_head)\..+)$'), r'\1'),
]
# Names only the upstream (mmdet 2.x) layout has; ours never does.
_MARKERS = re.compile(r'^(backbone\.patch_embed\.proj\.|backbone\.blocks\.\d+\.ls[12]\.gamma$'
                      r'|backbone\.up[1-4]\.)')


def upstream_detector_markers(keys: Iterable[str]) -> List[str]:
    """The keys that only an unconverted PIIP / InternVL (mmdet 2.x) detector has."""
    return [k for k in keys if _MARKERS.match(k)]


def convert_upstream_detector(state: Dict[str, object]) -> Tuple['OrderedDict', List[str]]:
    """Map a PIIP / InternVL mmdet-2.x detector state dict onto this package's mmdet 3.x
    detectors (``SimpleFeaturePyramid`` neck).

    Returns the converted state dict (same tensors, same order) and the keys no rule
    covers (e.g. the final LayerNorms of ``with_final_norm=True``, which no published
    config uses and the simple pyramid does not have): the caller decides whether
    those are an error."""
    return convert_by_rules(state, _DETECTOR_RULES)


def unconverted_hint(keys: Iterable[str]) -> str:
    """A sentence naming the converter when ``keys`` are an unconverted upstream
    detector's; empty otherwise."""
    return upstream_hint(keys, _MARKERS, 'a PIIP / InternVL (mmdet 2.x) detection',
                         CONVERTER)
