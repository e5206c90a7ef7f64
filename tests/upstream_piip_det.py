"""A naive, independent fp32 re-implementation of the upstream InternViT-6B Mask R-CNNs
(mmdet 2.x): PIIP's baseline and the InternVL authors' frozen-backbone detector.

It follows the code that trained them, module by module, so that ``state_dict()`` keys
and shapes are the upstream models' (``backbone.*`` with ``up1..up4``, ``neck.*``,
``rpn_head.*``, ``roi_head.bbox_head.*``, ``roi_head.mask_head.*``) and the forward
computes what the upstream forward computes (in fp32): the backbone + neck features, the
RPN head's raw outputs and the box / mask heads' outputs on given RoIs. Tests write tiny
random weights in this layout, convert them with ``tools/model_converters/piip2mmdet.py``
and compare our mmdet 3.x detectors with it. Plain torch, plus mmcv's ``roi_align`` op
(the kernel mmcv 1.x's ``RoIAlign`` runs upstream too).

Sources followed (read for their arithmetic and names, not copied):

``PIIP``  OpenGVLab/PIIP ``mmdetection/mmdet/models/backbones/internvit_6b.py`` and
          ``configs/piip/baseline/mask_rcnn_internvit_6b_fpn_1x_coco_bs16_ms.py``
``IVL``   InternVL-MMDetSeg ``mmdetection/mmdet/models/backbones/intern_vit_6b.py`` and
          ``configs/intern_vit_6b/head_tuning/mask_rcnn_intern_vit_6b_fpn_1x_coco_bs16_frozen.py``
``MMDET`` the forks' mmdet 2.x ``necks/fpn.py``, ``dense_heads/rpn_head.py``,
          ``roi_heads/roi_extractors/single_level_roi_extractor.py``,
          ``bbox_heads/convfc_bbox_head.py`` (Shared2FCBBoxHead),
          ``mask_heads/fcn_mask_head.py``, ``_base_/models/mask_rcnn_r50_fpn.py``.

The two backbones (``diff``): the same blocks, norms and pyramid (``up1..up4``, the
channels-first LayerNorm of ``upstream_internvl``); no class token in either
(``self.cls_token = None``), and both stretch ``pos_embed[:, 1:]`` bicubically, in fp32,
to every input's patch grid (``_get_pos_embed``), reshaping it first to a square grid of
``pretrain_img_size // patch_size`` (PIIP: 224 // 16 = 14) or ``img_size // patch_size``
(IVL: 256 // 16 = 16) per side. IVL's config turns on ``WindowedAttention`` (windows of 16)
in all 48 blocks; PIIP's none. ``WindowedAttention`` zero-pads the *normed* tokens at the
bottom / right to whole windows, partitions them (``window_partition``: batch, window
row, window column), attends within each window with nothing masked (a padded token is a
zero vector: with qkv_bias False its q, k, v are 0, so it is a key of logit 0 and value 0),
reverses the partition, crops, and applies ``proj`` after that. PIIP keeps only the last
``out_indices`` map (``use_simple_fpn``) and feeds it to up1..up4; IVL does the same
(``x = outs[-1]``). Both return the four maps in fp32 (``output_dtype='float32'``).

Deliberate deviations (numerically neutral in fp32 eval): naive attention instead of the
flash-attn kernels (which need CUDA half precision), Dropout / DropPath as identity, and
apex's FusedRMSNorm as the hand-written RMSNorm (the same keys and arithmetic).
"""
import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from upstream_internvl import (
    Attention,
    LayerNorm,
    LayerScale,
    Mlp,
    PatchEmbed,
    RMSNorm,
    pretrained_transform,
)

__all__ = ['InternViT6BDet', 'UpstreamMaskRCNN', 'build_upstream_detector',
           'randomize_', 'map_roi_levels']


