"""A naive, independent fp32 re-implementation of the InternVL authors' adapter segmentor.

It follows, module by module, the mmseg 0.x code of the published adapter-tuning model
(58.1 mIoU) so that ``state_dict()`` has the upstream key names, shapes and nesting
(``backbone.spm.*``, ``backbone.interactions.*``, ``backbone.level_embed``,
``backbone.up.*``, ``backbone.norm1..4``, the ViT's ``backbone.patch_embed.proj.*``,
``backbone.pos_embed``, ``backbone.blocks.*``, then ``decode_head.*`` and
``auxiliary_head.*``) and the forward computes what the upstream forward computes, in
fp32. Plain torch only: no mmcv, mmseg, timm or compiled deformable-attention op.

Sources followed (InternVL-MMDetSeg, read for their arithmetic and names):

``VA``   ``mmsegmentation/mmseg/models/backbones/vit_adapter.py`` (``InternViTAdapter``)
``AM``   ``mmsegmentation/mmseg/models/backbones/adapter_modules.py`` (spatial prior
         module, injector, extractor, ConvFFN / DWConv, ``deform_inputs``, LayerNorm)
``MSDA`` ``ops/deformable_attention/modules/ms_deform_attn.py`` (``MSDeformAttn``) and
         its ``functions/ms_deform_attn_func.py``
``CFG``  ``mmsegmentation/configs/intern_vit_6b/vit_adapter/
         upernet_intern_vit_adapter_6b_512_80k_ade20k_bs16_lr4e-5.py``
The ViT blocks, the heads (the fork's UPerHead / FCNHead, ``x.float()``) and the
segmentor are those of ``upstream_internvl.py`` (InternViT6B's blocks, patch embedding
and position embedding are what ``InternViTAdapter(InternViT6B)`` inherits).

Quirks kept on purpose:

* ``self.cls_token = None`` (VA): the parameter InternViT6B registered is replaced by
  None, so the state dict has no ``backbone.cls_token``; the tokens get
  ``pos_embed[:, 1:]`` (the class row of the position embedding stays, unused).
* ``InteractionBlock(norm_layer=nn.LayerNorm)`` (VA): the injector's and extractors'
  norms are ``nn.LayerNorm(dim)``, eps 1e-5, although adapter_modules defaults to 1e-6.
* ``deform_inputs`` derives every level's shape from the image (``h // 8``, ``h // 16``,
  ``h // 32``), and ``DWConv`` splits the tokens with ``n = N // 21`` (the 2H x 2W, H x W,
  H/2 x W/2 grids of the ViT grid H x W): both hold only for inputs whose ViT grid has
  even sides, as at 512 (grid 32).
* The ViT feature added to the pyramid is the FINAL ``x`` (after the last group),
  bilinearly resized by ``scale_factor`` 4, 2, 1 (none) and 0.5, ``align_corners=False``.
* The final norms are AM's channels-first ``LayerNorm`` (eps 1e-6) applied to
  ``c.float()``: the maps come out in fp32.
* The extra extractors (two, on the last interaction) get no ``n_levels`` (1, the
  default) and the ``drop_path`` of the backbone (``drop_path_rate``, 0.0 in CFG).

Deliberate deviations (neutral in fp32 eval): the deformable sampling (the compiled
``MultiScaleDeformableAttention`` CUDA op upstream) is written by hand here: bilinear
interpolation of each level's map at ``location * size - 0.5`` with zeros outside, the
four corners gathered explicitly (no ``F.grid_sample``); checkpointing (``with_cp``) and
drop path are left out (identity in eval); attention is upstream_internvl's naive one.
"""
import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from upstream_internvl import (
    FCNHead,
    InternViT6B,
    LayerNorm,
    UPerHead,
    UpstreamSegmentor,
    _randomize_,
)

__all__ = ['build_upstream_adapter_segmentor', 'InternViTAdapter', 'MSDeformAttn',
           'deform_inputs', 'sample_by_hand', 'UPSTREAM_RECIPE']

