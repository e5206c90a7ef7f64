# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""InternViT, the vision encoder of InternVL, as a plain-ViT backbone for dense tasks.

The architecture follows the released checkpoints (see the README and ``PRESETS``):
pre-norm blocks with layer scale, a class token, a learned absolute position embedding
and no final norm. The backbone returns NCHW feature maps at stride ``patch_size``;
building a multi-level pyramid is the job of a neck (``Feature2Pyramid`` in mmseg,
a simple FPN in mmdet), not of the backbone.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks.drop import DropPath
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

from .checkpoint import load_pretrained_into, resize_pos_embed_grid

try:  # optional; only used for half-precision CUDA inputs
    from flash_attn import flash_attn_func
except ImportError:  # flash-attn is an extra, not a requirement
    flash_attn_func = None

# Released InternViT variants (architecture facts from their Hugging Face configs).
# ``pretrain_size`` is the resolution the position grid was trained at; it is only the
# default of ``img_size`` here, since a checkpoint's own grid is read from the file.
_INTERNVIT_6B = dict(
    embed_dims=3200, num_heads=25, mlp_hidden_dims=12800, qkv_bias=False,
    qk_normalization=True, norm_type='rms', layer_scale_init=0.1, patch_size=14)
# InternViT-6B-448px-V1-0 (InternVL-Chat-V1-1) keeps all 48 blocks of the 224px model;
# V1-2 dropped the last 3 and V1-5 / V2-5 inherit that (45 blocks).
PRESETS: Dict[str, dict] = {
    'internvit-6b-224px': dict(_INTERNVIT_6B, num_layers=48, pretrain_size=224),
    'internvit-6b-448px-v1-0': dict(_INTERNVIT_6B, num_layers=48, pretrain_size=448),
    'internvit-6b-448px': dict(_INTERNVIT_6B, num_layers=45, pretrain_size=448),
    'internvit-300m-448px': dict(
        embed_dims=1024, num_layers=24, num_heads=16, mlp_hidden_dims=4096,
        qkv_bias=True, qk_normalization=False, norm_type='ln', layer_scale_init=1.0,
        patch_size=14, pretrain_size=448),
}
# Names of the individual releases that share an architecture with a preset.
PRESET_ALIASES: Dict[str, str] = {
    '6b-224px': 'internvit-6b-224px',
    '6b-448px': 'internvit-6b-448px',
    '6b-448px-v1-0': 'internvit-6b-448px-v1-0',
    'internvit-6b-448px-v1-2': 'internvit-6b-448px',
    'internvit-6b-448px-v1-5': 'internvit-6b-448px',
    'internvit-6b-448px-v2-5': 'internvit-6b-448px',
    '300m-448px': 'internvit-300m-448px',
    'internvit-300m-448px-v2-5': 'internvit-300m-448px',
}
ARCH_KEYS = ('embed_dims', 'num_layers', 'num_heads', 'mlp_hidden_dims', 'qkv_bias',
             'qk_normalization', 'norm_type', 'layer_scale_init', 'patch_size',
             'pretrain_size')
ATTN_IMPLS = ('sdpa', 'flash', 'reference')
_DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16,
           'float16': torch.float16}

# oneDNN's linear with post-ops, the kernel torch.compile's CPU backend emits. F.linear on
# CPU first copies the bias into the output and then runs the GEMM over it, and GELU is
# another pass over the 4x-wide hidden activations; here the bias and GELU are applied
# inside the GEMM. In fp32 without autograd (no backward is defined for it): the frozen
# backbone of linear probing / head tuning, and inference. See tools/analysis_tools/benchmark.py.
_MKLDNN_LINEAR = getattr(getattr(torch.ops, 'mkldnn', None), '_linear_pointwise', None)


MLP_ACTS = ('gelu', 'gelu_tanh')


