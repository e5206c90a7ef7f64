# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""Layer-wise learning-rate decay for models that hold an InternViT."""
import re
from typing import Dict, List, Optional

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor


def internvit_layer_id(name: str, num_layers: int) -> int:
    """Layer id of a parameter *of an InternViT* (name relative to the backbone):
    embeddings 0, block ``i`` -> ``i + 1``, anything else ``num_layers + 1``."""
    if re.match(r'^(cls_token|pos_embed|patch_embed)(\.|$)', name):
        return 0
    m = re.match(r'^blocks\.(\d+)\.', name)
    if m:
        return int(m.group(1)) + 1
    return num_layers + 1


def find_internvit_depth(model: nn.Module) -> Optional[int]:
    """``num_layers`` of the InternViT(s) inside ``model`` (also inside an
    ``InternViTAdapter``); None when it holds none. Several InternViTs of different
    depths are an error: one decay schedule cannot fit both."""
    from ..models import InternViT
    depths = {m.num_layers for m in model.modules() if isinstance(m, InternViT)}
    if len(depths) > 1:
        raise ValueError(f'the model holds InternViTs of different depths {sorted(depths)}; '
                         'layer-wise lr decay needs one depth')
    return depths.pop() if depths else None


def layer_ids(model: nn.Module, num_layers: int) -> Dict[str, int]:
    """Layer id of every parameter of ``model``: those of an InternViT by their place in
    it (embeddings 0, block ``i`` -> ``i + 1``); every other parameter (necks, heads,
    adapters) ``num_layers + 1``. Names are looked up through the module tree, so no other
    module that happens to have ``blocks`` in its parameter names is mistaken for it."""
    from ..models import InternViT
    ids = {name: num_layers + 1 for name, _ in model.named_parameters()}
    for prefix, module in model.named_modules():
        if isinstance(module, InternViT):
            dot = prefix + '.' if prefix else ''
            for name, _ in module.named_parameters():
                ids[dot + name] = internvit_layer_id(name, num_layers)
    return ids


class InternViTLayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise learning-rate decay for InternViT:
    ``lr_scale = layer_decay_rate ** (num_layers + 1 - layer_id)``.

    mmseg's own ``LayerDecayOptimizerConstructor`` only maps BEiT / MAE / ConvNeXt
    parameter names, so InternViT's (``blocks.{i}``) need this one. The depth is read
    from the InternViT inside the model being optimised (directly, or inside an
    ``InternViTAdapter``), so switching ``arch`` cannot leave a stale depth behind;
    ``paramwise_cfg.num_layers`` is optional and, when given, must agree with it.
    Frozen parameters (``requires_grad=False``) get no optimizer state. As in mmseg,
    1-D parameters, biases and the position / class embeddings get no weight decay.

    ``paramwise_cfg = dict(layer_decay_rate=0.95)``; ``decay_embeddings=True`` gives the
    position and class embeddings weight decay, as the InternVL authors' constructor
    does in effect: it means to exempt ``pos_embed`` and ``cls_token`` but compares
    them with full parameter names (``backbone.pos_embed``), so the exemption never
    applies (InternVL ``segmentation/mmcv_custom/layer_decay_optimizer_constructor.py``).
    The published recipes set it; 1-D parameters and biases are exempt either way.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        # checked here: mmengine's constructor skips add_params altogether when
        # paramwise_cfg is empty, which would train without decay and with optimizer
        # state for frozen parameters
        if not paramwise_cfg or 'layer_decay_rate' not in paramwise_cfg:
            raise KeyError(f'paramwise_cfg of {type(self).__name__} needs '
                           f"'layer_decay_rate', got {paramwise_cfg!r}")
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   is_dcn_module: Optional[int] = None) -> None:
        cfg = self.paramwise_cfg
        rate = cfg['layer_decay_rate']
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) \
                or not 0 < rate <= 1:
            raise ValueError(f'paramwise_cfg layer_decay_rate must be in (0, 1], '
                             f'got {rate!r}')
        num_layers = find_internvit_depth(module)
        stated = cfg.get('num_layers')
        if num_layers is None:
            raise ValueError(f'{type(self).__name__}: the model holds no InternViT, so '
                             'there are no layers to decay over')
        if stated is not None and stated != num_layers:
            raise ValueError(
                f'paramwise_cfg num_layers={stated!r} but the model\'s InternViT has '
                f'{num_layers} blocks; remove num_layers from paramwise_cfg (the depth '
                'is read from the model) or fix it')
        decay_embeddings = cfg.get('decay_embeddings', False)
        if not isinstance(decay_embeddings, bool):
            raise TypeError('paramwise_cfg decay_embeddings must be True or False, got '
                            f'{decay_embeddings!r}')
        exempt = () if decay_embeddings else ('pos_embed', 'cls_token')
        ids = layer_ids(module, num_layers)
        groups = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            layer_id = ids[name]
            no_decay = (param.ndim == 1 or name.endswith('.bias')
                        or name.split('.')[-1] in exempt)
            key = (layer_id, no_decay)
            if key not in groups:
                scale = rate**(num_layers + 1 - layer_id)
                groups[key] = dict(params=[], lr=self.base_lr * scale,
                                   layer_id=layer_id, lr_scale=scale)
                if no_decay:
                    groups[key]['weight_decay'] = 0.0
                elif self.base_wd is not None:  # else the optimizer's own default
                    groups[key]['weight_decay'] = self.base_wd
            groups[key]['params'].append(param)
        for key in sorted(groups):
            params.append(groups[key])
        print_log(f'layer decay {rate} over {num_layers} layers: '
                  f'{sum(len(g["params"]) for g in groups.values())} trainable tensors in '
                  f'{len(groups)} groups', logger='current')