# CFG (+ its bases, _base_/models/upernet_r50.py and schedules/schedule_80k.py, and
# zero_configs/adam_zero1_fp16.json), written out: what the published leaf must build.
UPSTREAM_RECIPE = dict(
    backbone=dict(
        type='InternViTAdapter', pretrain_size=224, img_size=512, patch_size=16,
        embed_dim=3200, depth=48, num_heads=25, mlp_ratio=4., qkv_bias=False,
        drop_path_rate=0.0, init_values=0.0, with_cp=True, use_flash_attn=True,
        qk_normalization=True, layerscale_force_fp32=False, with_fpn=False,
        freeze_vit=True, use_final_norm=True,
        interaction_indexes=[[0, 11], [12, 23], [24, 35], [36, 47]],
        cffn_ratio=0.25, deform_ratio=0.25,
        # InternViTAdapter.__init__ defaults CFG does not override
        conv_inplane=64, n_points=4, deform_num_heads=25, with_cffn=True,
        add_vit_feature=True, use_extra_extractor=True,
        # InternViT6B.__init__ defaults: layer-scale init 0.1, RMSNorm eps 1e-6
        layer_scale_init_values=0.1, in_chans=3),
    decode_head=dict(type='UPerHead', in_channels=[3200] * 4, in_index=[0, 1, 2, 3],
                     pool_scales=(1, 2, 3, 6), channels=1536, dropout_ratio=0.1,
                     num_classes=150, norm_cfg=dict(type='SyncBN', requires_grad=True),
                     align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                      loss_weight=1.0)),
    auxiliary_head=dict(type='FCNHead', in_channels=3200, in_index=2, channels=1536,
                        num_convs=1, concat_input=False, dropout_ratio=0.1,
                        num_classes=150, norm_cfg=dict(type='SyncBN', requires_grad=True),
                        align_corners=False,
                        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                         loss_weight=0.4)),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)),
    optimizer=dict(type='AdamW', lr=4e-5, betas=(0.9, 0.999), weight_decay=0.05,
                   layer_decay_rate=0.95, grad_clip=None),
    lr_config=dict(policy='poly', warmup='linear', warmup_iters=1500, warmup_ratio=1e-6,
                   power=1.0, min_lr=0.0, by_epoch=False),
    runner=dict(max_iters=80000, samples_per_gpu=2, gpus=8),
    checkpoint=dict(interval=1000, max_keep_ckpts=2),
    evaluation=dict(interval=1000, metric='mIoU', save_best='auto'),
    deepspeed=dict(
        fp16=dict(enabled=True, auto_cast=False),
        zero_optimization=dict(stage=1, allgather_partitions=True,
                               allgather_bucket_size=1e9, overlap_comm=True,
                               reduce_scatter=False, reduce_bucket_size=1e9,
                               contiguous_gradients=True),
        # DeepSpeed 0.8.0 with a json that names no scaling key: ZeRO's
        # DynamicLossScaler() defaults
        loss_scaler=dict(init_scale=2**32, scale_window=1000, delayed_shift=1, min_scale=1),
        gradient_clipping=None),
)