def linear(x: torch.Tensor, layer: nn.Linear, act: Optional[str] = None) -> torch.Tensor:
    """``layer(x)``, followed by GELU when ``act`` is ``'gelu'`` (exact, erf) or
    ``'gelu_tanh'`` (the tanh approximation); fused on the CPU when no gradient is
    needed."""
    if (_MKLDNN_LINEAR is not None and x.device.type == 'cpu'
            and x.dtype == torch.float32 and layer.weight.dtype == torch.float32
            and torch.backends.mkldnn.is_available()
            and not (torch.is_grad_enabled()
                     and (x.requires_grad or layer.weight.requires_grad))):
        return _MKLDNN_LINEAR(x, layer.weight, layer.bias, 'gelu' if act else 'none',
                              [None], 'tanh' if act == 'gelu_tanh' else 'none')
    y = layer(x)
    if act is None:
        return y
    return F.gelu(y, approximate='tanh' if act == 'gelu_tanh' else 'none')


def resolve_preset(arch: str) -> dict:
    """Return the architecture dict of a preset name or alias (case-insensitive)."""
    if not isinstance(arch, str):
        raise TypeError(f'arch must be a preset name, got {type(arch).__name__}')
    key = arch.lower().replace('_', '-')
    key = PRESET_ALIASES.get(key, key)
    if key not in PRESETS:
        names = sorted(PRESETS) + sorted(PRESET_ALIASES)
        raise ValueError(f'unknown InternViT arch {arch!r}; choose one of {names}')
    return dict(PRESETS[key])


