"""A naive, independent fp32 re-implementation of the upstream InternVL segmentors.

It follows, module by module and line by line, the mmseg 0.x code that produced the
released InternViT-6B segmentation checkpoints, so that

* ``state_dict()`` keys, shapes, nesting and order are those of the upstream models
  (``backbone.*``, ``decode_head.*``, ``auxiliary_head.*``), and
* the forward computes what the upstream forward computes (in fp32).

It uses plain torch only (no mmcv / mmseg / timm / einops / flash-attn modules), so
that tests can write tiny random weights in the upstream layout and containers, push
them through our converter into our mmseg 1.x models and compare the logits.

Sources followed (read for their arithmetic and names, not copied):

``IVL``  InternVL ``segmentation/mmseg_custom/models/backbones/intern_vit_6b.py``
``DS``   InternVL-MMDetSeg ``mmsegmentation/mmseg/models/backbones/intern_vit_6b.py``
``PIIP`` OpenGVLab/PIIP ``mmsegmentation/mmseg/models/backbones/internvit_6b.py``
``FCN``  InternVL ``segmentation/mmseg_custom/models/decode_heads/fcn_head.py``
         (identical to the MMDetSeg / PIIP ``decode_heads/fcn_head.py`` but for imports
         and ``register_module(force=True)``)
``MMSEG`` the MMDetSeg fork's mmseg 0.x ``decode_heads/{decode_head,uper_head,psp_head}.py``,
         ``ops/wrappers.py`` (resize), ``segmentors/encoder_decoder.py`` (identical in
         PIIP's fork), and mmcv 1.x ``ConvModule`` / ``runner`` / ``checkpoint``.

Differences between the IVL and DS copies of the backbone (``diff`` of the two files):

1. DS ``InternViT6B.forward(self, x, H=None, W=None)`` takes two unused arguments;
   IVL ``forward(self, x)``.
2. IVL ends ``__init__`` with ``self.to(torch.bfloat16)`` (the whole backbone, up1..up4
   included, is bf16 from construction on); DS does not (its bf16 cast comes from
   DeepSpeed's bf16 engine and the ``ToBFloat16Hook`` of the configs).
   Nothing else differs: same modules, names, init, arithmetic and ``init_weights``.
The heads: IVL's FCNHead == DS's FCNHead (``with_norm``, ``self.to(float32)`` in forward).
IVL runs on stock mmseg 0.30.0, whose UPerHead / EncoderDecoder cast nothing; the DS
(and PIIP) fork adds ``self.to(torch.float32)`` + ``inputs = [x.float() ...]`` in
``UPerHead._forward_feature`` and casts decode/aux heads (and neck) to fp32 in
``EncoderDecoder.extract_feat``. All of these are no-ops in fp32 and change no key.
The configs of the two copies differ only by ``deepspeed = False`` (IVL) / ``True`` (DS).

Deliberate deviations (all numerically neutral in fp32 eval, or documented):

* Attention is computed naively. Upstream IVL/DS always take the flash-attn path:
  ``use_flash_attn`` is turned into the list ``[flag] * depth`` and that whole list is
  handed to every Block, so ``if use_flash_attn:`` in ``Attention`` is always true
  (without flash-attn installed the upstream model cannot even be built: NameError on
  ``FlashAttention``). The flash path computes the same thing (qkv split as
  ``(three h d)``, q/k RMS-norm over the full width, softmax scale ``head_dim**-0.5``),
  but only in fp16/bf16 on CUDA. PIIP's flash path casts an fp32 qkv to fp16 ("For val
  w/o deepspeed") and the result back; here everything stays fp32.
* Dropout / DropPath (drop_path_rate 0.4 in the full-tuning configs) are identity in
  eval and hold no parameters: plain ``nn.Identity`` / ``nn.Dropout`` here.
* SyncBatchNorm is a plain ``BatchNorm2d`` (same keys, same eval arithmetic).
* Only fp32 is offered (no ``dtype`` switch): the upstream bf16 forward depends on the
  flash kernels and on where each module casts, which a CPU re-implementation would
  only imitate.
* apex ``FusedRMSNorm`` (picked by upstream when apex is importable) has the same key
  (``weight``) and the same fp32 arithmetic as the hand-written RMSNorm.

Cross-checked once outside the repo: the upstream files themselves (IVL, DS, PIIP
backbones; the fork's UPerHead / PPM / BaseDecodeHead; InternVL's FCNHead), run with
small stand-ins for mmcv.runner / timm / flash-attn and mmcv 2.x's ConvModule, accept
these state dicts with ``strict=True`` in the same key order and give bit-identical
features / logits / aux logits on their naive-attention path (<= 2e-6 on the flash
path with an exact-softmax stand-in); their ``init_weights(pretrained)`` gives the same
tensors as :func:`pretrained_transform` + ``load_state_dict(strict=False)``.
"""
import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['build_upstream_segmentor', 'UpstreamSegmentor', 'InternViT6B',
           'pretrained_transform', 'save_upstream_checkpoint', 'to_bf16_like_release',
           'upstream_mmcv_meta', 'upstream_optimizer_state', 'deepspeed_model_states',
           'layer_decay_groups', 'BN_BUFFER_SUFFIXES']

BN_BUFFER_SUFFIXES = ('.running_mean', '.running_var', '.num_batches_tracked')


# --------------------------------------------------------------------------------------
# Backbone (IVL / DS / PIIP intern_vit_6b.py)
# --------------------------------------------------------------------------------------
class LayerNorm(nn.Module):
    """IVL ``LayerNorm`` with ``data_format='channels_first'`` (the only one used, in
    up1): mean / biased variance over dim 1 computed in fp32, ``(x - u) / sqrt(s + eps)``
    then ``weight[:, None, None] * x + bias[:, None, None]``; eps 1e-6. Keys: weight, bias.
    """

    def __init__(self, normalized_shape, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))
        self.eps = eps

    def forward(self, x):
        input_dtype = x.dtype
        x = x.to(torch.float32)
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        x = (self.weight[:, None, None].to(torch.float32) * x
             + self.bias[:, None, None].to(torch.float32))
        return x.to(input_dtype)


