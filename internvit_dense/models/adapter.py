# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""ViT-Adapter around InternViT: a 4-level feature pyramid from a plain ViT.

After Chen et al., "Vision Transformer Adapter for Dense Predictions" (ICLR 2023), and
the InternVL authors' adapter-tuning setting (frozen InternViT-6B, trainable adapter).
The adapter *holds* one :class:`~internvit_dense.models.InternViT` (``self.vit``) and
runs its blocks group by group, so the ViT keeps its own weights, loading, windowed
attention and checkpointing; nothing of it is copied here.

    image --> spatial prior module (conv stem) --> c1 (stride 4), c = [c2, c3, c4] tokens
      |                                              (strides 8 / 16 / 32, + level embed)
      +---> InternViT patch tokens x (stride 16 with patch 16)
    for each interaction group [start, end]:
        x = x + gamma * DeformAttn(query=x, value=c)           # injector, gamma = 0 at init
        x = vit.blocks[start..end](x)
        c = c + DeformAttn(query=c, value=x); c = c + ConvFFN(c)   # extractor
    (two extra extractors after the last group)
    outputs: up(c2) + c1, c2, c3, c4, each + a ViT map resized to its stride (bilinear):
    the final one (after the last group) at every level (``vit_feature='final'``, the
    ViT-Adapter and InternVL wiring), or the map of group k at level k
    (``vit_feature='group'``, this package's variant); then a norm: 4 NCHW maps at
    strides 4, 8, 16, 32.

The class token: when the held ViT has one (``with_cls_token=True``) it joins the blocks
and is left out of the interactions; InternVL's adapter drops it (``cls_token = None``,
the patch tokens get ``pos_embed[:, 1:]``), which is ``with_cls_token=False``.

