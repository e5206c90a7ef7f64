# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""The key layouts of the checkpoints users bring, and how each maps onto ours.

Backbone files (read by :func:`~internvit_dense.models.checkpoint.load_pretrained_into`):

* Hugging Face ``InternVisionModel`` (``embeddings.*``, ``encoder.layers.{i}.*``),
  with the ``vision_model.`` prefix inside InternVL chat checkpoints;
* the InternVL authors' mmseg-0.x backbone files (``cls_token``, ``pos_embed``,
  ``patch_embed.proj.*``, ``blocks.{i}.*`` with ``ls1.gamma``), usually under ``module``;
* this package's own names (``tools/model_converters/extract_backbone.py``).

Whole segmentors trained by the InternVL authors with their mmseg 0.x code (the released
ADE20K checkpoints of the Hugging Face repo ``OpenGVLab/InternVL``; the configs of
InternVL ``segmentation/`` and InternVL-MMDetSeg ``mmsegmentation/``):
:func:`convert_internvl_segmentor` maps them onto this package's mmseg 1.x segmentors, and
:func:`internvl_segmentor_markers` recognises one that was not converted, so that loading
it names the converter instead of listing a hundred unexpected keys.
"""
import re
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Tuple

HF_FILES = ('model.safetensors.index.json', 'model.safetensors',
            'pytorch_model.bin.index.json', 'pytorch_model.bin')
CHAT_PREFIX = 'vision_model.'

_HF_RULES = [
    (re.compile(r'^embeddings\.class_embedding$'), 'cls_token'),
    (re.compile(r'^embeddings\.position_embedding$'), 'pos_embed'),
    (re.compile(r'^embeddings\.patch_embedding\.(weight|bias)$'), r'patch_embed.\1'),
    (re.compile(r'^encoder\.layers\.(\d+)\.(.+)$'), r'blocks.\1.\2'),
]
_OLD_RULES = [  # and this package's own names (tools/model_converters/extract_backbone.py)
    (re.compile(r'^(cls_token|pos_embed)$'), r'\1'),
    (re.compile(r'^patch_embed\.(proj\.)?(weight|bias)$'), r'patch_embed.\2'),
    (re.compile(r'^blocks\.(\d+)\.(ls[12])\.gamma$'), r'blocks.\1.\2'),
    (re.compile(r'^blocks\.(\d+)\.(.+)$'), r'blocks.\1.\2'),
]

CONVERTER = 'tools/model_converters/internvl2mmseg.py'


def convert_key(key: str) -> Optional[str]:
    """Map a released backbone key to this package's parameter name; ``None`` for keys
    that belong to no vision-encoder layout (projectors, language models, ...)."""
    for pattern, repl in _HF_RULES + _OLD_RULES:
        if pattern.match(key):
            return pattern.sub(repl, key)
    return None


def select_vision_keys(keys: Iterable[str],
                       prefix: Optional[str] = 'auto') -> Tuple[Dict[str, str], List[str]]:
    """Split checkpoint keys into ``{our_name: checkpoint_key}`` and non-vision keys."""
    keys = list(keys)
    if prefix == 'auto':
        prefix = CHAT_PREFIX if any(k.startswith(CHAT_PREFIX) for k in keys) else ''
    prefix = prefix or ''
    mapping, extra = {}, []
    for key in keys:
        name = convert_key(key[len(prefix):]) if key.startswith(prefix) else None
        if name is None:
            extra.append(key)
        else:
            mapping[name] = key
    return mapping, extra


# --------------------------------------------------------------------------- segmentors
# The InternVL authors' segmentor (mmseg 0.x) -> ours (mmseg 1.x). Their backbone builds
# the UperNet pyramid itself (`with_fpn`): up1 = ConvT, channels-first LayerNorm, GELU,
# ConvT; up2 = ConvT; up3 = identity; up4 = max-pool. Ours is mmseg's Feature2Pyramid
# neck, whose Sequentials have the same order (upsample_4x.{0,1,3}, upsample_2x.0). Their
# linear probe is their own FCNHead(num_convs=0, with_norm=True): `norm` (SyncBN) then
# `conv_seg`; ours is BNLinearHead: `bn` then `conv_seg`. UPerHead and the auxiliary
# FCNHead keep mmseg's names from 0.x to 1.x.
_SEGMENTOR_RULES = [
    (re.compile(r'^backbone\.patch_embed\.proj\.(weight|bias)$'), r'backbone.patch_embed.\1'),
    (re.compile(r'^backbone\.blocks\.(\d+)\.(ls[12])\.gamma$'), r'backbone.blocks.\1.\2'),
    (re.compile(r'^backbone\.(cls_token|pos_embed)$'), r'backbone.\1'),
    (re.compile(r'^backbone\.(blocks\.\d+\..+)$'), r'backbone.\1'),
    (re.compile(r'^backbone\.up1\.([013])\.(weight|bias)$'), r'neck.upsample_4x.\1.\2'),
    (re.compile(r'^backbone\.up2\.0\.(weight|bias)$'), r'neck.upsample_2x.0.\1'),
    (re.compile(r'^decode_head\.norm\.(.+)$'), r'decode_head.bn.\1'),
    (re.compile(r'^((decode_head|auxiliary_head)\..+)$'), r'\1'),
]
# Names that only the InternVL authors' segmentor layout has (ours never does).
_MARKERS = re.compile(r'^(backbone\.patch_embed\.proj\.|backbone\.blocks\.\d+\.ls[12]\.gamma$'
                      r'|backbone\.up[1-4]\.|decode_head\.norm\.)')


def strip_module_prefix(state: Dict[str, object]) -> Dict[str, object]:
    """Drop the ``module.`` of a DDP / DeepSpeed wrapper when every key has it."""
    if state and all(k.startswith('module.') for k in state):
        return OrderedDict((k[len('module.'):], v) for k, v in state.items())
    return state


def convert_by_rules(state: Dict[str, object], rules) -> Tuple['OrderedDict', List[str]]:
    """Rename every key of ``state`` (a DDP / DeepSpeed ``module.`` prefix dropped) by
    the first ``(pattern, replacement)`` of ``rules`` that matches it. Returns the
    converted state dict (same tensors, same order) and the keys no rule covers: the
    caller decides whether those are an error."""
    converted, unknown = OrderedDict(), []
    for key, value in strip_module_prefix(state).items():
        for pattern, repl in rules:
            if pattern.match(key):
                converted[pattern.sub(repl, key)] = value
                break
        else:
            unknown.append(key)
    return converted, unknown


def upstream_hint(keys: Iterable[str], markers, what: str, converter: str) -> str:
    """A sentence naming ``converter`` when ``keys`` hold names that match ``markers``
    (names only an unconverted upstream layout has); empty otherwise."""
    found = [k for k in keys if markers.match(k)]
    if not found:
        return ''
    return (f'it is {what} checkpoint (keys such as {", ".join(found[:3])}): convert it '
            f'first with `python {converter} SRC DST` and load DST')


def internvl_segmentor_markers(keys: Iterable[str]) -> List[str]:
    """The keys that only an unconverted InternVL (mmseg 0.x) segmentor has."""
    return [k for k in keys if _MARKERS.match(k)]


def convert_internvl_segmentor(state: Dict[str, object]) -> Tuple['OrderedDict', List[str]]:
    """Map an InternVL mmseg-0.x segmentor state dict onto this package's segmentors.

    Returns the converted state dict (same tensors, same order) and the keys no rule
    covers (for instance the final LayerNorms of ``with_final_norm=True``, a setting no
    published config uses and mmseg's Feature2Pyramid does not have): the caller
    decides whether those are an error."""
    return convert_by_rules(state, _SEGMENTOR_RULES)


def unconverted_hint(keys: Iterable[str]) -> str:
    """A sentence naming the converter when ``keys`` are an unconverted InternVL
    segmentor's; empty otherwise."""
    return upstream_hint(keys, _MARKERS, 'an InternVL (mmseg 0.x) segmentation',
                         CONVERTER)

# --------------------------------------------------------------------------- adapter segmentors
# The InternVL authors' adapter segmentor (InternVL-MMDetSeg mmsegmentation/, the 58.1
# mIoU adapter-tuning config: mmseg/models/backbones/vit_adapter.py, adapter_modules.py)
# -> ours (InternViTAdapter built as the published leaf: with_cls_token=False, 'LN2d'
# in the spatial prior module). Their backbone *is* the ViT (InternViTAdapter subclasses
# InternViT6B), so its keys sit at backbone.{patch_embed.proj, pos_embed, blocks}; ours
# holds it as backbone.vit. Their spatial prior module is plain Sequentials
# (stem = conv, LN, ReLU, conv, LN, ReLU, conv, LN, ReLU, max-pool; conv2..4 = conv, LN,
# ReLU), ours mmcv ConvModules (conv, ln); their MSDeformAttn is our
# DeformableAttention's .attn (mmcv's module, the same four linears); their DWConv
# wraps the depthwise conv as .dwconv; their final norms norm1..4 are our out_norms.
_STEM = {'0': ('0', 'conv'), '1': ('0', 'ln'), '3': ('1', 'conv'), '4': ('1', 'ln'),
         '6': ('2', 'conv'), '7': ('2', 'ln')}
_INTERACTION = r'^backbone\.interactions\.(\d+)\.(injector|extractor|extra_extractors\.\d+)\.'
_ADAPTER_RULES = [
    (re.compile(r'^backbone\.patch_embed\.proj\.(weight|bias)$'),
     r'backbone.vit.patch_embed.\1'),
    (re.compile(r'^backbone\.(cls_token|pos_embed)$'), r'backbone.vit.\1'),
    (re.compile(r'^backbone\.blocks\.(\d+)\.(ls[12])\.gamma$'), r'backbone.vit.blocks.\1.\2'),
    (re.compile(r'^backbone\.blocks\.(\d+)\.(.+)$'), r'backbone.vit.blocks.\1.\2'),
    (re.compile(r'^backbone\.level_embed$'), r'backbone.level_embed'),
    (re.compile(r'^backbone\.spm\.stem\.([013467])\.(weight|bias)$'),
     lambda m: 'backbone.spm.stem.{}.{}.{}'.format(*_STEM[m.group(1)], m.group(2))),
    (re.compile(r'^backbone\.spm\.conv([234])\.0\.weight$'), r'backbone.spm.conv\1.conv.weight'),
    (re.compile(r'^backbone\.spm\.conv([234])\.1\.(weight|bias)$'),
     r'backbone.spm.conv\1.ln.\2'),
    (re.compile(r'^backbone\.spm\.fc([1-4])\.(weight|bias)$'), r'backbone.spm.fc\1.\2'),
    (re.compile(_INTERACTION + r'attn\.(sampling_offsets|attention_weights|value_proj'
                r'|output_proj)\.(weight|bias)$'),
     r'backbone.interactions.\1.\2.attn.attn.\3.\4'),
    (re.compile(_INTERACTION + r'ffn\.dwconv\.dwconv\.(weight|bias)$'),
     r'backbone.interactions.\1.\2.ffn.dwconv.\3'),
    (re.compile(_INTERACTION + r'((query|feat|ffn)_norm\.(weight|bias)|ffn\.fc[12]\.'
                r'(weight|bias))$'), r'backbone.interactions.\1.\2.\3'),
    (re.compile(r'^backbone\.interactions\.(\d+)\.injector\.gamma$'),
     r'backbone.interactions.\1.injector.gamma'),
    (re.compile(r'^backbone\.up\.(weight|bias)$'), r'backbone.up.\1'),
    (re.compile(r'^backbone\.norm([1-4])\.(weight|bias)$'),
     lambda m: f'backbone.out_norms.{int(m.group(1)) - 1}.{m.group(2)}'),
    (re.compile(r'^((decode_head|auxiliary_head)\..+)$'), r'\1'),
]
# Names only the InternVL adapter segmentor has among the InternVL layouts.
_ADAPTER_MARKERS = re.compile(r'^backbone\.(spm|interactions)\.|^backbone\.level_embed$')


def is_internvl_adapter_segmentor(keys: Iterable[str]) -> bool:
    """Whether ``keys`` (``module.`` prefix or not) are an InternVL adapter segmentor's:
    the plain-ViT segmentor layout has no spatial prior module, interactions or level
    embedding."""
    return any(_ADAPTER_MARKERS.match(k[len('module.'):] if k.startswith('module.') else k)
               for k in keys)


def convert_internvl_adapter_segmentor(
        state: Dict[str, object]) -> Tuple['OrderedDict', List[str]]:
    """Map an InternVL adapter segmentor state dict (mmseg 0.x) onto this package's
    adapter segmentors (the published adapter-tuning leaf).

    Returns the converted state dict (same tensors, same order) and the keys no rule
    covers: the caller decides whether those are an error. A ``backbone.cls_token`` (the
    upstream adapter has none: it sets ``cls_token = None``) is mapped to
    ``backbone.vit.cls_token``, so that loading it into a model without a class token
    fails strictly instead of dropping it."""
    return convert_by_rules(state, _ADAPTER_RULES)