# --------------------------------------------------------------------------------------
# Multi-scale deformable attention (MSDA)
# --------------------------------------------------------------------------------------
def sample_by_hand(value, shapes, locations, weights):
    """What the compiled op computes. value (N, S, M, D) of the levels ``shapes``
    concatenated; locations (N, Lq, M, L, P, 2) as (x, y) in [0, 1] of each level
    (top-left corner 0, bottom-right 1); weights (N, Lq, M, L, P). Each point is read
    bilinearly at pixel ``(x * W - 0.5, y * H - 0.5)`` (pixel centres at integers), a
    corner outside the map contributing zero; returns (N, Lq, M * D)."""
    N, _, M, D = value.shape
    _, Lq, _, L, P, _ = locations.shape
    out = value.new_zeros(N, Lq, M, D)
    start = 0
    for lvl, (H, W) in enumerate(shapes):
        v = value[:, start:start + H * W]  # (N, H*W, M, D)
        start += H * W
        px = locations[:, :, :, lvl, :, 0] * W - 0.5  # (N, Lq, M, P)
        py = locations[:, :, :, lvl, :, 1] * H - 0.5
        x0, y0 = px.floor(), py.floor()
        for xi, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
            for yi, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
                inside = (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H)
                flat = (yi.clamp(0, H - 1) * W + xi.clamp(0, W - 1)).long()
                # gather value[n, flat, m, :] for every (n, q, m, p)
                idx = flat.permute(0, 2, 1, 3).reshape(N, M, Lq * P)
                vm = v.permute(0, 2, 1, 3)  # (N, M, H*W, D)
                got = torch.gather(vm, 2, idx[..., None].expand(-1, -1, -1, D))
                got = got.view(N, M, Lq, P, D).permute(0, 2, 1, 3, 4)  # (N, Lq, M, P, D)
                w = (wx * wy * inside) * weights[:, :, :, lvl]  # (N, Lq, M, P)
                out += (got * w[..., None]).sum(3)
    return out.reshape(N, Lq, M * D)