Deformable attention is mmcv's ``MultiScaleDeformableAttention`` (its CUDA kernel for
CUDA tensors, ``multi_scale_deformable_attn_pytorch`` otherwise). It is imported when an
adapter is built, not when this module is imported, so the core imports with mmcv-lite.
"""
import math
from contextlib import nullcontext
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import ConvModule, build_norm_layer
from mmcv.cnn.bricks.drop import DropPath
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

from .internvit import InternViT, stage_ends
from .norms import LayerNorm2d

# The spatial prior module halves the image 5 times; inputs are padded to a multiple
# of this (and of the patch size) so that every level tiles the same padded image.
PYRAMID_STRIDE = 32
VIT_FEATURES = ('final', 'group')


def reference_points(shapes: Sequence[Tuple[int, int]], device) -> torch.Tensor:
    """Pixel-centre reference points of the grids ``shapes``, in [0, 1] as (x, y):
    (1, sum(h * w), 1, 2). One frame for every level: all grids tile the same padded
    image, so a normalised point means the same pixel at every level."""
    points = []
    for h, w in shapes:
        ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
        ys, xs = torch.meshgrid(ys, xs, indexing='ij')
        points.append(torch.stack([xs.reshape(-1), ys.reshape(-1)], -1))
    return torch.cat(points)[None, :, None]


def level_layout(shapes: Sequence[Tuple[int, int]],
                 device) -> Tuple[torch.Tensor, torch.Tensor]:
    """``spatial_shapes`` (L, 2) and ``level_start_index`` (L,) as mmcv expects them."""
    spatial = torch.as_tensor(shapes, dtype=torch.long, device=device)
    start = torch.cat([spatial.new_zeros(1), spatial.prod(1).cumsum(0)[:-1]])
    return spatial, start


class DeformableAttention(nn.Module):
    """Multi-scale deformable attention with mmcv's ``MultiScaleDeformableAttention``
    layers and sampling op, in the adapter's conventions: queries and values (B, N, C)
    batch-first, no residual (the caller adds it), no dropout, values projected to
    ``C * deform_ratio`` channels (mmcv's ``value_proj_ratio``).

    mmcv's module owns the parameters and their Deformable-DETR initialisation; the
    forward is the module's own, step for step (a test holds it equal to
    ``MultiScaleDeformableAttention.forward``), except that the sampling (locations,
    softmax of the weights, the bilinear gather and weighted sum) always runs in fp32
    with autocast off; the four projections run in the weights' dtype. The InternVL
    authors' copy of the op (their ``ops/deformable_attention``, ``custom_fwd``
    without ``cast_inputs``) samples in the values' dtype, fp16 in their fp16 runs.
    mmcv 2.1's CUDA kernel has float and half paths only, so bf16 values (autocast,
    or a model that DeepSpeed holds in bf16) would not run on it, and half-precision
    sampling locations lose sub-pixel positions on large maps. The sampling is mmcv's
    CUDA kernel for CUDA tensors and ``multi_scale_deformable_attn_pytorch``
    otherwise, as in mmcv.
    """

    def __init__(self, embed_dims: int, num_heads: int, num_levels: int, num_points: int,
                 deform_ratio: float) -> None:
        super().__init__()
        from mmcv.ops import MultiScaleDeformableAttention  # compiled ops: at build time
        self.attn = MultiScaleDeformableAttention(
            embed_dims=embed_dims, num_heads=num_heads, num_levels=num_levels,
            num_points=num_points, dropout=0.0, batch_first=True,
            value_proj_ratio=deform_ratio)

    def init_weights(self) -> None:
        self.attn.init_weights()  # offsets on a ring per head, uniform weights

    def forward(self, query: torch.Tensor, value: torch.Tensor, points: torch.Tensor,
                spatial_shapes: torch.Tensor, level_start: torch.Tensor) -> torch.Tensor:
        """``points``: (1 or B, Nq, 1 or L, 2) reference points (x, y) in [0, 1];
        ``spatial_shapes``: (L, 2) (h, w) of the levels concatenated in ``value``."""
        if query.is_meta:  # shape inference (tools/analysis_tools/model_info.py): nothing to sample
            return query.new_empty(query.shape)
        from mmcv.ops.multi_scale_deform_attn import (
            MultiScaleDeformableAttnFunction,
            multi_scale_deformable_attn_pytorch,
        )
        a = self.attn
        B, Nq, _ = query.shape
        Nv, heads, L, P = value.shape[1], a.num_heads, a.num_levels, a.num_points
        with torch.autocast(query.device.type, enabled=False):
            wdtype = a.value_proj.weight.dtype
            q = query.to(wdtype)
            v = a.value_proj(value.to(wdtype)).float().view(B, Nv, heads, -1)
            offsets = a.sampling_offsets(q).float().view(B, Nq, heads, L, P, 2)
            weights = a.attention_weights(q).float().view(B, Nq, heads, L * P)
            weights = weights.softmax(-1).view(B, Nq, heads, L, P)
            # offsets are in pixels of each level: normalise by its (w, h)
            normalizer = spatial_shapes.flip(-1).float()[None, None, None, :, None, :]
            locations = points.float()[:, :, None, :, None, :] + offsets / normalizer
            if v.is_cuda:
                out = MultiScaleDeformableAttnFunction.apply(
                    v, spatial_shapes, level_start, locations, weights, a.im2col_step)
            else:
                out = multi_scale_deformable_attn_pytorch(v, spatial_shapes, locations,
                                                          weights)
            return a.output_proj(out.to(wdtype)).to(query.dtype)


class ConvFFN(nn.Module):
    """Linear -> 3x3 depthwise conv on each level's map -> GELU -> Linear."""

    def __init__(self, dims: int, hidden_dims: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dims, hidden_dims)
        self.dwconv = nn.Conv2d(hidden_dims, hidden_dims, 3, 1, 1, groups=hidden_dims)
        self.fc2 = nn.Linear(hidden_dims, dims)

    def forward(self, x: torch.Tensor, shapes: Sequence[Tuple[int, int]]) -> torch.Tensor:
        x = self.fc1(x)
        B, _, C = x.shape
        levels = x.split([h * w for h, w in shapes], dim=1)
        x = torch.cat([
            self.dwconv(t.transpose(1, 2).reshape(B, C, h, w)).flatten(2).transpose(1, 2)
            for t, (h, w) in zip(levels, shapes)
        ], dim=1)
        return self.fc2(F.gelu(x))