# --------------------------------------------------------------------------------------
# Backbone
# --------------------------------------------------------------------------------------
class WindowedAttention(nn.Module):
    """PIIP / IVL ``WindowedAttention`` (naive path). Keys as ``Attention``: qkv, proj,
    q_norm, k_norm."""

    def __init__(self, dim, num_heads, window_size, qkv_bias=False, qk_normalization=True):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.window_size = window_size
        self.qk_normalization = qk_normalization
        self.q_norm = RMSNorm(dim, eps=1e-6) if qk_normalization else nn.Identity()
        self.k_norm = RMSNorm(dim, eps=1e-6) if qk_normalization else nn.Identity()

    def forward(self, x, H, W):
        B, N, C = x.shape
        ws = self.window_size
        N_ = ws * ws
        H_, W_ = math.ceil(H / ws) * ws, math.ceil(W / ws) * ws
        x = F.pad(x.view(B, H, W, C), [0, 0, 0, W_ - W, 0, H_ - H])
        # window_partition
        x = x.view(B, H_ // ws, ws, W_ // ws, ws, C).permute(0, 1, 3, 2, 4, 5)
        x = x.contiguous().view(-1, N_, C)
        qkv = self.qkv(x).view(-1, N_, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        if self.qk_normalization:
            B_, H__, _, D_ = q.shape
            q = self.q_norm(q.transpose(1, 2).flatten(-2, -1)).view(B_, N_, H__, D_)
            q = q.transpose(1, 2)
            k = self.k_norm(k.transpose(1, 2).flatten(-2, -1)).view(B_, N_, H__, D_)
            k = k.transpose(1, 2)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(-1, ws, ws, C)
        # window_reverse
        x = x.view(B, H_ // ws, W_ // ws, ws, ws, C).permute(0, 1, 3, 2, 4, 5)
        x = x.contiguous().view(B, H_, W_, C)
        x = x[:, :H, :W, :].reshape(B, N, C)
        return self.proj(x)


class Block(nn.Module):
    """The detection backbones' ``Block``: ``windowed`` picks ``WindowedAttention``."""

    def __init__(self, dim, num_heads, mlp_ratio, init_values, windowed, window_size):
        super().__init__()
        self.norm1 = RMSNorm(dim, eps=1e-6)
        if windowed:
            self.attn = WindowedAttention(dim, num_heads, window_size)
        else:
            self.attn = Attention(dim, num_heads, qkv_bias=False, qk_normalization=True,
                                  norm_layer=lambda d: RMSNorm(d, eps=1e-6))
        self.ls1 = LayerScale(dim, init_values)
        self.norm2 = RMSNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))  # nn.GELU (mlp_type 'regular')
        self.ls2 = LayerScale(dim, init_values)

    def forward(self, x, H, W):
        x = x + self.ls1(self.attn(self.norm1(x), H, W))
        return x + self.ls2(self.mlp(self.norm2(x)))


class InternViT6BDet(nn.Module):
    """``InternViT6B`` of the detection configs (``with_fpn=True``, no class token).

    ``grid``: the side of the square position grid the forward stretches from (PIIP
    ``pretrain_img_size // patch_size``, IVL ``img_size // patch_size``); ``pos_embed``
    is (1, 1 + grid^2, C), its first row unused. ``window_size``: 0 for global attention
    in every block (PIIP), else windows in every block (IVL)."""

    def __init__(self, *, embed_dim, depth, num_heads, grid, patch_size=16, mlp_ratio=4.0,
                 init_values=0.1, window_size=0):
        super().__init__()
        self.grid = grid
        self.patch_size = patch_size
        self.patch_embed = PatchEmbed(grid * patch_size, patch_size, 3, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, embed_dim))
        self.cls_token = None
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp_ratio, init_values, window_size > 0,
                  window_size) for _ in range(depth)])
        C = embed_dim
        self.up1 = nn.Sequential(nn.ConvTranspose2d(C, C, 2, 2), LayerNorm(C), nn.GELU(),
                                 nn.ConvTranspose2d(C, C, 2, 2), nn.Identity())
        self.up2 = nn.Sequential(nn.ConvTranspose2d(C, C, 2, 2), nn.Identity())
        self.up3 = nn.Sequential(nn.Identity(), nn.Identity())
        self.up4 = nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=2), nn.Identity())

    def _get_pos_embed(self, pos_embed, H, W):
        pos_embed = pos_embed.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        return F.interpolate(pos_embed.float(), size=(H, W), mode='bicubic',
                             align_corners=False).reshape(1, -1, H * W).permute(
                                 0, 2, 1).to(pos_embed.dtype)

    def forward(self, x):
        x, H, W = self.patch_embed(x.type(self.patch_embed.proj.weight.dtype))
        x = x + self._get_pos_embed(self.pos_embed[:, 1:], H, W)
        for blk in self.blocks:
            x = blk(x, H, W)
        b, _, c = x.shape
        x = x.reshape(b, H, W, c).permute(0, 3, 1, 2)  # the last block (out_indices)
        return [up(x).float().contiguous() for up in (self.up1, self.up2, self.up3, self.up4)]

    def init_weights(self, pretrained, *, variant, img_size):
        """Upstream ``init_weights(pretrained)``: :func:`pretrained_transform` and
        ``load_state_dict(strict=False)`` (PIIP: ``img_size`` is its
        ``pretrain_img_size``)."""
        ckpt = pretrained_transform(dict(pretrained), variant=variant, img_size=img_size,
                                    patch_size=self.patch_size, pretrain_size=224,
                                    pretrain_patch_size=14)
        return self.load_state_dict(ckpt, strict=False)


