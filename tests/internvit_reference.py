"""An independent, deliberately naive InternViT written from the specification.

It works directly on a Hugging Face-layout state dict (``embeddings.*``,
``encoder.layers.{i}.*``), with explicit patch unfolding, hand-written norms and a
per-head attention loop, so it shares no code with ``mmseg_internvit``.
"""
import math

import torch
import torch.nn.functional as F


def tiny_arch(variant: str = '6b', **overrides) -> dict:
    """Small widths/depths of the two released families (same structure)."""
    if variant == '6b':  # RMSNorm, q/k norm, no qkv bias, layer scale 0.1
        arch = dict(arch='internvit-6b-224px', embed_dims=48, num_layers=3, num_heads=4,
                    mlp_hidden_dims=96)
    else:  # 300M family: LayerNorm, qkv bias, no q/k norm
        arch = dict(arch='internvit-300m-448px', embed_dims=48, num_layers=3,
                    num_heads=4, mlp_hidden_dims=96)
    arch.update(overrides)
    return arch


def make_hf_state_dict(embed_dims: int, num_layers: int, mlp_hidden_dims: int,
                       qkv_bias: bool, qk_normalization: bool, norm: str, grid: int,
                       patch_size: int = 14, in_channels: int = 3, seed: int = 0,
                       prefix: str = '') -> dict:
    """Random weights with the key names and shapes of the released HF checkpoints."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=0.05):
        return torch.randn(*shape, generator=g) * scale

    C = embed_dims
    sd = {
        'embeddings.class_embedding': rnd(1, 1, C, scale=0.5),
        'embeddings.position_embedding': rnd(1, 1 + grid * grid, C, scale=0.5),
        'embeddings.patch_embedding.weight': rnd(C, in_channels, patch_size, patch_size),
        'embeddings.patch_embedding.bias': rnd(C),
    }
    for i in range(num_layers):
        p = f'encoder.layers.{i}.'
        for n in ('norm1', 'norm2'):
            sd[p + n + '.weight'] = 1 + rnd(C, scale=0.2)
            if norm == 'ln':
                sd[p + n + '.bias'] = rnd(C)
        sd[p + 'attn.qkv.weight'] = rnd(3 * C, C, scale=0.2)
        if qkv_bias:
            sd[p + 'attn.qkv.bias'] = rnd(3 * C)
        if qk_normalization:
            sd[p + 'attn.q_norm.weight'] = 1 + rnd(C, scale=0.2)
            sd[p + 'attn.k_norm.weight'] = 1 + rnd(C, scale=0.2)
        sd[p + 'attn.proj.weight'] = rnd(C, C, scale=0.2)
        sd[p + 'attn.proj.bias'] = rnd(C)
        sd[p + 'mlp.fc1.weight'] = rnd(mlp_hidden_dims, C, scale=0.2)
        sd[p + 'mlp.fc1.bias'] = rnd(mlp_hidden_dims)
        sd[p + 'mlp.fc2.weight'] = rnd(C, mlp_hidden_dims, scale=0.2)
        sd[p + 'mlp.fc2.bias'] = rnd(C)
        sd[p + 'ls1'] = 0.1 + rnd(C, scale=0.3)
        sd[p + 'ls2'] = 0.1 + rnd(C, scale=0.3)
    return {prefix + k: v for k, v in sd.items()}


def hf_state_dict_for(arch: dict, grid: int, **kw) -> dict:
    """HF-layout weights matching a ``tiny_arch`` dict."""
    lnv = arch['arch'].startswith('internvit-300m')
    return make_hf_state_dict(
        arch['embed_dims'], arch['num_layers'], arch['mlp_hidden_dims'],
        qkv_bias=arch.get('qkv_bias', lnv), qk_normalization=arch.get(
            'qk_normalization', not lnv), norm=arch.get('norm_type', 'ln' if lnv else 'rms'),
        grid=grid, patch_size=arch.get('patch_size', 14), **kw)


def to_old_layout(hf: dict) -> dict:
    """The InternVL authors' mmseg-0.x ``.pth`` layout, wrapped under ``module``."""
    old = {}
    for k, v in hf.items():
        k = (k.replace('embeddings.class_embedding', 'cls_token')
             .replace('embeddings.position_embedding', 'pos_embed')
             .replace('embeddings.patch_embedding', 'patch_embed.proj')
             .replace('encoder.layers.', 'blocks.'))
        if k.endswith('.ls1') or k.endswith('.ls2'):
            k += '.gamma'
        old[k] = v
    return {'module': old}


def _rms(x, w, eps=1e-6):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def _ln(x, w, b, eps=1e-6):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu)**2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def naive_forward(sd: dict, img: torch.Tensor, num_heads: int, out_indices,
                  eps: float = 1e-6):
    """Return the NCHW maps after the listed blocks (0-based, non-negative)."""
    w = sd['embeddings.patch_embedding.weight']
    C, p = w.shape[0], w.shape[-1]
    B, _, H, W = img.shape
    h, wd = math.ceil(H / p), math.ceil(W / p)
    img = F.pad(img, (0, wd * p - W, 0, h * p - H))  # zeros at bottom/right
    patches = img.unfold(2, p, p).unfold(3, p, p)  # B, 3, h, w, p, p
    tok = torch.einsum('bchwij,ocij->bhwo', patches, w) + sd[
        'embeddings.patch_embedding.bias']
    x = torch.cat([sd['embeddings.class_embedding'].expand(B, 1, C),
                   tok.reshape(B, h * wd, C)], 1)
    pos = sd['embeddings.position_embedding']
    g = int(round((pos.shape[1] - 1)**0.5))
    grid = pos[:, 1:].reshape(1, g, g, C).permute(0, 3, 1, 2)
    if (g, g) != (h, wd):
        grid = F.interpolate(grid, size=(h, wd), mode='bicubic', align_corners=False)
    x = x + torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, h * wd, C)], 1)

    def norm(t, name):
        if name + '.bias' in sd:
            return _ln(t, sd[name + '.weight'], sd[name + '.bias'], eps)
        return _rms(t, sd[name + '.weight'], eps)

    outs, D = [], C // num_heads
    for i in range(max(out_indices) + 1):
        P = f'encoder.layers.{i}.'
        y = norm(x, P + 'norm1')
        qkv = y @ sd[P + 'attn.qkv.weight'].T
        if P + 'attn.qkv.bias' in sd:
            qkv = qkv + sd[P + 'attn.qkv.bias']
        q, k, v = qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]
        if P + 'attn.q_norm.weight' in sd:  # over the full width, before the head split
            q = _rms(q, sd[P + 'attn.q_norm.weight'], eps)
            k = _rms(k, sd[P + 'attn.k_norm.weight'], eps)
        heads = []
        for hd in range(num_heads):
            s = slice(hd * D, (hd + 1) * D)
            a = torch.softmax(q[..., s] @ k[..., s].transpose(1, 2) / math.sqrt(D), -1)
            heads.append(a @ v[..., s])
        a = torch.cat(heads, -1) @ sd[P + 'attn.proj.weight'].T + sd[P + 'attn.proj.bias']
        x = x + sd[P + 'ls1'] * a
        y = norm(x, P + 'norm2')
        y = F.gelu(y @ sd[P + 'mlp.fc1.weight'].T + sd[P + 'mlp.fc1.bias'])
        x = x + sd[P + 'ls2'] * (y @ sd[P + 'mlp.fc2.weight'].T + sd[P + 'mlp.fc2.bias'])
        if i in out_indices:
            outs.append(x[:, 1:].reshape(B, h, wd, C).permute(0, 3, 1, 2))
    return outs