def build_norm(norm_type: str, dims: int, eps: float, **factory) -> nn.Module:
    if norm_type == 'rms':
        return nn.RMSNorm(dims, eps=eps, **factory)
    return nn.LayerNorm(dims, eps=eps, **factory)


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                        mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v spelled out, on (B, heads, N, head_dim) tensors;
    ``mask`` (bool, broadcastable to the scores) keeps the True positions."""
    attn = (q * q.shape[-1]**-0.5) @ k.transpose(-2, -1)
    if mask is not None:
        attn = attn.masked_fill(~mask, float('-inf'))
    return attn.softmax(dim=-1) @ v


class InternAttention(nn.Module):
    """Multi-head self-attention with InternViT's full-width q/k RMS normalisation."""

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool,
                 qk_normalization: bool, norm_eps: float, attn_impl: str,
                 **factory) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.attn_impl = attn_impl
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias, **factory)
        self.qk_normalization = qk_normalization
        if qk_normalization:
            # Normalised over the whole embedding, before the split into heads.
            self.q_norm = nn.RMSNorm(embed_dims, eps=norm_eps, **factory)
            self.k_norm = nn.RMSNorm(embed_dims, eps=norm_eps, **factory)
        self.proj = nn.Linear(embed_dims, embed_dims, **factory)

    def forward(self, x: torch.Tensor,
                key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``key_mask`` (B, N) bool: False marks padding tokens no query may attend to."""
        B, N, C = x.shape
        q, k, v = linear(x, self.qkv).unflatten(-1, (3, C)).unbind(dim=2)
        if self.qk_normalization:
            q, k = self.q_norm(q), self.k_norm(k)
        heads = (self.num_heads, self.head_dims)
        if self.attn_impl == 'flash' and key_mask is None and use_flash_attn(x):
            # flash-attn takes (B, N, heads, head_dim): no transposes needed.
            out = flash_attn_func(q.unflatten(-1, heads), k.unflatten(-1, heads),
                                  v.unflatten(-1, heads))
            return linear(out.flatten(-2), self.proj)
        q, k, v = (t.unflatten(-1, heads).transpose(1, 2) for t in (q, k, v))
        mask = None if key_mask is None else key_mask[:, None, None, :]
        if self.attn_impl == 'reference':
            out = reference_attention(q, k, v, mask)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return linear(out.transpose(1, 2).reshape(B, N, C), self.proj)


def use_flash_attn(x: torch.Tensor) -> bool:
    """flash-attn kernels exist only for CUDA half-precision inputs; other inputs take
    the SDPA path, which computes the same function."""
    return (flash_attn_func is not None and x.is_cuda
            and x.dtype in (torch.float16, torch.bfloat16))


class InternMLP(nn.Module):

    def __init__(self, embed_dims: int, hidden_dims: int, act: str = 'gelu',
                 **factory) -> None:
        super().__init__()
        self.act = act
        self.fc1 = nn.Linear(embed_dims, hidden_dims, **factory)
        self.fc2 = nn.Linear(hidden_dims, embed_dims, **factory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(linear(x, self.fc1, act=self.act), self.fc2)


class InternBlock(nn.Module):
    """Pre-norm transformer block with per-channel layer scale (``ls1``/``ls2``)."""

    def __init__(self, embed_dims: int, num_heads: int, mlp_hidden_dims: int,
                 qkv_bias: bool, qk_normalization: bool, norm_type: str,
                 norm_eps: float, layer_scale_init: float, drop_path: float,
                 attn_impl: str, window_size: int = 0, mlp_act: str = 'gelu',
                 num_prefix: int = 1, window_pad_mask: bool = True, **factory) -> None:
        super().__init__()
        self.window_size = window_size
        self.window_pad_mask = window_pad_mask
        self.num_prefix = num_prefix  # tokens before the patches: the class token
        self.norm1 = build_norm(norm_type, embed_dims, norm_eps, **factory)
        self.attn = InternAttention(embed_dims, num_heads, qkv_bias, qk_normalization,
                                    norm_eps, attn_impl, **factory)
        self.ls1 = nn.Parameter(torch.full((embed_dims, ), layer_scale_init, **factory))
        self.norm2 = build_norm(norm_type, embed_dims, norm_eps, **factory)
        self.mlp = InternMLP(embed_dims, mlp_hidden_dims, mlp_act, **factory)
        self.ls2 = nn.Parameter(torch.full((embed_dims, ), layer_scale_init, **factory))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
        y = self.norm1(x)
        y = self.window_attn(y, grid) if self.window_size else self.attn(y)
        x = self._residual(x, self.ls1, y)
        return self._residual(x, self.ls2, self.mlp(self.norm2(x)))

    def _residual(self, x: torch.Tensor, scale: torch.Tensor,
                  y: torch.Tensor) -> torch.Tensor:
        if self.training and isinstance(self.drop_path, DropPath):
            return x + self.drop_path(scale * y)
        return torch.addcmul(x, scale, y)  # x + scale * y in one pass over memory

    def window_attn(self, x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
        """Attention within ``window_size`` x ``window_size`` windows of the patch grid
        (ViTDet style), so memory grows with the image area instead of its square.

        The (normed) tokens are zero-padded at the bottom/right to whole windows.
        ``window_pad_mask`` (default): the padded tokens are masked out as keys.
        Otherwise they stay in every window's softmax, as the InternVL authors' and
        PIIP's ``WindowedAttention`` leave them: their keys and values are what the
        attention computes from a zero token (q = k = v = 0 without qkv bias, so
        logits 0 and zero values). The class token (when the model has one) joins every
        window and its output is the mean over the windows, so a window covering the
        whole grid computes exactly global attention.
        """
        B, _, C = x.shape
        (h, w), ws, n = grid, self.window_size, self.num_prefix
        cls_tok, patches = x[:, :n], x[:, n:].reshape(B, h, w, C)
        ph, pw = (-h) % ws, (-w) % ws
        nh, nw = (h + ph) // ws, (w + pw) // ws
        patches = F.pad(patches, (0, 0, 0, pw, 0, ph))
        windows = patches.reshape(B, nh, ws, nw, ws, C).transpose(2, 3).reshape(
            B * nh * nw, ws * ws, C)
        seq = torch.cat([cls_tok.repeat_interleave(nh * nw, dim=0), windows], dim=1)
        key_mask = None
        if (ph or pw) and self.window_pad_mask:
            valid = torch.ones(h + ph, w + pw, dtype=torch.bool, device=x.device)
            valid[h:], valid[:, w:] = False, False
            valid = valid.reshape(nh, ws, nw, ws).transpose(1, 2).reshape(nh * nw, ws * ws)
            key_mask = torch.cat([valid.new_ones(nh * nw, n), valid], dim=1).repeat(B, 1)
        out = self.attn(seq, key_mask)
        cls_out = out[:, :n].reshape(B, nh * nw, n, C).mean(dim=1)
        out = out[:, n:].reshape(B, nh, nw, ws, ws, C).transpose(2, 3).reshape(
            B, nh * ws, nw * ws, C)[:, :h, :w]
        return torch.cat([cls_out, out.reshape(B, h * w, C)], dim=1)


class InternViT(BaseModule):
    """InternViT backbone (InternVL's vision encoder) for dense prediction.

    Args:
        arch (str): preset the defaults come from: ``'internvit-6b-224px'`` (48
            blocks), ``'internvit-6b-448px-v1-0'`` (48 blocks), ``'internvit-6b-448px'``
            (45 blocks: the V1-2, V1-5 and V2-5 releases, also spelled
            ``'internvit-6b-448px-v1-2'`` etc.) or ``'internvit-300m-448px'``; see
            ``PRESETS`` / ``PRESET_ALIASES``.
        img_size (int | tuple[int, int], optional): input size the position grid is
            built for; how other input sizes use it is ``pos_embed_mode``. Defaults to
            the preset's pretraining size.
        out_indices (int | Sequence[int]): blocks whose outputs are returned, as NCHW
            maps at stride ``patch_size``; negative indices count from the end.
            ``'stages'``: the four blocks one ``num_layers // 4`` apart that end at
            the last (:func:`stage_ends`: 11/23/35/47 for 48 blocks, 11/22/33/44 for
            45, 5/11/17/23 for 24), the InternVL authors' UperNet inputs, so one
            config serves every release. Defaults to the last block.
        drop_path_rate (float): stochastic depth rate, linearly increasing to this
            value over the blocks.
        attn_impl (str): ``'sdpa'`` (``F.scaled_dot_product_attention``),
            ``'flash'`` (flash-attn for CUDA half-precision inputs, SDPA otherwise) or
            ``'reference'`` (plain matmul + softmax).
        with_cp (bool): recompute each block in the backward pass (gradient
            checkpointing) to save activation memory.
        window_size (int): when > 0, blocks attend within windows of this many
            patches per side (ViTDet style, for large detection inputs); the grid is
            padded to whole windows (bottom/right). 0: global attention.
        window_pad_mask (bool): mask the padding tokens of the windows out as keys
            (default). False keeps them in the softmax as zero tokens, as the InternVL
            authors' detection backbone (InternVL-MMDetSeg) and PIIP's windowed
            attention do (see :meth:`InternBlock.window_attn`).
        global_attn_indexes (Sequence[int]): blocks that keep global attention when
            ``window_size`` > 0 (negative indices allowed), e.g. every 6th block.
        pos_embed_mode (str): how the position grid (sized for ``img_size``) meets an
            input grid of another size. ``'resize'`` stretches it bicubically to the
            input grid, as mmseg's ViT does: for fixed-size crops and whole-image
            segmentation, and what the InternVL authors' and PIIP's detection backbones
            do for every input. ``'crop'`` gives every patch the embedding of its own
            absolute position, taking the top-left part of the grid (ViTDet):
            detection batches are padded bottom/right to varying sizes, and stretching
            would move a pixel's embedding with the padding of the batch it is in.
            One rule holds for every input of a run, whatever its size or aspect
            ratio: in ``'crop'`` mode an input whose patch grid exceeds the grid of
            ``img_size`` in either direction is an error naming ``img_size`` (set it to
            the largest padded input of the run, e.g. 1344 for 1333 x 800 padded to a
            multiple of 32), never a silently stretched grid.
        with_cls_token (bool): prepend the class token, as the released model does.
            False leaves it out (no parameter, nothing attended to) and adds only the
            patch rows of the position embedding (its class row stays, unused), as the
            PIIP InternViT-6B baselines do; a checkpoint's class token is then skipped
            (logged) when loading.
        output_cls_token (bool): each output is ``[map, class_token]`` (the (B, C)
            class token after that block), as mmseg's ``VisionTransformer(
            output_cls_token=True)`` gives it: for heads that read the class token
            (DINOv2's linear depth probes). Needs ``with_cls_token``.
        mlp_act (str): the MLP's activation: ``'gelu'`` (exact, the released model's
            ``hidden_act``) or ``'gelu_tanh'`` (the tanh approximation, which PIIP's
            fused MLP computes).
        frozen (bool): freeze the backbone: no trainable parameters, always in eval
            mode, and forward runs without building an autograd graph.
        param_dtype (str, optional): dtype the weights are created and held in,
            ``'bfloat16'``/``'float16'`` only for a frozen backbone (half the memory
            of fp32); inputs are cast to it and outputs back to the input dtype.
        norm_eps (float): epsilon of every RMSNorm/LayerNorm.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH)`` loads
            released weights in :meth:`init_weights` (HF directory or file, sharded or
            not, ``vision_model.``-prefixed, or the older ``module``-wrapped ``.pth``).
            ``ignore_extra_keys=True`` turns keys that are not part of this backbone
            into a warning instead of an error; ``truncate_blocks=True`` loads the first
            ``num_layers`` blocks of a deeper checkpoint (logged); ``patch_resize``
            (``'pinv'`` or ``'bicubic'``) chooses how a kernel of another patch size
            is resized (:func:`~.checkpoint.load_pretrained_into`).
        **arch_overrides: any of ``embed_dims, num_layers, num_heads,
            mlp_hidden_dims, qkv_bias, qk_normalization, norm_type ('rms'|'ln'),
            layer_scale_init, patch_size, pretrain_size`` to override the preset
            (tiny test models use the same class this way).
    """

    def __init__(self,
                 arch: str = 'internvit-6b-224px',
                 img_size: Optional[Union[int, Tuple[int, int]]] = None,
                 out_indices: Union[int, Sequence[int]] = -1,
                 drop_path_rate: float = 0.0,
                 attn_impl: str = 'sdpa',
                 with_cp: bool = False,
                 window_size: int = 0,
                 global_attn_indexes: Sequence[int] = (),
                 pos_embed_mode: str = 'resize',
                 window_pad_mask: bool = True,
                 with_cls_token: bool = True,
                 output_cls_token: bool = False,
                 mlp_act: str = 'gelu',
                 frozen: bool = False,
                 param_dtype: Optional[str] = None,
                 in_channels: int = 3,
                 norm_eps: float = 1e-6,
                 init_cfg: Optional[dict] = None,
                 **arch_overrides) -> None:
        super().__init__(init_cfg=init_cfg)
        cfg = resolve_preset(arch)
        unknown = sorted(set(arch_overrides) - set(ARCH_KEYS))
        if unknown:
            raise TypeError(f'InternViT got unexpected arguments {unknown}; '
                            f'architecture overrides are {list(ARCH_KEYS)}')
        cfg.update(arch_overrides)
        self.arch_settings = cfg = _validate_arch(cfg)
        self.embed_dims = cfg['embed_dims']
        self.num_layers = cfg['num_layers']
        self.patch_size = cfg['patch_size']

        self.img_size = _to_2tuple(
            cfg['pretrain_size'] if img_size is None else img_size, 'img_size')
        self.grid_size = tuple(math.ceil(s / self.patch_size) for s in self.img_size)
        self.out_indices = _normalize_out_indices(out_indices, self.num_layers)
        if isinstance(drop_path_rate, bool) or not isinstance(drop_path_rate,
                                                              (int, float)):
            raise TypeError(f'drop_path_rate must be a float, got {drop_path_rate!r}')
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f'drop_path_rate must be in [0, 1), got {drop_path_rate}')
        if attn_impl not in ATTN_IMPLS:
            raise ValueError(f'attn_impl must be one of {ATTN_IMPLS}, got {attn_impl!r}')
        if attn_impl == 'flash' and flash_attn_func is None:
            raise ImportError("attn_impl='flash' needs the flash-attn package "
                              "(pip install flash-attn); use attn_impl='sdpa' instead")
        if param_dtype is not None and param_dtype not in _DTYPES:
            raise ValueError(f'param_dtype must be one of {sorted(_DTYPES)} or None, '
                             f'got {param_dtype!r}')
        dtype = _DTYPES[param_dtype or 'float32']
        if dtype != torch.float32 and not frozen:
            raise ValueError(
                f'param_dtype={param_dtype!r} is only supported with frozen=True; a '
                'trainable backbone keeps fp32 master weights (use AMP for bf16)')
        if not isinstance(in_channels, int) or in_channels <= 0:
            raise ValueError(f'in_channels must be a positive int, got {in_channels!r}')
        if init_cfg is not None and not isinstance(init_cfg, dict):
            raise TypeError(f'init_cfg must be a dict or None, got {init_cfg!r}')
        if isinstance(window_size, bool) or not isinstance(window_size, int) \
                or window_size < 0:
            raise ValueError(f'window_size must be an int >= 0, got {window_size!r}')
        global_blocks = set(_normalize_out_indices(list(global_attn_indexes),
                                                   self.num_layers, 'global_attn_indexes',
                                                   allow_empty=True, ordered=False))
        if pos_embed_mode not in ('resize', 'crop'):
            raise ValueError("pos_embed_mode must be 'resize' or 'crop', got "
                             f'{pos_embed_mode!r}')
        if not isinstance(with_cls_token, bool):
            raise TypeError(f'with_cls_token must be True or False, got {with_cls_token!r}')
        if not isinstance(window_pad_mask, bool):
            raise TypeError(f'window_pad_mask must be True or False, got {window_pad_mask!r}')
        if mlp_act not in MLP_ACTS:
            raise ValueError(f'mlp_act must be one of {MLP_ACTS}, got {mlp_act!r}')
        self.with_cls_token = with_cls_token
        self.num_prefix = int(with_cls_token)
        if output_cls_token and not with_cls_token:
            raise ValueError('output_cls_token=True needs with_cls_token=True')
        self.output_cls_token = output_cls_token
        self.mlp_act = mlp_act
        self.pos_embed_mode = pos_embed_mode
        self.window_size = window_size
        self.window_pad_mask = window_pad_mask
        self.global_attn_indexes = sorted(global_blocks)
        self.attn_impl = attn_impl
        self.with_cp = with_cp
        self.frozen = frozen
        self.param_dtype = dtype
        # Weights that init_cfg loads (strictly: every one) are not drawn at random
        # first: they are made on the meta device, then given zeroed memory on the
        # device the model is built on. For the 6B model the random draw was half of
        # build + load (53 s of 105 s on a 2-core CPU). Zeros, not uninitialised
        # memory: a model built but never loaded stays deterministic and finite.
        device = torch.empty(0).device  # the default device, `with torch.device(...)`
        defer_init = (isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'
                      and device.type != 'meta')
        factory = dict(dtype=dtype, device='meta' if defer_init else None)

        C = self.embed_dims
        self.patch_embed = nn.Conv2d(in_channels, C, self.patch_size, self.patch_size,
                                     **factory)
        # no parameter at all without the class token: nothing a checkpoint or an
        # optimizer could mistake for a trained one
        self.cls_token = (nn.Parameter(torch.zeros(1, 1, C, **factory))
                          if with_cls_token else None)
        num_patches = self.grid_size[0] * self.grid_size[1]
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + num_patches, C, **factory))
        # Python floats: a tensor here would live on the meta device under model_info.
        dpr = [drop_path_rate * i / max(self.num_layers - 1, 1)
               for i in range(self.num_layers)]
        self.blocks = nn.ModuleList([
            InternBlock(C, cfg['num_heads'], cfg['mlp_hidden_dims'], cfg['qkv_bias'],
                        cfg['qk_normalization'], cfg['norm_type'], norm_eps,
                        cfg['layer_scale_init'], dpr[i], attn_impl,
                        window_size=0 if i in global_blocks else window_size,
                        mlp_act=mlp_act, num_prefix=self.num_prefix,
                        window_pad_mask=window_pad_mask, **factory)
            for i in range(self.num_layers)
        ])
        if defer_init:
            self.to_empty(device=device)
            with torch.no_grad():
                for p in self.parameters():
                    p.zero_()
        if frozen:
            self.requires_grad_(False)

    # ------------------------------------------------------------------ weights
    def init_weights(self) -> None:
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            # Loaded here rather than by mmengine's PretrainedInit, which loads with
            # strict=False and would silently skip missing or mismatched keys.
            load_pretrained_into(self, **{k: v for k, v in self.init_cfg.items()
                                          if k != 'type'})
            self._is_init = True  # as BaseModule does: parents must not load it again
            return
        super().init_weights()
        if self.init_cfg is not None:
            return  # an explicit init_cfg of another type has been applied
        trunc_normal_(self.pos_embed, std=.02)
        if self.cls_token is not None:
            trunc_normal_(self.cls_token, std=.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> 'InternViT':
        # A frozen backbone stays in eval mode: no drop path, and nothing to update.
        return super().train(mode and not self.frozen)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return one (B, C, ceil(H/p), ceil(W/p)) map per ``out_indices`` entry.

        Inputs whose size is not a multiple of the patch size are zero-padded at the
        bottom/right (the same as mmcv's ``AdaptivePadding(padding='corner')``), so no
        pixel is dropped.
        """
        if x.dim() != 4:
            raise ValueError(f'InternViT expects (B, C, H, W) input, got {tuple(x.shape)}')
        if self.frozen:
            with torch.no_grad():
                return self._forward(x)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        out_dtype = x.dtype
        x = x.to(self.param_dtype) if self.param_dtype != torch.float32 else x
        p = self.patch_size
        pad_h, pad_w = (-x.shape[-2]) % p, (-x.shape[-1]) % p
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.patch_embed(x)
        B, C, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        pos = self._pos_embed_for(h, w).to(x.dtype)
        if self.cls_token is None:
            x = x + pos[:, 1:]  # the class row of the position embedding goes unused
        else:
            x = torch.cat([self.cls_token.expand(B, -1, -1).to(x.dtype), x], dim=1) + pos

        outs = []
        for i, block in enumerate(self.blocks[:self.out_indices[-1] + 1]):
            if self.with_cp and self.training and x.requires_grad:
                x = cp.checkpoint(block, x, (h, w), use_reentrant=False)
            else:
                x = block(x, (h, w))
            if i in self.out_indices:
                # Contiguous NCHW, as every OpenMMLab backbone returns. The transposed
                # view is channels-last in memory; convolutions keep that layout, and
                # mmcv's RoIAlign (CPU and CUDA) reads its input as if it were NCHW
                # without checking (open-mmlab/mmcv#2203), so RoI features came out
                # scrambled whenever the batch had more than one image.
                # One copy does both the layout and, for half-precision weights, the
                # cast back to the input dtype.
                fmap = x[:, self.num_prefix:].transpose(1, 2).reshape(B, C, h, w)
                fmap = fmap.to(out_dtype, memory_format=torch.contiguous_format)
                # [map, class token] per block, as mmseg's VisionTransformer gives them
                outs.append([fmap, x[:, 0].to(out_dtype)] if self.output_cls_token
                            else fmap)
        return tuple(outs)

    def _pos_embed_for(self, h: int, w: int) -> torch.Tensor:
        """The (1, 1 + h*w, C) position embedding of an input grid of h x w patches
        (class row first), by ``pos_embed_mode``: ``'resize'`` stretches the grid to
        (h, w) for every input; ``'crop'`` takes its top-left h x w part for every
        input and refuses one that does not fit."""
        gh, gw = self.grid_size
        if self.pos_embed_mode == 'crop':
            if h > gh or w > gw:
                p = self.patch_size
                raise ValueError(
                    f"pos_embed_mode='crop': an input of {h} x {w} patches ({h * p} x "
                    f'{w * p} px after padding to the patch size) does not fit the '
                    f'position grid of {gh} x {gw} patches built for img_size='
                    f'{self.img_size}. In crop mode every input of a run takes its '
                    'absolute positions from that grid (none is stretched), so img_size '
                    'must cover the largest padded input: set img_size to at least '
                    f'({max(h, gh) * p}, {max(w, gw) * p}) (e.g. 1344 for 1333 x 800 '
                    "images padded to 32), or use pos_embed_mode='resize'")
            if (h, w) == (gh, gw):
                return self.pos_embed
            grid = self.pos_embed[:, 1:].unflatten(1, (gh, gw))[:, :h, :w]
            return torch.cat([self.pos_embed[:, :1], grid.flatten(1, 2)], dim=1)
        return resize_pos_embed_grid(self.pos_embed, self.grid_size, (h, w))


