"""Parameter counts and feature shapes of an InternViT preset or a full config.

The model is built on PyTorch's meta device, so even the 6B backbone costs no memory
and no time to initialise; shapes come from a forward pass on meta tensors.

    python tools/analysis_tools/model_info.py internvit-6b-224px
    python tools/analysis_tools/model_info.py internvit-300m-448px --input-size 504
    python tools/analysis_tools/model_info.py configs/<...>.py \\
        --cfg-options model.backbone.frozen=False
"""
import argparse
import os.path as osp
import sys
import time

import torch
from mmengine.config import DictAction

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/: common.py
from common import load_config, quiet_known_warnings  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('model', help='an InternViT preset name (e.g. '
                        'internvit-6b-224px) or a config file')
    parser.add_argument('--input-size', type=int, nargs='+', metavar='S',
                        help='input H [W] for the feature shapes (default: the '
                        "backbone's img_size)")
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config settings (config files only)')
    return parser.parse_args(argv)


def count_params(module: torch.nn.Module):
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return trainable, total


def human(n: int) -> str:
    for unit, scale in (('B', 1e9), ('M', 1e6), ('K', 1e3)):
        if n >= scale:
            return f'{n / scale:.2f}{unit}'
    return str(n)


def build(args):
    """Return (model, backbone, description) built on the meta device."""
    if args.model.endswith('.py'):
        from mmengine.registry import init_default_scope
        cfg = load_config(args.model, args.cfg_options)
        init_default_scope(cfg.default_scope)
        if cfg.default_scope == 'mmdet':
            from mmdet.registry import MODELS
        else:
            from mmseg.registry import MODELS
        with torch.device('meta'):
            model = MODELS.build(cfg.model)
        return model, getattr(model, 'backbone', model), f'config {args.model}'
    if args.cfg_options:
        raise ValueError('--cfg-options applies to config files, not presets')
    from internvit_dense import InternViT, resolve_preset
    resolve_preset(args.model)  # clear error for an unknown name
    with torch.device('meta'):
        model = InternViT(arch=args.model)
    return model, model, f'preset {args.model}'


def main(argv=None):
    quiet_known_warnings()
    args = parse_args(argv)
    start = time.perf_counter()
    model, backbone, what = build(args)
    trainable, total = count_params(model)
    print(f'{what}')
    if hasattr(backbone, 'arch_settings'):
        a = backbone.arch_settings
        print(f"  backbone: InternViT embed_dims={a['embed_dims']} "
              f"num_layers={a['num_layers']} num_heads={a['num_heads']} "
              f"mlp={a['mlp_hidden_dims']} patch={a['patch_size']} "
              f"norm={a['norm_type']} qk_norm={a['qk_normalization']} "
              f"frozen={backbone.frozen} dtype={str(backbone.param_dtype)[6:]}")
    print(f'parameters: trainable {human(trainable)} / total {human(total)} '
          f'({trainable:,} / {total:,})')
    if model is not backbone:
        for name, child in model.named_children():
            t, n = count_params(child)
            if n:
                print(f'  {name:<16} trainable {human(t):>9} / total {human(n):>9}')
    # per parameter: an adapter holds a bf16 frozen ViT next to its fp32 layers
    weight_bytes = sum(p.numel() * p.element_size() for p in backbone.parameters())
    dtypes = ' + '.join(sorted({str(p.dtype)[6:] for p in backbone.parameters()}))
    print(f'backbone weights: {weight_bytes / 2**30:.2f} GiB in {dtypes}')

    size = args.input_size or list(getattr(backbone, 'img_size', (224, 224)))
    if len(size) == 1:
        size = size * 2
    x = torch.empty(args.batch_size, 3, *size, device='meta')
    with torch.no_grad():
        feats = backbone(x)
    print(f'features for input {tuple(x.shape)}:')
    if hasattr(backbone, 'strides'):  # a pyramid (InternViTAdapter)
        for s, f in zip(backbone.strides, feats):
            print(f'  stride {s:>2}: {tuple(f.shape)}')
    else:
        indices = getattr(backbone, 'out_indices', range(len(feats)))
        for i, f in zip(indices, feats):
            print(f'  block {i:>3}: {tuple(f.shape)}')
    print(f'(built on the meta device in {time.perf_counter() - start:.2f} s)')


if __name__ == '__main__':
    main()