# --------------------------------------------------------------------------------------
# Neck and heads (mmdet 2.x)
# --------------------------------------------------------------------------------------
class ConvModule(nn.Module):
    """mmcv ConvModule without norm: ``conv`` (with bias), optional ReLU."""

    def __init__(self, cin, cout, k, padding=0, act=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=padding)
        self.act = act

    def forward(self, x):
        x = self.conv(x)
        return F.relu(x) if self.act else x


class FPN(nn.Module):
    """mmdet 2.x FPN (no norm, no activation, ``add_extra_convs=False``): 1x1 laterals,
    top-down nearest upsampling to each lower level's size, 3x3 outputs, extra levels by
    ``max_pool2d(kernel 1, stride 2)`` of the last output."""

    def __init__(self, in_channels, out_channels, num_outs):
        super().__init__()
        self.num_outs = num_outs
        self.lateral_convs = nn.ModuleList(
            [ConvModule(c, out_channels, 1, act=False) for c in in_channels])
        self.fpn_convs = nn.ModuleList(
            [ConvModule(out_channels, out_channels, 3, padding=1, act=False)
             for _ in in_channels])

    def forward(self, inputs):
        laterals = [conv(inputs[i]) for i, conv in enumerate(self.lateral_convs)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[2:], mode='nearest')
        outs = [self.fpn_convs[i](laterals[i]) for i in range(len(laterals))]
        for _ in range(self.num_outs - len(outs)):
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return outs


class RPNHead(nn.Module):
    """mmdet 2.x RPNHead (one conv): rpn_conv 3x3 -> ReLU -> rpn_cls (A) / rpn_reg (4A)."""

    def __init__(self, in_channels, feat_channels, num_anchors=3):
        super().__init__()
        self.rpn_conv = nn.Conv2d(in_channels, feat_channels, 3, padding=1)
        self.rpn_cls = nn.Conv2d(feat_channels, num_anchors, 1)
        self.rpn_reg = nn.Conv2d(feat_channels, num_anchors * 4, 1)

    def forward(self, feats):
        cls, reg = [], []
        for x in feats:
            x = F.relu(self.rpn_conv(x))
            cls.append(self.rpn_cls(x))
            reg.append(self.rpn_reg(x))
        return cls, reg


def map_roi_levels(rois, num_levels, finest_scale=56):
    """SingleRoIExtractor.map_roi_levels: floor(log2(sqrt(w * h) / 56 + 1e-6))."""
    scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
    lvls = torch.floor(torch.log2(scale / finest_scale + 1e-6))
    return lvls.clamp(min=0, max=num_levels - 1).long()


def extract_rois(feats, rois, output_size, strides=(4, 8, 16, 32)):
    """SingleRoIExtractor over the first ``len(strides)`` levels, RoIAlign with
    sampling_ratio 0, aligned=True (mmcv's op, as upstream)."""
    from mmcv.ops import roi_align
    feats = feats[:len(strides)]
    out = feats[0].new_zeros(rois.shape[0], feats[0].shape[1], output_size, output_size)
    lvls = map_roi_levels(rois, len(feats))
    for i, stride in enumerate(strides):
        inds = (lvls == i).nonzero(as_tuple=False).squeeze(1)
        if inds.numel():
            out[inds] = roi_align(feats[i], rois[inds], (output_size, output_size),
                                  1.0 / stride, 0, 'avg', True)
    return out


class Shared2FCBBoxHead(nn.Module):
    """mmdet 2.x ConvFCBBoxHead(num_shared_fcs=2): flatten -> (fc, ReLU) x 2 -> fc_cls
    (num_classes + 1), fc_reg (4 num_classes: reg_class_agnostic False)."""

    def __init__(self, in_channels, fc_out_channels, num_classes, roi_feat_size=7):
        super().__init__()
        self.fc_cls = nn.Linear(fc_out_channels, num_classes + 1)
        self.fc_reg = nn.Linear(fc_out_channels, 4 * num_classes)
        self.shared_fcs = nn.ModuleList([
            nn.Linear(in_channels * roi_feat_size ** 2, fc_out_channels),
            nn.Linear(fc_out_channels, fc_out_channels)])

    def forward(self, x):
        x = x.flatten(1)
        for fc in self.shared_fcs:
            x = F.relu(fc(x))
        return self.fc_cls(x), self.fc_reg(x)