class Injector(nn.Module):
    """ViT tokens attend to the multi-scale features: ``x + gamma * attn(x, c)``.
    ``gamma`` starts at ``init_values`` (0): a fresh adapter leaves the ViT unchanged."""

    def __init__(self, dims: int, num_heads: int, num_points: int, deform_ratio: float,
                 init_values: float, norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.query_norm = nn.LayerNorm(dims, eps=norm_eps)
        self.feat_norm = nn.LayerNorm(dims, eps=norm_eps)
        self.attn = DeformableAttention(dims, num_heads, 3, num_points, deform_ratio)
        self.init_values = float(init_values)
        self.gamma = nn.Parameter(torch.full((dims, ), self.init_values))

    def forward(self, x: torch.Tensor, c: torch.Tensor, inputs: dict) -> torch.Tensor:
        attn = self.attn(self.query_norm(x), self.feat_norm(c), inputs['points'],
                         inputs['spatial_shapes'], inputs['level_start'])
        return x + self.gamma * attn


class Extractor(nn.Module):
    """Multi-scale features attend to the ViT tokens, then a convolutional FFN."""

    def __init__(self, dims: int, num_heads: int, num_points: int, deform_ratio: float,
                 with_cffn: bool, cffn_ratio: float, drop_path: float,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.query_norm = nn.LayerNorm(dims, eps=norm_eps)
        self.feat_norm = nn.LayerNorm(dims, eps=norm_eps)
        self.attn = DeformableAttention(dims, num_heads, 1, num_points, deform_ratio)
        self.with_cffn = with_cffn
        if with_cffn:
            self.ffn_norm = nn.LayerNorm(dims, eps=norm_eps)
            self.ffn = ConvFFN(dims, int(dims * cffn_ratio))
            self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, c: torch.Tensor, x: torch.Tensor, inputs: dict) -> torch.Tensor:
        c = c + self.attn(self.query_norm(c), self.feat_norm(x), inputs['points'],
                          inputs['spatial_shapes'], inputs['level_start'])
        if self.with_cffn:
            c = c + self.drop_path(self.ffn(self.ffn_norm(c), inputs['query_shapes']))
        return c


class SpatialPriorModule(nn.Module):
    """Conv stem (ResNet-like, ``inplanes`` wide) giving strides 4, 8, 16, 32, each
    projected to the ViT width by a 1x1 conv (with bias). Every 3x3 conv is an mmcv
    ``ConvModule``: conv without bias, the norm of ``norm_cfg``, ReLU; its norm is
    registered as ``bn`` for BatchNorm types and ``ln`` for ``'LN2d'`` (InternVL's
    channels-first LayerNorm, computed in fp32; give its ``eps``: mmcv's default for
    every norm type is 1e-5)."""

    def __init__(self, inplanes: int, embed_dims: int, norm_cfg: dict,
                 in_channels: int = 3) -> None:
        super().__init__()
        if norm_cfg.get('type') == 'LN2d':  # the class itself: built in any scope
            norm_cfg = dict(norm_cfg, type=LayerNorm2d)

        def conv(cin, cout, stride):
            return ConvModule(cin, cout, 3, stride, 1, bias=False, norm_cfg=norm_cfg,
                              act_cfg=dict(type='ReLU'))
        self.stem = nn.Sequential(
            conv(in_channels, inplanes, 2), conv(inplanes, inplanes, 1),
            conv(inplanes, inplanes, 1), nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        self.conv2 = conv(inplanes, 2 * inplanes, 2)
        self.conv3 = conv(2 * inplanes, 4 * inplanes, 2)
        self.conv4 = conv(4 * inplanes, 4 * inplanes, 2)
        self.fc1, self.fc2, self.fc3, self.fc4 = (
            nn.Conv2d(ch, embed_dims, 1) for ch in (inplanes, 2 * inplanes, 4 * inplanes,
                                                   4 * inplanes))

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        c1 = self.stem(x)
        c2 = self.conv2(c1)
        c3 = self.conv3(c2)
        c4 = self.conv4(c3)
        return [self.fc1(c1), self.fc2(c2), self.fc3(c3), self.fc4(c4)]


class InteractionBlock(nn.Module):
    """The injector before a group of ViT blocks and the extractor(s) after it."""

    def __init__(self, dims: int, num_heads: int, num_points: int, deform_ratio: float,
                 init_values: float, with_cffn: bool, cffn_ratio: float,
                 drop_path: float, num_extra_extractors: int,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.injector = Injector(dims, num_heads, num_points, deform_ratio, init_values,
                                 norm_eps)
        extractor = dict(dims=dims, num_heads=num_heads, num_points=num_points,
                         deform_ratio=deform_ratio, with_cffn=with_cffn,
                         cffn_ratio=cffn_ratio, drop_path=drop_path, norm_eps=norm_eps)
        self.extractor = Extractor(**extractor)
        self.extra_extractors = nn.ModuleList(
            Extractor(**extractor) for _ in range(num_extra_extractors))

    def extract(self, c: torch.Tensor, x: torch.Tensor, inputs: dict) -> torch.Tensor:
        c = self.extractor(c, x, inputs)
        for extractor in self.extra_extractors:
            c = extractor(c, x, inputs)
        return c


class InternViTAdapter(BaseModule):
    """ViT-Adapter over InternViT: 4 NCHW maps at strides 4, 8, 16, 32, any input size.

    Args:
        arch (str): InternViT preset (see :class:`InternViT`).
        interaction_indexes (Sequence[Sequence[int]], optional): four ``[start, end]``
            groups of ViT blocks (inclusive) that together cover every block in order,
            e.g. ``[[0, 11], [12, 23], [24, 35], [36, 47]]`` for 48 blocks. An injector
            runs before each group and an extractor after it. Default: the groups that
            end at :func:`~internvit_dense.models.internvit.stage_ends` (48 blocks:
            the example; 45: ``[[0, 11], [12, 22], [23, 33], [34, 44]]``).
        freeze_vit (bool): adapter tuning. The InternViT is built with
            ``frozen=True`` (no trainable parameters, always in eval mode, weights may
            be bf16 via ``param_dtype``); the adapter and the heads train.
        with_cp (bool): gradient checkpointing of every ViT block and every injector
            and extractor. It is the held InternViT's own ``with_cp``, so switching it
            there (the DeepSpeed strategy does) switches the whole adapter.
        conv_inplane (int): width of the spatial prior module's stem.
        n_points (int): sampling points per head and level of the deformable attention.
        deform_num_heads (int, optional): heads of the deformable attention; must
            divide the ViT width and ``width * deform_ratio``. Default: the ViT's.
        init_values (float): initial injector gamma (0: the ViT starts unchanged).
        with_cffn (bool): convolutional FFN in the extractors.
        cffn_ratio (float): hidden width of that FFN, as a fraction of the ViT width.
        deform_ratio (float): value projection width of the deformable attention, as
            a fraction of the ViT width (0.25 in InternVL's adapter; ViT-Adapter used
            0.5 with ViT-L for detection).
        add_vit_feature (bool): add the ViT maps to the adapter's (resized to each
            level's stride, bilinear, ``align_corners=False``).
        vit_feature (str): which ViT maps are added. ``'final'``: the map after the
            last group at all four levels (resized x4, x2, x1, x0.5), as ViT-Adapter
            and the InternVL authors' adapter do. ``'group'``: the map after group k
            at level k, this package's variant (the default, so that configs that do
            not name it keep their model).
        num_extra_extractors (int): extractors after the last group's one.
        extractor_drop_path (float): stochastic depth on the extractors' FFN.
        norm_cfg (dict): norm of the spatial prior module's convs, e.g.
            ``dict(type='SyncBN')``, or ``dict(type='LN2d', eps=1e-6)`` for InternVL's
            channels-first LayerNorm (computed in fp32).
        interaction_norm_eps (float): eps of the injectors' and extractors'
            LayerNorms (query, feature and FFN norms): 1e-6 here by default, 1e-5
            (``nn.LayerNorm``'s default) in InternVL's adapter.
        out_norm_cfg (dict, optional): norm of each output map; None: LayerNorm over
            channels, eps 1e-6, computed in fp32 (InternVL's adapter), e.g.
            ``dict(type='SyncBN')`` as in the original ViT-Adapter.
        out_fp32 (bool): the output norms take the levels in fp32 and the maps are
            returned in fp32, as InternVL's adapter does (``norm(c.float())``), whatever
            the precision the adapter runs in (fp16 under DeepSpeed). False: the maps
            come back in the dtype the adapter computes in (the input's).
        init_cfg (dict, optional): the InternViT's: ``dict(type='Pretrained',
            checkpoint=PATH)`` loads released weights into it strictly, through the
            same loader as the plain backbone (every layout, patch 14 -> 16 kernel and
            grid resize). The adapter's own layers always initialise themselves.
        **vit_kwargs: any other :class:`InternViT` argument (``img_size``,
            ``patch_size``, ``drop_path_rate``, ``window_size``,
            ``global_attn_indexes``, ``pos_embed_mode``, ``param_dtype``,
            ``with_cls_token``, ``attn_impl``, architecture overrides, ...). With
            ``with_cls_token=False`` the blocks see the patch tokens alone (InternVL's
            adapter); otherwise the class token joins every block.

    Inputs are zero-padded at the bottom/right to a multiple of ``lcm(32, patch_size)``
    (32 for patch 16), so that the ViT grid and the four levels tile the same padded
    image; each output is then cropped to ``ceil(H / stride) x ceil(W / stride)``.
    """

    def __init__(self,
                 arch: str = 'internvit-6b-224px',
                 interaction_indexes: Optional[Sequence[Sequence[int]]] = None,
                 freeze_vit: bool = False,
                 with_cp: bool = False,
                 conv_inplane: int = 64,
                 n_points: int = 4,
                 deform_num_heads: Optional[int] = None,
                 init_values: float = 0.0,
                 with_cffn: bool = True,
                 cffn_ratio: float = 0.25,
                 deform_ratio: float = 0.25,
                 add_vit_feature: bool = True,
                 vit_feature: str = 'group',
                 num_extra_extractors: int = 2,
                 extractor_drop_path: float = 0.0,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),  # noqa: B006
                 interaction_norm_eps: float = 1e-6,
                 out_norm_cfg: Optional[dict] = None,
                 out_fp32: bool = False,
                 init_cfg: Optional[dict] = None,
                 **vit_kwargs) -> None:
        super().__init__(init_cfg=None)  # init_cfg belongs to the ViT, see init_weights
        for key, hint in (('frozen', 'use freeze_vit'),
                          ('out_indices', 'interaction_indexes choose the ViT outputs')):
            if key in vit_kwargs:
                raise TypeError(f'InternViTAdapter got {key!r}: {hint}')
        if not isinstance(freeze_vit, bool):
            raise TypeError(f'freeze_vit must be a bool, got {freeze_vit!r}')
        if vit_kwargs.get('param_dtype') not in (None, 'float32') and not freeze_vit:
            raise ValueError(f"param_dtype={vit_kwargs['param_dtype']!r} needs "
                             'freeze_vit=True: a trainable ViT keeps fp32 weights')
        self.vit = InternViT(arch=arch, with_cp=with_cp, frozen=freeze_vit,
                             init_cfg=init_cfg, **vit_kwargs)
        C, L = self.vit.embed_dims, self.vit.num_layers
        self.embed_dims = C
        self.freeze_vit = freeze_vit
        self.interaction_indexes = _check_groups(interaction_indexes, L)
        # the ViT's own out_indices: its plain forward returns the maps after the groups
        # (forward_intermediates()['vit'] while the injectors change nothing)
        self.vit.out_indices = [end for _, end in self.interaction_indexes]
        heads = self.vit.arch_settings['num_heads'] if deform_num_heads is None \
            else deform_num_heads
        for name, value in (('n_points', n_points), ('conv_inplane', conv_inplane),
                            ('deform_num_heads', heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f'{name} must be a positive int, got {value!r}')
        for name, value in (('deform_ratio', deform_ratio), ('cffn_ratio', cffn_ratio)):
            if not isinstance(value, (int, float)) or value <= 0 or int(C * value) < 1:
                raise ValueError(f'{name} must be > 0 (of width {C}), got {value!r}')
        if C % heads or int(C * deform_ratio) % heads:
            raise ValueError(
                f'deform_num_heads={heads} must divide the ViT width {C} and the value '
                f'width {int(C * deform_ratio)} (width x deform_ratio)')
        if not 0.0 <= extractor_drop_path < 1.0:
            raise ValueError(f'extractor_drop_path must be in [0, 1), got '
                             f'{extractor_drop_path!r}')
        if vit_feature not in VIT_FEATURES:
            raise ValueError(f'vit_feature must be one of {VIT_FEATURES}, got '
                             f'{vit_feature!r}')
        for name, value in (('add_vit_feature', add_vit_feature), ('out_fp32', out_fp32)):
            if not isinstance(value, bool):
                raise TypeError(f'{name} must be True or False, got {value!r}')
        if isinstance(interaction_norm_eps, bool) or not isinstance(
                interaction_norm_eps, (int, float)) or interaction_norm_eps <= 0:
            raise ValueError(f'interaction_norm_eps must be a float > 0, got '
                             f'{interaction_norm_eps!r}')
        self.add_vit_feature = add_vit_feature
        self.vit_feature = vit_feature
        self.out_fp32 = out_fp32
        p = self.vit.patch_size
        self.size_divisor = PYRAMID_STRIDE * p // math.gcd(PYRAMID_STRIDE, p)

        self.spm = SpatialPriorModule(conv_inplane, C, norm_cfg,
                                      in_channels=self.vit.patch_embed.in_channels)
        self.level_embed = nn.Parameter(torch.zeros(3, C))
        n = len(self.interaction_indexes)
        self.interactions = nn.ModuleList(
            InteractionBlock(C, heads, n_points, deform_ratio, init_values, with_cffn,
                             cffn_ratio, extractor_drop_path,
                             num_extra_extractors if i == n - 1 else 0,
                             norm_eps=float(interaction_norm_eps))
            for i in range(n))
        self.up = nn.ConvTranspose2d(C, C, 2, 2)
        self.out_norms = nn.ModuleList(
            LayerNorm2d(C, eps=1e-6) if out_norm_cfg is None
            else build_norm_layer(out_norm_cfg, C)[1] for _ in range(4))

    # ------------------------------------------------------------------ properties
    @property
    def with_cp(self) -> bool:
        return self.vit.with_cp

    @with_cp.setter
    def with_cp(self, value: bool) -> None:
        self.vit.with_cp = value

    @property
    def arch_settings(self) -> dict:
        return self.vit.arch_settings

    @property
    def frozen(self) -> bool:
        return self.vit.frozen

    @property
    def param_dtype(self) -> torch.dtype:
        return self.vit.param_dtype

    @property
    def strides(self) -> Tuple[int, ...]:
        return (4, 8, 16, 32)

    # ------------------------------------------------------------------ weights
    def init_weights(self) -> None:
        """The ViT loads its pretrained weights (or initialises itself); the adapter
        initialises as the original: trunc-normal linears, He-normal (fan-out) convs,
        unit norms, Deformable-DETR deformable attention, normal level embedding."""
        self.vit.init_weights()
        for part in (self.spm, self.interactions, self.up, self.out_norms):
            part.apply(_init_adapter_layer)
        for m in self.modules():
            if isinstance(m, DeformableAttention):
                m.init_weights()
        for m in self.interactions.modules():
            if isinstance(m, Injector):
                nn.init.constant_(m.gamma, m.init_values)
        nn.init.normal_(self.level_embed)
        self._is_init = True

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, C_in, H, W) -> 4 maps (B, width, ceil(H / s), ceil(W / s)), s = 4 ... 32."""
        return self.forward_intermediates(x)['pyramid']

    def forward_intermediates(self, x: torch.Tensor) -> Dict[str, tuple]:
        """``pyramid``: the 4 output maps; ``vit``: the ViT's NCHW map after each
        interaction group (stride ``patch_size``, on the padded input), i.e. what the
        plain ``InternViT`` with ``out_indices`` = the group ends returns for the padded
        input while the injectors change nothing; ``padded_size``: (H, W) after
        padding."""
        if x.dim() != 4:
            raise ValueError(f'InternViTAdapter expects (B, C, H, W) input, got '
                             f'{tuple(x.shape)}')
        H, W = x.shape[-2:]
        m = self.size_divisor
        if H % m or W % m:
            x = F.pad(x, (0, (-W) % m, 0, (-H) % m))
        Hp, Wp = x.shape[-2:]
        dtype, vit = x.dtype, self.vit

        c1, *cs = self.spm(x)
        shapes = [tuple(t.shape[-2:]) for t in cs]  # strides 8, 16, 32
        c = torch.cat([t.flatten(2).transpose(1, 2) + self.level_embed[i]
                       for i, t in enumerate(cs)], dim=1)

        # The frozen ViT: its weights never get gradients (requires_grad=False, no
        # optimizer state) and may be bf16. The embedding runs without autograd. The
        # blocks run with autograd on in training, because the injectors add
        # trainable features into the tokens before every group, and their gradients
        # (and those of the extractors reading the tokens) pass back through the
        # blocks' activations; so "no autograd graph through it" holds for its
        # parameters, not for the tokens. With with_cp the blocks keep only their
        # inputs and recompute the rest in the backward pass.
        # The class token (when the ViT has one) joins the blocks and is left out of
        # the interactions; without one (InternVL's adapter) the patch tokens get the
        # patch rows of the position embedding and the blocks see them alone.
        n = vit.num_prefix
        # the dtype the ViT's weights are in: its param_dtype, or what DeepSpeed cast
        # them to (fp16 / bf16 runs hold the whole model in that dtype)
        vdtype = vit.patch_embed.weight.dtype
        with torch.no_grad() if self.freeze_vit else nullcontext():
            tokens = vit.patch_embed(x.to(vdtype))
            h, w = tokens.shape[-2:]
            tokens = tokens.flatten(2).transpose(1, 2)
            B = tokens.shape[0]
            pos = vit._pos_embed_for(h, w).to(tokens.dtype)
            if vit.cls_token is None:
                tokens = tokens + pos[:, 1:]
            else:
                cls_tok = vit.cls_token.expand(B, -1, -1).to(tokens.dtype)
                tokens = torch.cat([cls_tok, tokens], dim=1) + pos
        prefix, x = tokens[:, :n], tokens[:, n:].to(dtype)

        device = x.device
        vit_shape = [(h, w)]
        inject = dict(zip(('spatial_shapes', 'level_start'), level_layout(shapes, device)),
                      points=reference_points(vit_shape, device))
        extract = dict(zip(('spatial_shapes', 'level_start'),
                           level_layout(vit_shape, device)),
                       points=reference_points(shapes, device), query_shapes=shapes)

        vit_maps = []
        for (start, end), block in zip(self.interaction_indexes, self.interactions):
            x = self._run(block.injector, x, c, inject)
            seq = x.to(vdtype)
            if n:
                seq = torch.cat([prefix, seq], dim=1)
            for i in range(start, end + 1):
                seq = self._run(vit.blocks[i], seq, (h, w))
            prefix, x = seq[:, :n], seq[:, n:].to(dtype)
            c = self._run(block.extract, c, x, extract)
            vit_maps.append(x.transpose(1, 2).reshape(B, -1, h, w))

        n2, n3, _ = (a * b for a, b in shapes)
        c2, c3, c4 = (t.transpose(1, 2).reshape(B, -1, *s)
                      for t, s in zip(c.split([n2, n3, c.shape[1] - n2 - n3], dim=1), shapes))
        levels = [self.up(c2) + c1, c2, c3, c4]
        if self.add_vit_feature:
            added = vit_maps if self.vit_feature == 'group' else [vit_maps[-1]] * 4
            levels = [lvl + _resize(v, lvl.shape[-2:]) for lvl, v in zip(levels, added)]
        outs = []
        for s, lvl, norm in zip(self.strides, levels, self.out_norms):
            # contiguous NCHW, as every OpenMMLab backbone returns (RoIAlign needs it)
            out = norm(lvl.float() if self.out_fp32 else lvl)[..., :-(-H // s), :-(-W // s)]
            outs.append(out.contiguous())
        return dict(pyramid=tuple(outs), vit=tuple(vit_maps),
                    padded_size=(Hp, Wp))

    def _run(self, fn, *args):
        """``fn(*args)``, recomputed in the backward pass under ``with_cp``."""
        if self.with_cp and self.training and torch.is_grad_enabled() and any(
                isinstance(a, torch.Tensor) and a.requires_grad for a in args):
            return cp.checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode='bilinear', align_corners=False)


def _init_adapter_layer(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.LayerNorm, nn.modules.batchnorm._BatchNorm, nn.GroupNorm)):
        if m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def _check_groups(groups, num_layers: int) -> List[Tuple[int, int]]:
    """Four contiguous ``[start, end]`` groups covering blocks 0 .. num_layers - 1."""
    if groups is None:  # the groups that end at the UperNet configs' stage blocks
        ends = stage_ends(num_layers)
        groups = [[start, end] for start, end in zip([0] + [e + 1 for e in ends], ends)]
    ok = (isinstance(groups, (list, tuple)) and len(groups) == 4 and all(
        isinstance(g, (list, tuple)) and len(g) == 2 and all(
            isinstance(i, int) and not isinstance(i, bool) for i in g) for g in groups))
    if not ok:
        raise TypeError('interaction_indexes must be four [start, end] pairs of ints '
                        f'(one per output stride 4/8/16/32), got {groups!r}')
    expected = 0
    for start, end in groups:
        if start != expected or end < start:
            raise ValueError(
                f'interaction_indexes {list(map(list, groups))} must be contiguous '
                f'[start, end] groups in order from block 0, each non-empty')
        expected = end + 1
    if expected != num_layers:
        raise ValueError(f'interaction_indexes {list(map(list, groups))} must cover all '
                         f'{num_layers} blocks of the ViT (last end {expected - 1})')
    return [tuple(g) for g in groups]