class MSDeformAttn(nn.Module):
    """MSDA ``MSDeformAttn(d_model, n_levels, n_heads, n_points, ratio)``: keys
    ``sampling_offsets``, ``attention_weights``, ``value_proj`` (d_model -> d_model *
    ratio), ``output_proj``; ``_reset_parameters`` (offsets on a ring, zero attention
    weights, xavier value / output projections)."""

    def __init__(self, d_model=256, n_levels=4, n_heads=8, n_points=4, ratio=1.0):
        super().__init__()
        assert d_model % n_heads == 0
        self.im2col_step = 64
        self.d_model, self.n_levels, self.n_heads, self.n_points = (d_model, n_levels,
                                                                    n_heads, n_points)
        self.ratio = ratio
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, int(d_model * ratio))
        self.output_proj = nn.Linear(int(d_model * ratio), d_model)
        self._reset_parameters()

    def _reset_parameters(self):
        nn.init.constant_(self.sampling_offsets.weight.data, 0.)
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (
            2.0 * math.pi / self.n_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(
            self.n_heads, 1, 1, 2).repeat(1, self.n_levels, self.n_points, 1)
        for i in range(self.n_points):
            grid[:, :, i, :] *= i + 1
        with torch.no_grad():
            self.sampling_offsets.bias = nn.Parameter(grid.view(-1))
        nn.init.constant_(self.attention_weights.weight.data, 0.)
        nn.init.constant_(self.attention_weights.bias.data, 0.)
        nn.init.xavier_uniform_(self.value_proj.weight.data)
        nn.init.constant_(self.value_proj.bias.data, 0.)
        nn.init.xavier_uniform_(self.output_proj.weight.data)
        nn.init.constant_(self.output_proj.bias.data, 0.)

    def forward(self, query, reference_points, input_flatten, input_spatial_shapes,
                input_level_start_index, input_padding_mask=None):
        N, Len_q, _ = query.shape
        N, Len_in, _ = input_flatten.shape
        assert int((input_spatial_shapes[:, 0] * input_spatial_shapes[:, 1]).sum()) == Len_in
        value = self.value_proj(input_flatten)
        value = value.view(N, Len_in, self.n_heads, int(self.ratio * self.d_model)
                           // self.n_heads)
        offsets = self.sampling_offsets(query).view(N, Len_q, self.n_heads, self.n_levels,
                                                    self.n_points, 2)
        weights = self.attention_weights(query).view(N, Len_q, self.n_heads,
                                                     self.n_levels * self.n_points)
        weights = F.softmax(weights, -1).view(N, Len_q, self.n_heads, self.n_levels,
                                              self.n_points)
        # reference_points (N or 1, Len_q, n_levels, 2): offsets are in pixels of each
        # level, normalised by its (W, H)
        normalizer = torch.stack([input_spatial_shapes[..., 1], input_spatial_shapes[..., 0]],
                                 -1)
        locations = reference_points[:, :, None, :, None, :] + \
            offsets / normalizer[None, None, None, :, None, :]
        locations = locations.to(value.dtype)
        weights = weights.to(value.dtype)
        shapes = [tuple(int(s) for s in hw) for hw in input_spatial_shapes]
        return self.output_proj(sample_by_hand(value, shapes, locations, weights))


# --------------------------------------------------------------------------------------
# Adapter modules (AM)
# --------------------------------------------------------------------------------------
def get_reference_points(spatial_shapes, device):
    refs = []
    for H_, W_ in spatial_shapes:
        ref_y, ref_x = torch.meshgrid(
            torch.linspace(0.5, H_ - 0.5, H_, dtype=torch.float32, device=device),
            torch.linspace(0.5, W_ - 0.5, W_, dtype=torch.float32, device=device),
            indexing='ij')
        ref_y = ref_y.reshape(-1)[None] / H_
        ref_x = ref_x.reshape(-1)[None] / W_
        refs.append(torch.stack((ref_x, ref_y), -1))
    return torch.cat(refs, 1)[:, :, None]


def deform_inputs(x):
    """AM ``deform_inputs``: the injector's (queries: the ViT grid h/16; values: levels
    h/8, h/16, h/32) and the extractors' (queries: those three levels; values: the ViT
    grid) reference points, spatial shapes and level start indices."""
    _, _, h, w = x.shape
    shapes = torch.as_tensor([(h // 8, w // 8), (h // 16, w // 16), (h // 32, w // 32)],
                             dtype=torch.long, device=x.device)
    start = torch.cat((shapes.new_zeros((1, )), shapes.prod(1).cumsum(0)[:-1]))
    inputs1 = [get_reference_points([(h // 16, w // 16)], x.device), shapes, start]
    shapes = torch.as_tensor([(h // 16, w // 16)], dtype=torch.long, device=x.device)
    start = torch.cat((shapes.new_zeros((1, )), shapes.prod(1).cumsum(0)[:-1]))
    inputs2 = [get_reference_points([(h // 8, w // 8), (h // 16, w // 16),
                                     (h // 32, w // 32)], x.device), shapes, start]
    return inputs1, inputs2


class DWConv(nn.Module):
    """Key ``dwconv`` (3x3 depthwise, bias); the three levels split by ``N // 21``."""

    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def forward(self, x, H, W):
        B, N, C = x.shape
        n = N // 21
        x1 = x[:, 0:16 * n, :].transpose(1, 2).reshape(B, C, H * 2, W * 2)
        x2 = x[:, 16 * n:20 * n, :].transpose(1, 2).reshape(B, C, H, W)
        x3 = x[:, 20 * n:, :].transpose(1, 2).reshape(B, C, H // 2, W // 2)
        return torch.cat([self.dwconv(t).flatten(2).transpose(1, 2) for t in (x1, x2, x3)],
                         dim=1)


class ConvFFN(nn.Module):
    """Keys ``fc1``, ``dwconv.dwconv``, ``fc2``: fc1 -> DWConv -> GELU -> fc2."""

    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.dwconv = DWConv(hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x, H, W):
        return self.fc2(self.act(self.dwconv(self.fc1(x), H, W)))


class Extractor(nn.Module):
    """Registration order as AM: query_norm, feat_norm, attn, ffn, ffn_norm."""

    def __init__(self, dim, num_heads, n_points, n_levels, deform_ratio, with_cffn,
                 cffn_ratio, norm_layer):
        super().__init__()
        self.query_norm = norm_layer(dim)
        self.feat_norm = norm_layer(dim)
        self.attn = MSDeformAttn(d_model=dim, n_levels=n_levels, n_heads=num_heads,
                                 n_points=n_points, ratio=deform_ratio)
        self.with_cffn = with_cffn
        if with_cffn:
            self.ffn = ConvFFN(dim, int(dim * cffn_ratio))
            self.ffn_norm = norm_layer(dim)

    def forward(self, query, reference_points, feat, spatial_shapes, level_start_index,
                H, W):
        query = query + self.attn(self.query_norm(query), reference_points,
                                  self.feat_norm(feat), spatial_shapes, level_start_index)
        if self.with_cffn:
            query = query + self.ffn(self.ffn_norm(query), H, W)
        return query


class Injector(nn.Module):
    """Registration order as AM: query_norm, feat_norm, attn, gamma."""

    def __init__(self, dim, num_heads, n_points, n_levels, deform_ratio, norm_layer,
                 init_values):
        super().__init__()
        self.query_norm = norm_layer(dim)
        self.feat_norm = norm_layer(dim)
        self.attn = MSDeformAttn(d_model=dim, n_levels=n_levels, n_heads=num_heads,
                                 n_points=n_points, ratio=deform_ratio)
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, query, reference_points, feat, spatial_shapes, level_start_index):
        attn = self.attn(self.query_norm(query), reference_points, self.feat_norm(feat),
                         spatial_shapes, level_start_index)
        return query + self.gamma * attn


class InteractionBlock(nn.Module):
    def __init__(self, dim, num_heads, n_points, norm_layer, with_cffn, cffn_ratio,
                 init_values, deform_ratio, extra_extractor):
        super().__init__()
        self.injector = Injector(dim, num_heads, n_points, 3, deform_ratio, norm_layer,
                                 init_values)
        self.extractor = Extractor(dim, num_heads, n_points, 1, deform_ratio, with_cffn,
                                   cffn_ratio, norm_layer)
        if extra_extractor:
            self.extra_extractors = nn.Sequential(*[
                Extractor(dim, num_heads, n_points, 1, deform_ratio, with_cffn, cffn_ratio,
                          norm_layer) for _ in range(2)])
        else:
            self.extra_extractors = None

    def forward(self, x, c, blocks, deform_inputs1, deform_inputs2, H, W):
        x = self.injector(x, deform_inputs1[0], c, deform_inputs1[1], deform_inputs1[2])
        for blk in blocks:
            x = blk(x, H, W)
        c = self.extractor(c, deform_inputs2[0], x, deform_inputs2[1], deform_inputs2[2],
                           H, W)
        if self.extra_extractors is not None:
            for extractor in self.extra_extractors:
                c = extractor(c, deform_inputs2[0], x, deform_inputs2[1],
                              deform_inputs2[2], H, W)
        return x, c


class SpatialPriorModule(nn.Module):
    """AM with ``out_indices=(0, 1, 2, 3)``: ``stem`` = [conv3x3 s2, LN, ReLU, conv3x3,
    LN, ReLU, conv3x3, LN, ReLU, MaxPool 3/2/1] (keys stem.0/1/3/4/6/7), ``conv2..4`` =
    [conv3x3 s2, LN, ReLU] (keys conv{k}.0/1), convs without bias, LN the channels-first
    LayerNorm (eps 1e-6); ``fc1..4`` 1x1 convs with bias to the ViT width. c2..c4 come
    back as (B, HW, C) tokens, c1 as a map."""

    def __init__(self, inplanes, embed_dim):
        super().__init__()
        self.embed_dim = embed_dim

        def block(cin, cout, stride):
            return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), LayerNorm(cout),
                    nn.ReLU(inplace=True)]
        self.stem = nn.Sequential(*block(3, inplanes, 2), *block(inplanes, inplanes, 1),
                                  *block(inplanes, inplanes, 1),
                                  nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        self.conv2 = nn.Sequential(*block(inplanes, 2 * inplanes, 2))
        self.conv3 = nn.Sequential(*block(2 * inplanes, 4 * inplanes, 2))
        self.conv4 = nn.Sequential(*block(4 * inplanes, 4 * inplanes, 2))
        self.fc1 = nn.Conv2d(inplanes, embed_dim, 1, 1, 0, bias=True)
        self.fc2 = nn.Conv2d(2 * inplanes, embed_dim, 1, 1, 0, bias=True)
        self.fc3 = nn.Conv2d(4 * inplanes, embed_dim, 1, 1, 0, bias=True)
        self.fc4 = nn.Conv2d(4 * inplanes, embed_dim, 1, 1, 0, bias=True)

    def forward(self, x):
        c1 = self.stem(x)
        c2 = self.conv2(c1)
        c3 = self.conv3(c2)
        c4 = self.conv4(c3)
        c1, c2, c3, c4 = self.fc1(c1), self.fc2(c2), self.fc3(c3), self.fc4(c4)
        bs = c2.shape[0]
        c2, c3, c4 = (t.view(bs, self.embed_dim, -1).transpose(1, 2) for t in (c2, c3, c4))
        return c1, c2, c3, c4


# --------------------------------------------------------------------------------------
# The backbone (VA)
# --------------------------------------------------------------------------------------
class InternViTAdapter(InternViT6B):
    """VA ``InternViTAdapter(InternViT6B)`` with ``out_indices=(0, 1, 2, 3)``,
    ``use_final_norm=True``, ``add_vit_feature=True``, ``use_extra_extractor=True``.
    Registration after InternViT6B's (patch_embed, pos_embed, pos_drop, [cls_token],
    blocks): level_embed, spm, interactions, up, norm1, norm2, norm3, norm4."""

    def __init__(self, *, img_size, patch_size, embed_dim, depth, num_heads,
                 interaction_indexes, conv_inplane=64, n_points=4, deform_num_heads=None,
                 init_values=0.0, with_cffn=True, cffn_ratio=0.25, deform_ratio=0.25,
                 mlp_ratio=4.0, qkv_bias=False, qk_normalization=True,
                 layer_scale_init_values=0.1, pretrain_size=224):
        super().__init__(img_size=img_size, patch_size=patch_size, embed_dim=embed_dim,
                         depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
                         qkv_bias=qkv_bias, qk_normalization=qk_normalization,
                         init_values=layer_scale_init_values, out_indices=(),
                         with_fpn=False, variant='internvl', pretrain_size=pretrain_size)
        self.cls_token = None
        self.interaction_indexes = interaction_indexes
        dim = embed_dim
        heads = num_heads if deform_num_heads is None else deform_num_heads
        self.level_embed = nn.Parameter(torch.zeros(3, dim))
        self.spm = SpatialPriorModule(conv_inplane, dim)
        self.interactions = nn.Sequential(*[
            InteractionBlock(dim, heads, n_points, nn.LayerNorm, with_cffn, cffn_ratio,
                             init_values, deform_ratio,
                             extra_extractor=i == len(interaction_indexes) - 1)
            for i in range(len(interaction_indexes))])
        self.up = nn.ConvTranspose2d(dim, dim, 2, 2)
        self.norm1 = LayerNorm(dim)
        self.norm2 = LayerNorm(dim)
        self.norm3 = LayerNorm(dim)
        self.norm4 = LayerNorm(dim)

    def forward(self, x):
        deform_inputs1, deform_inputs2 = deform_inputs(x)
        x = x.to(self.patch_embed.proj.weight.dtype)
        c1, c2, c3, c4 = self.spm(x)
        c2, c3, c4 = (c + self.level_embed[i] for i, c in enumerate((c2, c3, c4)))
        c = torch.cat([c2, c3, c4], dim=1)

        x, H, W = self.patch_embed(x)
        bs, _, dim = x.shape
        x = self.pos_drop(x + self.pos_embed[:, 1:])

        for i, layer in enumerate(self.interactions):
            first, last = self.interaction_indexes[i][0], self.interaction_indexes[i][-1]
            x, c = layer(x, c, self.blocks[first:last + 1], deform_inputs1, deform_inputs2,
                         H, W)

        c2 = c[:, 0:c2.size(1), :]
        c3 = c[:, c2.size(1):c2.size(1) + c3.size(1), :]
        c4 = c[:, c2.size(1) + c3.size(1):, :]
        c2 = c2.transpose(1, 2).reshape(bs, dim, H * 2, W * 2)
        c3 = c3.transpose(1, 2).reshape(bs, dim, H, W)
        c4 = c4.transpose(1, 2).reshape(bs, dim, H // 2, W // 2)
        c1 = self.up(c2) + c1

        x3 = x.transpose(1, 2).reshape(bs, dim, H, W)
        x1 = F.interpolate(x3, scale_factor=4, mode='bilinear', align_corners=False)
        x2 = F.interpolate(x3, scale_factor=2, mode='bilinear', align_corners=False)
        x4 = F.interpolate(x3, scale_factor=0.5, mode='bilinear', align_corners=False)
        c1, c2, c3, c4 = c1 + x1, c2 + x2, c3 + x3, c4 + x4
        return [self.norm1(c1.float()).contiguous(), self.norm2(c2.float()).contiguous(),
                self.norm3(c3.float()).contiguous(), self.norm4(c4.float()).contiguous()]


# --------------------------------------------------------------------------------------
# The segmentor
# --------------------------------------------------------------------------------------
def build_upstream_adapter_segmentor(*, embed_dim=64, depth=8, num_heads=2, img_size=512,
                                     patch_size=16, interaction_indexes=None,
                                     conv_inplane=16, n_points=4, deform_ratio=0.25,
                                     cffn_ratio=0.25, num_classes=150, channels=32,
                                     aux_channels=32, seed=0, random=True):
    """A tiny upstream adapter segmentor (CFG's structure: UPerHead on the four levels,
    FCNHead with one 3x3 conv on level 2), in eval mode, every parameter, BatchNorm
    statistic, gamma and level embedding random (seeded) when ``random`` (else the
    construction-time init). ``interaction_indexes`` default: four groups ending at the
    blocks (i + 1) * depth // 4 - 1 (the [[0, 11], ..., [36, 47]] of 48)."""
    if interaction_indexes is None:
        ends = [(i + 1) * depth // 4 - 1 for i in range(4)]
        interaction_indexes = [[s, e] for s, e in zip([0] + [e + 1 for e in ends], ends)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = InternViTAdapter(
            img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
            num_heads=num_heads, interaction_indexes=interaction_indexes,
            conv_inplane=conv_inplane, n_points=n_points, deform_ratio=deform_ratio,
            cffn_ratio=cffn_ratio)
        decode_head = UPerHead([embed_dim] * 4, channels, num_classes)
        auxiliary_head = FCNHead(embed_dim, aux_channels, num_classes, num_convs=1,
                                 concat_input=False, dropout_ratio=0.1, in_index=2)
        model = UpstreamSegmentor(backbone, decode_head, auxiliary_head)
    if random:
        _randomize_adapter_(model, torch.Generator().manual_seed(seed))
    return model.eval()


@torch.no_grad()
def _randomize_adapter_(model, g):
    """upstream_internvl's randomisation (linears, convs, RMSNorms, channels-first
    LayerNorms, BatchNorms, layer scales, pos_embed) plus what it does not know: the
    injectors' / extractors' nn.LayerNorms, the gammas (0 at init: the injectors would
    change nothing), the level embedding and query-dependent sampling (the offset and
    attention-weight projections, zero at init)."""
    _randomize_(model, g)

    def randn(t, std=1.0, mean=0.0):
        t.copy_(torch.randn(t.shape, generator=g) * std + mean)

    bb = model.backbone
    for m in bb.modules():
        if isinstance(m, nn.LayerNorm):
            randn(m.weight, 0.2, 1.0)
            randn(m.bias, 0.1)
        elif isinstance(m, Injector):
            randn(m.gamma, 0.5)
        elif isinstance(m, MSDeformAttn):
            # offsets of up to a few pixels, weights that depend on the query
            randn(m.sampling_offsets.weight, 0.5 / math.sqrt(m.d_model))
            randn(m.sampling_offsets.bias, 1.0)
            randn(m.attention_weights.weight, 1.0 / math.sqrt(m.d_model))
    randn(bb.level_embed, 1.0)


def state_dict_of(model) -> 'OrderedDict':
    """The model's state dict as upstream saves it (tensors on the CPU, in order)."""
    return OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items())