def _to_2tuple(value, name: str) -> Tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise TypeError(f'{name} must be an int or a pair of ints, got {value!r}')
    if min(value) <= 0:
        raise ValueError(f'{name} must be positive, got {value!r}')
    return tuple(value)


def _validate_arch(cfg: dict) -> dict:
    for key in ('embed_dims', 'num_layers', 'num_heads', 'mlp_hidden_dims',
                'patch_size', 'pretrain_size'):
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f'{key} must be an int, got {v!r}')
        if v <= 0:
            raise ValueError(f'{key} must be positive, got {v}')
    if cfg['embed_dims'] % cfg['num_heads']:
        raise ValueError(f"embed_dims ({cfg['embed_dims']}) must be divisible by "
                         f"num_heads ({cfg['num_heads']})")
    for key in ('qkv_bias', 'qk_normalization'):
        if not isinstance(cfg[key], bool):
            raise TypeError(f'{key} must be a bool, got {cfg[key]!r}')
    if cfg['norm_type'] not in ('rms', 'ln'):
        raise ValueError(f"norm_type must be 'rms' or 'ln', got {cfg['norm_type']!r}")
    if isinstance(cfg['layer_scale_init'], bool) or not isinstance(
            cfg['layer_scale_init'], (int, float)):
        raise TypeError(f"layer_scale_init must be a float, got "
                        f"{cfg['layer_scale_init']!r}")
    return cfg


