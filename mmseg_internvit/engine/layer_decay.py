# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
import re
from typing import List, Optional

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS


def internvit_layer_id(name: str, num_layers: int) -> int:
    """Layer id of a parameter for layer-wise lr decay: embeddings 0, block ``i`` ->
    ``i + 1``, everything else (necks, heads) ``num_layers + 1``."""
    if re.match(r'^(.*\.)?(cls_token|pos_embed|patch_embed)(\.|$)', name):
        return 0
    m = re.match(r'^(.*\.)?blocks\.(\d+)\.', name)
    if m:
        return int(m.group(2)) + 1
    return num_layers + 1


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class InternViTLayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise learning-rate decay for InternViT:
    ``lr_scale = layer_decay_rate ** (num_layers + 1 - layer_id)``.

    mmseg's own ``LayerDecayOptimizerConstructor`` only maps BEiT / MAE / ConvNeXt
    parameter names, so InternViT's (``blocks.{i}``) need this one. Frozen parameters
    (``requires_grad=False``) get no optimizer state. As in mmseg, 1-D parameters,
    biases and the position / class embeddings get no weight decay.

    ``paramwise_cfg = dict(num_layers=48, layer_decay_rate=0.95)``
    """

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   is_dcn_module: Optional[int] = None) -> None:
        cfg = self.paramwise_cfg
        for key in ('num_layers', 'layer_decay_rate'):
            if key not in cfg:
                raise KeyError(f'paramwise_cfg of {type(self).__name__} needs {key!r}')
        num_layers, rate = cfg['num_layers'], cfg['layer_decay_rate']
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f'paramwise_cfg num_layers must be a positive int, '
                             f'got {num_layers!r}')
        if not 0 < rate <= 1:
            raise ValueError(f'paramwise_cfg layer_decay_rate must be in (0, 1], '
                             f'got {rate!r}')
        groups = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            layer_id = internvit_layer_id(name, num_layers)
            no_decay = (param.ndim == 1 or name.endswith('.bias')
                        or name.split('.')[-1] in ('pos_embed', 'cls_token'))
            key = (layer_id, no_decay)
            if key not in groups:
                groups[key] = dict(
                    params=[],
                    lr=self.base_lr * rate**(num_layers + 1 - layer_id),
                    weight_decay=0.0 if no_decay else self.base_wd,
                    layer_id=layer_id, lr_scale=rate**(num_layers + 1 - layer_id))
            groups[key]['params'].append(param)
        for key in sorted(groups):
            params.append(groups[key])
        print_log(f'layer decay {rate} over {num_layers} layers: '
                  f'{sum(len(g["params"]) for g in groups.values())} trainable tensors in '
                  f'{len(groups)} groups', logger='current')