class FCNMaskHead(nn.Module):
    """mmdet 2.x FCNMaskHead: 4 x (conv 3x3 with bias, ReLU), ``upsample`` ConvT 2x2 ->
    ReLU, ``conv_logits`` 1x1 -> num_classes."""

    def __init__(self, in_channels, conv_out_channels, num_classes, num_convs=4):
        super().__init__()
        self.convs = nn.ModuleList([
            ConvModule(in_channels if i == 0 else conv_out_channels, conv_out_channels, 3,
                       padding=1) for i in range(num_convs)])
        self.upsample = nn.ConvTranspose2d(conv_out_channels, conv_out_channels, 2, 2)
        self.conv_logits = nn.Conv2d(conv_out_channels, num_classes, 1)

    def forward(self, x):
        for conv in self.convs:
            x = conv(x)
        return self.conv_logits(F.relu(self.upsample(x)))


class _RoIHead(nn.Module):

    def __init__(self, bbox_head, mask_head):
        super().__init__()
        self.bbox_head = bbox_head
        self.mask_head = mask_head


class UpstreamMaskRCNN(nn.Module):
    """``backbone``, ``neck``, ``rpn_head``, ``roi_head`` (bbox_head, mask_head), in
    mmdet 2.x's TwoStageDetector order."""

    def __init__(self, backbone, neck, rpn_head, roi_head):
        super().__init__()
        self.backbone, self.neck = backbone, neck
        self.rpn_head, self.roi_head = rpn_head, roi_head

    @torch.no_grad()
    def extract_feat(self, img):
        return self.neck(self.backbone(img))

    @torch.no_grad()
    def outputs(self, img, rois):
        """Features, RPN outputs and the box / mask head outputs on ``rois`` (n, 5:
        batch index, x1, y1, x2, y2)."""
        feats = self.extract_feat(img)
        rpn_cls, rpn_reg = self.rpn_head(feats)
        cls_score, bbox_pred = self.roi_head.bbox_head(extract_rois(feats, rois, 7))
        mask_pred = self.roi_head.mask_head(extract_rois(feats, rois, 14))
        return dict(feats=feats, rpn_cls=rpn_cls, rpn_reg=rpn_reg, cls_score=cls_score,
                    bbox_pred=bbox_pred, mask_pred=mask_pred)


def build_upstream_detector(*, embed_dim, depth, num_heads, grid, window_size=0,
                            out_channels=16, fc_out_channels=32, num_classes=80, seed=0):
    """A tiny upstream Mask R-CNN in eval mode with seeded random weights
    (:func:`randomize_`)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = UpstreamMaskRCNN(
            InternViT6BDet(embed_dim=embed_dim, depth=depth, num_heads=num_heads, grid=grid,
                           window_size=window_size),
            FPN([embed_dim] * 4, out_channels, 5),
            RPNHead(out_channels, out_channels),
            _RoIHead(Shared2FCBBoxHead(out_channels, fc_out_channels, num_classes),
                     FCNMaskHead(out_channels, out_channels, num_classes)))
    randomize_(model, torch.Generator().manual_seed(seed))
    return model.eval()


@torch.no_grad()
def randomize_(model, g):
    """Every parameter random, so that a wrong mapping cannot pass: weights ~
    N(0, 1/fan_in), biases ~ 0.1 N, norm weights ~ 1 + 0.2 N, layer scales ~ 0.1 + 0.1 N,
    the position embedding ~ 0.5 N."""
    def randn(t, std=1.0, mean=0.0):
        t.copy_(torch.randn(t.shape, generator=g) * std + mean)

    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            fan_in = (m.in_channels if isinstance(m, nn.ConvTranspose2d)
                      else m.weight[0].numel())
            randn(m.weight, 1.0 / math.sqrt(fan_in))
            if m.bias is not None:
                randn(m.bias, 0.1)
        elif isinstance(m, (RMSNorm, LayerNorm)):
            randn(m.weight, 0.2, 1.0)
            if getattr(m, 'bias', None) is not None:
                randn(m.bias, 0.1)
        elif isinstance(m, LayerScale):
            randn(m.gamma, 0.1, 0.1)
        elif isinstance(m, InternViT6BDet):
            randn(m.pos_embed, 0.5)


def state_dict_of(model):
    """The model's state dict as upstream saves it (an OrderedDict)."""
    return OrderedDict(model.state_dict())