def stage_ends(num_layers: int) -> List[int]:
    """The four blocks whose outputs feed a 4-level decoder: one every
    ``num_layers // 4`` blocks, ending at the last. These are the indices of the
    InternVL authors' dense configs for all three depths (48 -> 11/23/35/47,
    45 -> 11/22/33/44, 24 -> 5/11/17/23)."""
    if num_layers < 4:
        raise ValueError(f"'stages' needs at least 4 blocks, the model has {num_layers}")
    step = num_layers // 4
    return [num_layers - 1 - k * step for k in (3, 2, 1, 0)]


def _normalize_out_indices(indices, num_layers: int, name: str = 'out_indices',
                           allow_empty: bool = False, ordered: bool = True) -> List[int]:
    """Validate block indices (negatives count from the end) and make them >= 0."""
    if indices == 'stages':
        return stage_ends(num_layers)
    if isinstance(indices, int) and not isinstance(indices, bool):
        indices = [indices]
    if not isinstance(indices, (list, tuple)) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in indices):
        raise TypeError(f"{name} must be an int, a sequence of ints or 'stages', "
                        f'got {indices!r}')
    if not indices and not allow_empty:
        raise ValueError(f'{name} must not be empty')
    normalized = []
    for i in indices:
        if not -num_layers <= i < num_layers:
            raise ValueError(f'{name} entry {i} is out of range for {num_layers} blocks')
        normalized.append(i % num_layers)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f'{name} {list(indices)} name a block twice')
    if ordered and normalized != sorted(normalized):
        raise ValueError(f'{name} {list(indices)} must be in increasing order')
    return normalized