class RMSNorm(nn.Module):
    """IVL ``RMSNorm`` (eps 1e-6 via ``partial``): ``weight * (x * rsqrt(mean(x^2) + eps))``
    with the normalisation in fp32 and the cast back *before* the weight product."""

    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class LayerScale(nn.Module):
    """Key ``gamma`` (init ``init_values * ones``); ``x * gamma`` (inplace=False, and
    ``layerscale_force_fp32=False`` in every config; force_fp32 is the same in fp32)."""

    def __init__(self, dim, init_values=1e-5):
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class Attention(nn.Module):
    """Keys ``qkv`` (bias only if qkv_bias), ``proj`` (with bias), ``q_norm`` / ``k_norm``
    (RMSNorm over the full width C, i.e. across all heads of a token, only if
    qk_normalization; else ``nn.Identity``). Registration order as upstream: qkv,
    attn_drop, proj, proj_drop, q_norm, k_norm."""

    def __init__(self, dim, num_heads, qkv_bias=False, qk_normalization=False,
                 norm_layer=RMSNorm):
        super().__init__()
        assert dim % num_heads == 0, 'dim should be divisible by num_heads'
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(0.)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(0.)
        self.qk_normalization = qk_normalization
        self.q_norm = norm_layer(dim) if qk_normalization else nn.Identity()
        self.k_norm = norm_layer(dim) if qk_normalization else nn.Identity()

    def forward(self, x, H=None, W=None):  # IVL ``_naive_attn``; H, W: PIIP's signature
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, D)
        if self.qk_normalization:
            B_, H_, N_, D_ = q.shape
            q = self.q_norm(q.transpose(1, 2).flatten(-2, -1)).view(B_, N_, H_, D_)
            q = q.transpose(1, 2)
            k = self.k_norm(k.transpose(1, 2).flatten(-2, -1)).view(B_, N_, H_, D_)
            k = k.transpose(1, 2)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = self.attn_drop(attn.softmax(dim=-1))
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    """timm-style Mlp of IVL: fc1 -> nn.GELU() (exact erf GELU) -> fc2, both with bias.
    Registration order: fc1, act, drop1, fc2, drop2."""

    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(0.)
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop2 = nn.Dropout(0.)

    def forward(self, x):
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class FusedMLP(nn.Module):
    """flash-attn ``flash_attn.ops.fused_dense.FusedMLP`` (re-exported by
    ``flash_attn.modules.mlp``), as PIIP builds it for ``mlp_type='fused_mlp'``:
    ``FusedMLP(in_features=dim, hidden_features=..., activation='gelu_approx')``:
    fc1 / fc2 ``nn.Linear`` with bias (bias1=bias2=True), and ``fused_mlp_func`` computes
    ``linear(gelu(linear(x, w1, b1), approximate='tanh'), w2, b2)`` (its non-fused
    fallback spells that out; the fused cuBLASLt epilogue is the same tanh GELU)."""

    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate='tanh'))


class Block(nn.Module):
    """Pre-norm block: ``x + ls1(attn(norm1(x)))`` then ``x + ls2(mlp(norm2(x)))``.
    ls1/ls2 are ``nn.Identity`` (no key) when ``init_values`` is falsy. Drop paths are
    identity in eval. Registration order: norm1, attn, ls1, drop_path1, norm2, mlp, ls2,
    drop_path2."""

    def __init__(self, dim, num_heads, mlp_ratio, qkv_bias, init_values, qk_normalization,
                 mlp_type='regular'):
        super().__init__()
        self.norm1 = RMSNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias,
                              qk_normalization=qk_normalization,
                              norm_layer=lambda d: RMSNorm(d, eps=1e-6))
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path1 = nn.Identity()
        self.norm2 = RMSNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        if mlp_type == 'regular':
            self.mlp = Mlp(dim, hidden)
        elif mlp_type == 'fused_mlp':
            self.mlp = FusedMLP(dim, hidden)
        else:
            raise NotImplementedError(mlp_type)
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path2 = nn.Identity()

    def forward(self, x, H=None, W=None):
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x), H, W)))
        x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        return x


class PatchEmbed(nn.Module):
    """Key ``proj`` (Conv2d k=s=patch, bias); flatten to (B, N, C); ``norm`` Identity."""

    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__()
        self.patch_shape = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.patch_shape[0] * self.patch_shape[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.Identity()

    def forward(self, x):
        x = self.proj(x)
        _, _, H, W = x.shape
        return self.norm(x.flatten(2).transpose(1, 2)), H, W


class InternViT6B(nn.Module):
    """The upstream ``InternViT6B`` backbone.

    ``variant='internvl'`` (IVL == DS): a ``cls_token`` (1, 1, C) is prepended and
    ``pos_embed`` (1, 1 + N, C) added as is (no interpolation in forward: the input must
    be exactly ``img_size``); each ``out_indices`` map drops the cls row and is reshaped
    to (B, C, H, W). With ``with_fpn`` the four maps go through up1..up4 (exactly four
    ``out_indices`` are needed).

    ``variant='piip'``: ``self.cls_token = None`` (no parameter, no key), forward adds
    ``pos_embed[:, 1:]`` (the cls row of pos_embed still exists and is unused); with
    ``use_simple_fpn`` (default True, not overridden by the PIIP config) only the LAST
    ``out_indices`` map is kept and, with_fpn, fed to all four of up1..up4.

    up1 = [ConvT(C, C, 2, 2), LayerNorm, GELU, ConvT(C, C, 2, 2), LN-or-Identity] (x4),
    up2 = [ConvT, LN-or-Identity] (x2), up3 = [Identity, LN-or-Identity] (x1),
    up4 = [MaxPool2d(2, 2), LN-or-Identity] (x1/2); LN there only if with_final_norm
    (False in every config). Keys: up1.0, up1.1, up1.3 (+ up1.4, up2.1, up3.1, up4.1 if
    with_final_norm), up2.0.
    """

    def __init__(self, *, img_size, patch_size, embed_dim, depth, num_heads, mlp_ratio=4.0,
                 qkv_bias=False, qk_normalization=True, init_values=0.1,
                 out_indices=(7, 11, 15, 23), with_fpn=False, with_final_norm=False,
                 variant='internvl', pretrain_size=224, pretrain_patch_size=14,
                 mlp_type='regular', use_simple_fpn=True, in_chans=3):
        super().__init__()
        assert variant in ('internvl', 'piip'), variant
        self.variant = variant
        self.embed_dim = embed_dim
        self.img_size = img_size
        self.patch_size = patch_size
        self.pretrain_size = pretrain_size  # IVL pretrain_size / PIIP pretrain_img_size
        self.pretrain_patch_size = pretrain_patch_size  # PIIP only (IVL hard-codes 14)
        self.out_indices = list(out_indices)
        self.with_fpn = with_fpn
        self.use_simple_fpn = use_simple_fpn and variant == 'piip'

        # registration order as upstream: patch_embed, pos_embed, pos_drop, cls_token,
        # blocks, [up1..up4]; state_dict lists own params first: pos_embed, cls_token
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.num_patches = self.patch_embed.num_patches
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + 1, embed_dim))
        self.pos_drop = nn.Identity()
        if variant == 'internvl':
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        else:
            self.cls_token = None
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, init_values, qk_normalization,
                  mlp_type=mlp_type) for _ in range(depth)])
        # upstream calls init_weights(pretrained) here (before up1..up4 exist), and
        # freeze_vit freezes here too, so up1..up4 stay trainable in the frozen configs
        if with_fpn:
            C = embed_dim

            def final_norm():
                return LayerNorm(C) if with_final_norm else nn.Identity()

            self.up1 = nn.Sequential(nn.ConvTranspose2d(C, C, 2, 2), LayerNorm(C), nn.GELU(),
                                     nn.ConvTranspose2d(C, C, 2, 2), final_norm())
            self.up2 = nn.Sequential(nn.ConvTranspose2d(C, C, 2, 2), final_norm())
            self.up3 = nn.Sequential(nn.Identity(), final_norm())
            self.up4 = nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=2), final_norm())

    def init_weights(self, pretrained):
        """Upstream ``init_weights(pretrained)``: read a checkpoint (path or dict), apply
        :func:`pretrained_transform` and ``load_state_dict(strict=False)``. Returns the
        ``load_state_dict`` result (missing / unexpected keys)."""
        checkpoint = (torch.load(pretrained, map_location='cpu') if isinstance(pretrained, str)
                      else dict(pretrained))
        checkpoint = pretrained_transform(
            checkpoint, variant=self.variant, img_size=self.img_size,
            patch_size=self.patch_size, pretrain_size=self.pretrain_size,
            pretrain_patch_size=self.pretrain_patch_size, own_pos_embed=self.pos_embed)
        return self.load_state_dict(checkpoint, strict=False)

    def forward(self, x):
        assert tuple(x.shape[-2:]) == (self.img_size, self.img_size), (
            f'upstream pos_embed is fixed-size: input must be {self.img_size}x'
            f'{self.img_size}, got {tuple(x.shape[-2:])}')
        x = x.type(self.patch_embed.proj.weight.dtype)  # upstream ``x.type(self.dtype)``
        x, H, W = self.patch_embed(x)
        if self.variant == 'internvl':
            cls_tokens = self.cls_token.expand(x.shape[0], -1, -1)
            x = torch.cat((cls_tokens, x), dim=1)
            x = self.pos_drop(x + self.pos_embed)
        else:
            x = self.pos_drop(x + self.pos_embed[:, 1:])
        outs = []
        for idx, blk in enumerate(self.blocks):
            x = blk(x, H, W)
            if idx in self.out_indices:
                out = x[:, 1:, :] if self.variant == 'internvl' else x  # drop cls token
                b, _, c = out.shape
                outs.append(out.reshape(b, H, W, c).permute(0, 3, 1, 2))
        if self.use_simple_fpn:
            outs = [outs[-1]]
        if not self.with_fpn:
            return [o.contiguous().to(torch.float32) for o in outs]
        if len(outs) == 1 and self.variant == 'piip':
            x1 = x2 = x3 = x4 = outs[0]
        else:
            x1, x2, x3, x4 = outs
        return [self.up1(x1).contiguous().float(), self.up2(x2).contiguous().float(),
                self.up3(x3).contiguous().float(), self.up4(x4).contiguous().float()]


def pretrained_transform(checkpoint, *, variant, img_size, patch_size, pretrain_size,
                         pretrain_patch_size=14, own_pos_embed=None):
    """What upstream ``init_weights(pretrained)`` does to the pretrained state dict before
    ``load_state_dict(strict=False)`` (returns a new dict; upstream edits in place).

    * unwrap: IVL/DS ``if 'module' in checkpoint: checkpoint = checkpoint['module']``;
      PIIP ``if 'model' in checkpoint: checkpoint = checkpoint['model']``.
    * pos_embed (1, 1 + g*g, C): the cls row ``[:, :1]`` is kept as is; the other rows are
      reshaped to a (g, g) grid, g = ``pretrain_size // 14`` (IVL/DS: 14 hard-coded,
      whatever patch_size is) or ``pretrain_img_size // pretrain_patch_size`` (PIIP), and
      resized by ``F.interpolate(mode='bicubic', align_corners=False)`` to
      ``img_size // patch_size`` per side; result ``cat([cls, grid])`` (1 + n*n rows;
      PIIP too: it keeps the cls row though it never uses it). PIIP falls back to the
      model's own pos_embed when the checkpoint has none (``own_pos_embed``); IVL raises.
    * patch_embed.proj.weight: ``F.interpolate(size=(patch_size, patch_size),
      mode='bicubic', align_corners=False)`` (14 -> 16 for the PIIP baseline; always
      applied, also when the size does not change).
    Both interpolations run in the checkpoint's own dtype (no float cast upstream).
    Everything else (e.g. ``cls_token`` for PIIP, which has none) is left for
    ``strict=False`` to ignore.
    """
    assert variant in ('internvl', 'piip'), variant
    if variant == 'internvl':
        if 'module' in checkpoint:
            checkpoint = checkpoint['module']
        grid = pretrain_size // 14
    else:
        if 'model' in checkpoint:
            checkpoint = checkpoint['model']
        grid = pretrain_size // pretrain_patch_size
    checkpoint = dict(checkpoint)
    n = img_size // patch_size

    if variant == 'piip' and 'pos_embed' not in checkpoint:
        pos_embed = own_pos_embed.detach()
    else:
        pos_embed = checkpoint['pos_embed']
    cls = pos_embed[:, :1, :]
    rows = pos_embed[:, 1:, :].reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
    rows = F.interpolate(rows, size=(n, n), mode='bicubic', align_corners=False)
    rows = rows.reshape(1, -1, n * n).permute(0, 2, 1)
    checkpoint['pos_embed'] = torch.cat([cls, rows], dim=1)

    checkpoint['patch_embed.proj.weight'] = F.interpolate(
        checkpoint['patch_embed.proj.weight'], size=(patch_size, patch_size),
        mode='bicubic', align_corners=False)
    return checkpoint


# --------------------------------------------------------------------------------------
# Heads (mmcv 1.x ConvModule, mmseg 0.x BaseDecodeHead / FCNHead / PPM / UPerHead)
# --------------------------------------------------------------------------------------
def resize(input, size, mode='bilinear', align_corners=False):
    """mmseg 0.x ``ops.resize``: F.interpolate (its warning path changes nothing)."""
    return F.interpolate(input, size, None, mode, align_corners)


class ConvModule(nn.Module):
    """mmcv 1.x ConvModule with norm_cfg=SyncBN, act_cfg=ReLU, order (conv, norm, act):
    ``conv`` (bias='auto' -> no bias since a norm follows), norm registered under its
    abbreviation ``bn`` (``_BatchNorm`` family -> 'bn'), ``activate`` ReLU."""

    def __init__(self, in_channels, out_channels, kernel_size, padding=0, dilation=1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding,
                              dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU()

    def forward(self, x):
        return self.activate(self.bn(self.conv(x)))


class BaseDecodeHead(nn.Module):
    """mmseg 0.x BaseDecodeHead: ``conv_seg`` = Conv2d(channels, num_classes, 1) with bias,
    ``Dropout2d(dropout_ratio)`` before it when dropout_ratio > 0 (identity in eval);
    loss_decode (CrossEntropyLoss) holds no tensors. ``_transform_inputs``: None ->
    ``inputs[in_index]``, 'multiple_select' -> ``[inputs[i] for i in in_index]``."""

    def __init__(self, in_channels, channels, num_classes, dropout_ratio, in_index,
                 input_transform=None):
        super().__init__()
        self.in_channels = in_channels
        self.channels = channels
        self.num_classes = num_classes
        self.in_index = in_index
        self.input_transform = input_transform
        self.align_corners = False
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else None

    def _transform_inputs(self, inputs):
        if self.input_transform == 'multiple_select':
            return [inputs[i] for i in self.in_index]
        return inputs[self.in_index]

    def cls_seg(self, feat):
        if self.dropout is not None:
            feat = self.dropout(feat)
        return self.conv_seg(feat)


class FCNHead(BaseDecodeHead):
    """InternVL's FCNHead (FCN): ``convs`` = Sequential of ``num_convs`` ConvModules
    (``convs.{i}.conv`` / ``convs.{i}.bn``) or ``nn.Identity`` when num_convs == 0 (then
    in_channels must equal channels; upstream still builds one ConvModule and throws it
    away, so it leaves no key); optional ``conv_cat``; ``norm`` = SyncBatchNorm(channels)
    if with_norm else Identity. forward: convs -> [conv_cat(cat(x, feats))] -> norm ->
    dropout -> conv_seg."""

    def __init__(self, in_channels, channels, num_classes, *, num_convs=2, kernel_size=3,
                 concat_input=True, dilation=1, with_norm=False, dropout_ratio=0.1,
                 in_index=-1):
        super().__init__(in_channels, channels, num_classes, dropout_ratio, in_index)
        assert num_convs >= 0 and dilation > 0
        self.num_convs = num_convs
        self.concat_input = concat_input
        if num_convs == 0:
            assert in_channels == channels
            self.convs = nn.Identity()
        else:
            pad = (kernel_size // 2) * dilation
            self.convs = nn.Sequential(*[
                ConvModule(in_channels if i == 0 else channels, channels, kernel_size,
                           padding=pad, dilation=dilation) for i in range(num_convs)])
        if concat_input:
            self.conv_cat = ConvModule(in_channels + channels, channels, kernel_size,
                                       padding=kernel_size // 2)
        self.norm = nn.BatchNorm2d(channels) if with_norm else nn.Identity()

    def forward(self, inputs):
        x = self._transform_inputs(inputs)
        feats = self.convs(x)
        if self.concat_input:
            feats = self.conv_cat(torch.cat([x, feats], dim=1))
        return self.cls_seg(self.norm(feats))


class PPM(nn.ModuleList):
    """mmseg 0.x PPM: ``{j}`` = Sequential(AdaptiveAvgPool2d(scale), ConvModule(in, ch, 1))
    -> keys ``psp_modules.{j}.1.conv.weight`` / ``.1.bn.*``; each output resized
    (bilinear, align_corners False) back to the input size."""

    def __init__(self, pool_scales, in_channels, channels):
        super().__init__()
        for scale in pool_scales:
            self.append(nn.Sequential(nn.AdaptiveAvgPool2d(scale),
                                      ConvModule(in_channels, channels, 1)))

    def forward(self, x):
        return [resize(ppm(x), x.shape[2:], 'bilinear', False) for ppm in self]


class UPerHead(BaseDecodeHead):
    """mmseg 0.x UPerHead (input_transform 'multiple_select'): psp_modules (on the last
    input), bottleneck (3x3 on cat[x, ppm outs]), lateral_convs (1x1) and fpn_convs (3x3)
    for all but the last input, top-down path adding bilinearly resized upper laterals,
    fpn outputs resized to the first's size, concatenated, fpn_bottleneck (3x3), then
    cls_seg. Registration order: conv_seg, dropout, psp_modules, bottleneck,
    lateral_convs, fpn_convs, fpn_bottleneck."""

    def __init__(self, in_channels, channels, num_classes, *, pool_scales=(1, 2, 3, 6),
                 dropout_ratio=0.1, in_index=(0, 1, 2, 3)):
        super().__init__(list(in_channels), channels, num_classes, dropout_ratio,
                         list(in_index), input_transform='multiple_select')
        self.psp_modules = PPM(pool_scales, self.in_channels[-1], channels)
        self.bottleneck = ConvModule(self.in_channels[-1] + len(pool_scales) * channels,
                                     channels, 3, padding=1)
        self.lateral_convs = nn.ModuleList()
        self.fpn_convs = nn.ModuleList()
        for c in self.in_channels[:-1]:
            self.lateral_convs.append(ConvModule(c, channels, 1))
            self.fpn_convs.append(ConvModule(channels, channels, 3, padding=1))
        self.fpn_bottleneck = ConvModule(len(self.in_channels) * channels, channels, 3,
                                         padding=1)

    def psp_forward(self, inputs):
        x = inputs[-1]
        return self.bottleneck(torch.cat([x] + self.psp_modules(x), dim=1))

    def forward(self, inputs):
        inputs = [x.float() for x in self._transform_inputs(inputs)]  # DS fork: float()
        laterals = [conv(inputs[i]) for i, conv in enumerate(self.lateral_convs)]
        laterals.append(self.psp_forward(inputs))
        n = len(laterals)
        for i in range(n - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + resize(laterals[i], laterals[i - 1].shape[2:])
        fpn_outs = [self.fpn_convs[i](laterals[i]) for i in range(n - 1)]
        fpn_outs.append(laterals[-1])
        for i in range(n - 1, 0, -1):
            fpn_outs[i] = resize(fpn_outs[i], fpn_outs[0].shape[2:])
        feats = self.fpn_bottleneck(torch.cat(fpn_outs, dim=1))
        return self.cls_seg(feats)


# --------------------------------------------------------------------------------------
# Segmentor (mmseg 0.x EncoderDecoder, no neck)
# --------------------------------------------------------------------------------------
class UpstreamSegmentor(nn.Module):
    """``backbone``, ``decode_head`` and optionally ``auxiliary_head``, registered in that
    order (EncoderDecoder: backbone, [neck], decode_head, auxiliary_head)."""

    def __init__(self, backbone, decode_head, auxiliary_head=None):
        super().__init__()
        self.backbone = backbone
        self.decode_head = decode_head
        if auxiliary_head is not None:
            self.auxiliary_head = auxiliary_head

    @torch.no_grad()
    def backbone_features(self, img):
        """What the backbone returns: a list of fp32 (B, C, h, w) maps."""
        self.eval()
        return self.backbone(img.float())

    @torch.no_grad()
    def encode_decode(self, img):
        """EncoderDecoder.encode_decode: backbone -> decode_head.forward_test (== forward)
        -> resize(bilinear, align_corners=False) to the input size. (B, K, H, W)."""
        self.eval()
        out = self.decode_head(self.backbone(img.float()))
        return resize(out, img.shape[2:], 'bilinear', False)

    @torch.no_grad()
    def aux_logits(self, img):
        """auxiliary_head.forward on the same features, at feature resolution (mmseg 0.x
        resizes it to the label size only inside ``losses``)."""
        assert hasattr(self, 'auxiliary_head'), 'this model has no auxiliary head'
        self.eval()
        return self.auxiliary_head(self.backbone(img.float()))


def _default_out_indices(head, depth):
    if head == 'linear':
        return (depth - 1,)
    # the [11, 23, 35, 47] pattern of depth 48
    return tuple((i + 1) * depth // 4 - 1 for i in range(4))


def build_upstream_segmentor(head, *, embed_dim=48, depth=4, num_heads=4, mlp_ratio=4.0,
                             img_size=56, patch_size=14, pretrain_size=None,
                             out_indices=None, num_classes=5, channels=32, aux_channels=32,
                             aux_in_index=2, with_aux=None, qkv_bias=False,
                             qk_normalization=True, init_values=0.1, variant='internvl',
                             seed=0, pretrain_patch_size=14, mlp_type=None,
                             use_simple_fpn=True, with_final_norm=False, init='random',
                             pretrained=None):
    """A tiny upstream segmentor, in eval mode, with seeded random weights.

    head: 'linear' -- the linear-probing / few-shot configs: backbone with_fpn=False,
        decode_head = FCNHead(in=channels=embed_dim, num_convs=0, concat_input=False,
        with_norm=True, dropout_ratio=0, in_index=-1); no auxiliary head (``channels``,
        ``aux_*`` are ignored).
      'upernet' -- the full / head-tuning configs (``upernet_r50.py`` base): backbone
        with_fpn=True, decode_head = UPerHead(in=[embed_dim]*4, in_index [0..3],
        pool_scales (1, 2, 3, 6), ``channels``, dropout 0.1, SyncBN), auxiliary_head =
        FCNHead(in=embed_dim, ``aux_channels``, num_convs=1, kernel 3, concat_input=False,
        dropout 0.1, SyncBN, in_index ``aux_in_index``: 2 full tuning, 1 head tuning).
    out_indices: default (depth-1,) for 'linear' and four evenly spaced blocks (the
        [11, 23, 35, 47] pattern) for 'upernet' (PIIP: only the last one is used).
    with_aux: default = as the configs (True for 'upernet'; 'linear' has none).
    variant: 'internvl' (InternVL segmentation/ == MMDetSeg) or 'piip' (PIIP baseline:
        no cls token, ``mlp_type`` default 'fused_mlp', ``use_simple_fpn``).
    pretrain_size: only for ``pretrained`` loading (IVL pretrain_size / PIIP
        pretrain_img_size); default img_size. pretrain_patch_size: PIIP only.
    init: 'random' (default): every parameter and BN buffer random (seeded): weights
        ~ N(0, 1/fan_in), biases ~ 0.1 N, norm weights ~ 1 + 0.2 N, layer scales ~
        0.1 + 0.1 N, pos/cls ~ 0.5 N, BN running_mean ~ 0.2 N, running_var ~ U(0.5, 1.5),
        num_batches_tracked random int. 'upstream': the construction-time init of
        upstream (see :func:`_upstream_init_`), with the torch default init seeded.
    pretrained: optional path / state dict passed to ``backbone.init_weights`` after
        the init (upstream init_weights transform + ``load_state_dict(strict=False)``).
    """
    assert head in ('linear', 'upernet'), head
    assert variant in ('internvl', 'piip'), variant
    if out_indices is None:
        out_indices = _default_out_indices(head, depth)
    if with_aux is None:
        with_aux = head == 'upernet'
    if mlp_type is None:
        mlp_type = 'fused_mlp' if variant == 'piip' else 'regular'
    if head == 'linear' and with_aux:
        raise ValueError('the linear-probing configs have no auxiliary head')
    # torch's default init at construction, seeded without touching the global RNG
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _build(head, dict(
            img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
            num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
            qk_normalization=qk_normalization, init_values=init_values,
            out_indices=out_indices, with_fpn=head == 'upernet',
            with_final_norm=with_final_norm, variant=variant,
            pretrain_size=img_size if pretrain_size is None else pretrain_size,
            pretrain_patch_size=pretrain_patch_size, mlp_type=mlp_type,
            use_simple_fpn=use_simple_fpn), num_classes, channels, aux_channels,
            aux_in_index, with_aux)
    g = torch.Generator().manual_seed(seed)
    if init == 'random':
        _randomize_(model, g)
    elif init == 'upstream':
        _upstream_init_(model, g)
    else:
        raise ValueError(init)
    if pretrained is not None:
        model.backbone.init_weights(pretrained)
    return model.eval()


def _build(head, backbone_kwargs, num_classes, channels, aux_channels, aux_in_index,
           with_aux):
    backbone = InternViT6B(**backbone_kwargs)
    embed_dim = backbone_kwargs['embed_dim']
    if head == 'linear':
        decode_head = FCNHead(embed_dim, embed_dim, num_classes, num_convs=0,
                              concat_input=False, with_norm=True, dropout_ratio=0.0)
        auxiliary_head = None
    else:
        decode_head = UPerHead([embed_dim] * 4, channels, num_classes)
        auxiliary_head = FCNHead(embed_dim, aux_channels, num_classes, num_convs=1,
                                 concat_input=False, dropout_ratio=0.1,
                                 in_index=aux_in_index) if with_aux else None
    return UpstreamSegmentor(backbone, decode_head, auxiliary_head)


@torch.no_grad()
def _randomize_(model, g):
    """Every float parameter / BN buffer random, so that a wrong mapping cannot pass."""
    def randn(t, std=1.0, mean=0.0):
        t.copy_(torch.randn(t.shape, generator=g) * std + mean)

    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            # ConvTranspose2d(k=stride=2): each output pixel sees in_channels inputs
            fan_in = (m.in_channels if isinstance(m, nn.ConvTranspose2d)
                      else m.weight[0].numel())
            randn(m.weight, 1.0 / math.sqrt(fan_in))
            if m.bias is not None:
                randn(m.bias, 0.1)
        elif isinstance(m, (RMSNorm, LayerNorm, nn.BatchNorm2d)):
            randn(m.weight, 0.2, 1.0)
            if getattr(m, 'bias', None) is not None:
                randn(m.bias, 0.1)
            if isinstance(m, nn.BatchNorm2d):
                randn(m.running_mean, 0.2)
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
                m.num_batches_tracked.fill_(int(torch.randint(1, 10000, (1,), generator=g)))
        elif isinstance(m, LayerScale):
            randn(m.gamma, 0.1, 0.1)
        elif isinstance(m, InternViT6B):
            randn(m.pos_embed, 0.5)
            if m.cls_token is not None:
                randn(m.cls_token, 0.5)


@torch.no_grad()
def _upstream_init_(model, g):
    """The upstream construction-time init (values differ, distributions are the same):

    * backbone: pos_embed / cls_token zeros (never re-initialised); PatchEmbed and the
      blocks' Linears keep torch's default init (``_init_weights`` is applied to up1..up4
      only); RMSNorm ones; LayerScale ``init_values``;
    * up1..up4 ``_init_weights``: ConvTranspose2d weight ~ N(0, sqrt(2 / fan_out)) with
      fan_out = k*k*out_channels // groups, bias zero; the custom channels-first
      LayerNorm is no ``nn.LayerNorm`` so it keeps ones / zeros;
    * heads: ConvModule ``init_weights`` at construction (kaiming normal, fan_out, relu;
      BN weight 1 bias 0), ``conv_seg`` ~ N(0, 0.01) bias 0 (BaseDecodeHead init_cfg);
      the FCNHead ``with_norm`` SyncBatchNorm keeps torch's defaults.
    """
    bb = model.backbone
    bb.pos_embed.zero_()
    if bb.cls_token is not None:
        bb.cls_token.zero_()
    for name in ('up1', 'up2', 'up3', 'up4'):
        for m in getattr(bb, name, nn.Sequential()).modules():
            if isinstance(m, nn.ConvTranspose2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                m.weight.copy_(torch.randn(m.weight.shape, generator=g)
                               * math.sqrt(2.0 / fan_out))
                m.bias.zero_()
    for head in (model.decode_head, getattr(model, 'auxiliary_head', None)):
        if head is None:
            continue
        for m in head.modules():
            if isinstance(m, ConvModule):
                fan_out = m.conv.out_channels * m.conv.weight[0, 0].numel()
                m.conv.weight.copy_(torch.randn(m.conv.weight.shape, generator=g)
                                    * math.sqrt(2.0 / fan_out))
        head.conv_seg.weight.copy_(torch.randn(head.conv_seg.weight.shape, generator=g) * 0.01)
        head.conv_seg.bias.zero_()


# --------------------------------------------------------------------------------------
# Containers: what the upstream tooling writes
# --------------------------------------------------------------------------------------
def to_bf16_like_release(sd):
    """The dtypes of a released file of a DeepSpeed bf16 run: every floating tensor in
    bf16 except the BatchNorm running statistics of the heads, which stay fp32.

    Why: DeepSpeed's bf16 engine casts the whole module to bf16 (``module.bfloat16()``),
    the ``ToBFloat16Hook`` keeps the backbone bf16, and the heads are cast back to fp32 at
    every forward (``self.to(torch.float32)`` in FCNHead.forward / UPerHead, the fork's
    ``extract_feat``). The ZeRO-1/2 optimizer holds the trainable parameters as views of
    its flat bf16 buffers and re-points ``p.data`` at them after every step
    (``_update_model_bit16_weights``), so at save time (after a step) the head
    *parameters* are bf16 again, while the head *buffers* (BN running_mean/var), which no
    optimizer touches, stay fp32 from the last forward. Frozen backbone parameters keep
    the bf16 of ``module.bfloat16()``. ``num_batches_tracked`` is int64 throughout.
    """
    out = OrderedDict()
    for k, v in sd.items():
        head_bn_buffer = (k.startswith(('decode_head.', 'auxiliary_head.'))
                          and k.endswith(('.running_mean', '.running_var')))
        if torch.is_floating_point(v) and not head_bn_buffer:
            v = v.to(torch.bfloat16)
        out[k] = v
    if hasattr(sd, '_metadata'):
        out._metadata = sd._metadata
    return out


def _param_names(sd):
    """The parameters among a model state dict's entries (all but BN buffers)."""
    return [k for k in sd if not k.endswith(BN_BUFFER_SUFFIXES)]


def _is_frozen(name, frozen_backbone):
    # freeze_vit (_freeze_params) runs in __init__ before up1..up4 are created, so the
    # frozen configs still train up1..up4 along with the heads
    return frozen_backbone and name.startswith('backbone.') and \
        not name.startswith(('backbone.up1.', 'backbone.up2.', 'backbone.up3.',
                             'backbone.up4.'))


def _num_layer_for_vit(name, num_max_layer):
    """mmcv_custom ``get_num_layer_for_vit``."""
    if name in ('backbone.cls_token', 'backbone.mask_token', 'backbone.pos_embed',
                'backbone.visual_embed'):
        return 0
    if name.startswith(('backbone.visual_embed', 'backbone.patch_embed')):
        return 0
    if name.startswith(('backbone.blocks', 'backbone.layers')):
        return int(name.split('.')[2]) + 1
    return num_max_layer - 1


def layer_decay_groups(sd, *, frozen_backbone=False, base_lr=4e-5, weight_decay=0.05,
                       layer_decay_rate=0.95):
    """The parameter groups of mmcv_custom ``CustomLayerDecayOptimizerConstructor``
    (``paramwise_cfg=dict(num_layers=depth, layer_decay_rate=...)``), in order, as dicts
    with ``param_names`` instead of tensors: one group per ``layer_{id}_{decay|no_decay}``
    in order of first appearance in ``named_parameters()``; id 0 = cls/pos/patch_embed,
    1 + i = block i, depth + 1 = everything else (up1..up4, heads); lr_scale =
    rate ** (depth + 1 - id). Frozen parameters (requires_grad False) are skipped.
    Quirk: the no-decay test ``ndim == 1 or name.endswith('.bias') or name in
    ('pos_embed', 'cls_token')`` sees *prefixed* names, so the 3-D backbone.pos_embed /
    backbone.cls_token land in a 'decay' group."""
    names = _param_names(sd)
    depth = 1 + max([int(n.split('.')[2]) for n in names if n.startswith('backbone.blocks.')],
                    default=-1)
    num_layers = depth + 2
    groups = OrderedDict()
    for name in names:
        if _is_frozen(name, frozen_backbone):
            continue
        if sd[name].dim() == 1 or name.endswith('.bias') or name in ('pos_embed', 'cls_token'):
            group_name, wd = 'no_decay', 0.
        else:
            group_name, wd = 'decay', weight_decay
        layer_id = _num_layer_for_vit(name, num_layers)
        group_name = 'layer_%d_%s' % (layer_id, group_name)
        if group_name not in groups:
            scale = layer_decay_rate ** (num_layers - layer_id - 1)
            groups[group_name] = {'weight_decay': wd, 'param_names': [], 'lr_scale': scale,
                                  'group_name': group_name, 'lr': scale * base_lr}
        groups[group_name]['param_names'].append(name)
    return list(groups.values())


def upstream_optimizer_state(sd, *, frozen_backbone=False, seed=0, **group_kwargs):
    """``optimizer.state_dict()`` of an mmcv 1.x run with the configs' AdamW (lr 4e-5,
    betas (0.9, 0.999), wd 0.05) built by the layer-decay constructor
    (:func:`layer_decay_groups`). Groups carry the extra keys ``param_names`` (list of
    str), ``lr_scale`` (float), ``group_name`` (str) and ``initial_lr`` (float, set by
    mmcv's LrUpdaterHook), plus torch's own AdamW keys; ``params`` are int indices.
    One real ``torch.optim.AdamW`` step with random gradients fills ``state``
    (``step``: 0-d float tensor, ``exp_avg`` / ``exp_avg_sq``: fp32 tensors)."""
    groups = layer_decay_groups(sd, frozen_backbone=frozen_backbone, **group_kwargs)
    torch_groups = []
    for group in groups:
        group = dict(group)
        group['params'] = [nn.Parameter(torch.zeros(sd[n].shape, dtype=torch.float32))
                           for n in group['param_names']]
        torch_groups.append(group)
    optimizer = torch.optim.AdamW(torch_groups, lr=4e-5, betas=(0.9, 0.999),
                                  weight_decay=0.05)
    g = torch.Generator().manual_seed(seed)
    for group in optimizer.param_groups:
        group.setdefault('initial_lr', group['lr'])
        for p in group['params']:
            p.grad = torch.randn(p.shape, generator=g)
    optimizer.step()
    return optimizer.state_dict()


# the first entries of mmseg 0.x ADE20KDataset.CLASSES / PALETTE ('bed ' has its space)
ADE20K_CLASSES = ('wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed ',
                  'windowpane', 'grass')
ADE20K_PALETTE = [[120, 120, 120], [180, 120, 120], [6, 230, 230], [80, 50, 50],
                  [4, 200, 3], [120, 120, 80], [140, 140, 140], [204, 5, 255],
                  [230, 230, 230], [4, 250, 7]]


def upstream_mmcv_meta(num_classes, *, iteration=80000, config_text=None, seed=0):
    """The ``meta`` an mmcv 1.x IterBasedRunner writes for InternVL's mmseg 0.x training:
    tools ``train.py``'s ``env_info`` (str), ``seed`` (int), ``exp_name`` (str); the
    checkpoint_config meta ``mmseg_version`` (str), ``config`` (str: ``cfg.pretty_text``),
    ``CLASSES`` (tuple of str), ``PALETTE`` (list of [r, g, b] int lists); EvalHook /
    CheckpointHook ``hook_msgs`` (dict); the runner's ``epoch`` (int) and ``iter`` (int:
    mmcv writes ``runner.iter``, which at ``after_train_iter`` is one less than the
    number in the file name); ``save_checkpoint``'s ``mmcv_version`` and ``time`` (str)."""
    classes = tuple(ADE20K_CLASSES[i] if i < len(ADE20K_CLASSES) else f'class{i}'
                    for i in range(num_classes))
    palette = [ADE20K_PALETTE[i] if i < len(ADE20K_PALETTE) else [i % 256, 0, 255 - i % 256]
               for i in range(num_classes)]
    if config_text is None:
        config_text = ("norm_cfg = dict(type='SyncBN', requires_grad=True)\n"
                       "model = dict(\n    type='EncoderDecoder',\n    pretrained=None,\n"
                       "    backbone=dict(type='InternViT6B', pretrain_size=224),\n"
                       f"    decode_head=dict(num_classes={num_classes}))\n")
    work = './work_dirs/upernet_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5'
    return {
        'env_info': 'sys.platform: linux\nPython: 3.9.17\nCUDA available: True\n'
                    'PyTorch: 1.12.0+cu113\nMMCV: 1.6.2\nMMSegmentation: 0.30.0+',
        'seed': seed,
        'exp_name': 'upernet_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5.py',
        'mmseg_version': '0.30.0+',
        'config': config_text,
        'CLASSES': classes,
        'PALETTE': palette,
        'hook_msgs': {'last_ckpt': f'{work}/iter_{iteration - 1000}.pth',
                      'best_score': 0.589, 'best_ckpt': f'{work}/best_mIoU_iter_{iteration}.pth'},
        'epoch': 1,
        'iter': iteration - 1,
        'mmcv_version': '1.6.2',
        'time': 'Thu Jan  1 00:00:00 1970',
    }


DS_CONFIG_ZERO1_BF16 = {  # InternVL segmentation/zero_configs/adam_zero1_bf16.json
    'train_batch_size': 16, 'gradient_accumulation_steps': 1,
    'optimizer': {'type': 'Adam', 'params': {'lr': 4e-05}},
    'bf16': {'enabled': True},
    'zero_optimization': {'stage': 1, 'reduce_bucket_size': 500000000.0, 'overlap_comm': True},
    'log': {'steps_per_print': 50},
}


def deepspeed_model_states(sd, *, frozen_backbone=False, global_steps=80000,
                           train_batch_size=16, dp_world_size=8, ds_version='0.19.6',
                           client_state=None):
    """The dict ``DeepSpeedEngine._save_checkpoint`` writes to
    ``mp_rank_00_model_states.pt`` for a ZeRO stage-1 bf16 run (no lr scheduler given to
    DeepSpeed, no curriculum, no random-LTD, no MoE, no pipeline/tensor parallelism),
    with plain python / torch types.

    ds_version '0.19.6' (``_common_checkpoint_state``): module (the module's state dict,
    an OrderedDict), buffer_names (list of str, module-tree order), optimizer (None:
    ZeRO keeps its states in zero_pp_rank_*_optim_states.pt), param_shapes (list: one
    OrderedDict name -> torch.Size per optimizer group, trainable params only),
    frozen_param_shapes / frozen_param_fragments (None: only saved from stage 2 on),
    shared_params (dict: {} when no two params share storage), lr_scheduler (None),
    data_sampler (None), random_ltd (None), sparse_tensor_module_names (set),
    skipped_steps, global_steps, global_samples, dp_world_size, mp_world_size (int),
    checkpoint_parallel_dimensions ({'pp_degree': 1, 'tp_degree': 1}), ds_config (dict:
    the loaded json), ds_version (str); then ``client_state`` entries.
    ds_version '0.8.0' (what InternVL-MMDetSeg pins; its ``_save_checkpoint``): the same
    minus frozen_param_shapes, shared_params, frozen_param_fragments and
    checkpoint_parallel_dimensions, and ds_config is what the engine was given: the
    MMDetSeg fork passes ``args=cfg``, so the json *path* (str)."""
    assert ds_version in ('0.19.6', '0.8.0'), ds_version
    groups = layer_decay_groups(sd, frozen_backbone=frozen_backbone)
    state = OrderedDict()
    state['module'] = sd
    state['buffer_names'] = [k for k in sd if k.endswith(BN_BUFFER_SUFFIXES)]
    state['optimizer'] = None
    state['param_shapes'] = [OrderedDict((n, sd[n].shape) for n in g['param_names'])
                             for g in groups]
    if ds_version != '0.8.0':
        state['frozen_param_shapes'] = None
        state['shared_params'] = {}
        state['frozen_param_fragments'] = None
    state['lr_scheduler'] = None
    state['data_sampler'] = None
    state['random_ltd'] = None
    state['sparse_tensor_module_names'] = set()
    state['skipped_steps'] = 0
    state['global_steps'] = global_steps
    state['global_samples'] = global_steps * train_batch_size
    state['dp_world_size'] = dp_world_size
    state['mp_world_size'] = 1
    if ds_version == '0.8.0':
        state['ds_config'] = 'zero_configs/adam_zero1_bf16.json'
    else:
        state['checkpoint_parallel_dimensions'] = {'pp_degree': 1, 'tp_degree': 1}
        state['ds_config'] = dict(DS_CONFIG_ZERO1_BF16, train_batch_size=train_batch_size)
    state['ds_version'] = ds_version
    state.update(client_state or {})
    return dict(state)


def _as_state_dict(sd):
    """An OrderedDict keeping torch's ``_metadata`` (module versions), as
    ``nn.Module.state_dict()`` and mmcv's ``weights_to_cpu`` leave it."""
    out = OrderedDict(sd)
    out._metadata = getattr(sd, '_metadata', OrderedDict())
    return out


def save_upstream_checkpoint(sd, path, container, meta=None, *, frozen_backbone=False,
                             ds_version='0.19.6'):
    """Write a model state dict ``sd`` the way upstream tooling does.

    container:
      'bare'      ``torch.save(sd)``: InternVL segmentation/release.py loads a DeepSpeed
                  file and saves its ``'module'`` entry alone (the released files).
      'module'    ``{'module': sd}``.
      'mmcv'      mmcv 1.x ``save_checkpoint``: ``{'meta', 'state_dict' (OrderedDict
                  with ``_metadata``), 'optimizer' (AdamW state_dict)}``; ``meta``
                  defaults to :func:`upstream_mmcv_meta` (a given dict is used as is).
      'deepspeed' :func:`deepspeed_model_states` (``mp_rank_00_model_states.pt``);
                  ``meta`` (optional dict) is the client state merged at top level.
    frozen_backbone: the frozen linear-probing / head-tuning configs (backbone params,
      up1..up4 excepted, in no optimizer group / in no DeepSpeed param_shapes).
    """
    sd = _as_state_dict(sd)
    if container == 'bare':
        obj = sd
    elif container == 'module':
        obj = {'module': sd}
    elif container == 'mmcv':
        if meta is None:
            meta = upstream_mmcv_meta(sd['decode_head.conv_seg.weight'].shape[0])
        obj = {'meta': meta, 'state_dict': sd,
               'optimizer': upstream_optimizer_state(sd, frozen_backbone=frozen_backbone)}
    elif container == 'deepspeed':
        obj = deepspeed_model_states(sd, frozen_backbone=frozen_backbone,
                                     ds_version=ds_version, client_state=meta)
    else:
        raise ValueError(f'unknown container {container!r}')
    torch.save(obj, path)
    return path
