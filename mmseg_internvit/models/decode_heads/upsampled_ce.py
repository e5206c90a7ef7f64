# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""Cross-entropy of bilinearly upsampled logits, without the upsampled tensor.

mmseg's ``BaseDecodeHead.loss_by_feat`` resizes a head's logits to the label size and
then applies ``CrossEntropyLoss`` and ``accuracy``: for a linear probe at 504x504 with
150 classes that is a 76M-element tensor per image pair, kept for backward, written
and read by five separate passes (resize, log-softmax, CE backward, resize backward,
top-k). That cost is paid per head, and it is what a probing sweep multiplies by its
number of heads, so it decides whether 24 heads cost 24 runs or about one.

``upsampled_cross_entropy`` computes the same loss, its gradient and the same top-1
accuracy in one pass over row chunks of the upsampled logits: bilinear interpolation
is separable and linear, so each chunk is two small matrix products of the low-
resolution logits (``Uh[rows] @ X @ Uw^T``), the softmax runs channels-last, and the
gradient with respect to the low-resolution logits is accumulated by the transposed
products. Nothing full-size is kept for backward. The result equals mmseg's to
floating-point rounding (the summation order differs); tests check it against
``resize`` + ``CrossEntropyLoss`` + ``accuracy``.
"""
from typing import Tuple

import torch
import torch.nn.functional as F

# Upsampled elements per chunk (rows x width x classes): 1M floats, 4 MB, which stays
# in a server CPU's L3 cache between the passes over it (measured best of 64K-4M).
_CHUNK_ELEMENTS = 1 << 20


def interpolation_matrix(size_in: int, size_out: int, align_corners: bool,
                         device=None) -> torch.Tensor:
    """(size_out, size_in): the weights of 1-D linear interpolation exactly as
    ``F.interpolate(mode='bilinear')`` computes them along one axis."""
    eye = torch.eye(size_in, device=device, dtype=torch.float32)
    weights = F.interpolate(eye[None], size=size_out, mode='linear',
                            align_corners=align_corners)[0]
    return weights.t().contiguous()


def _check_labels(labels: torch.Tensor, num_classes: int, ignore_index: int) -> None:
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= num_classes))
    if bool(bad.any()):
        values = torch.unique(labels[bad])[:8].tolist()
        raise ValueError(f'segmentation labels {values} are neither a class in '
                         f'[0, {num_classes}) nor ignore_index={ignore_index}')


def _row_bands(weights: torch.Tensor, step: int):
    """Chunks of output rows and, for each, the band of input rows its weights touch
    (bilinear weights are banded: a few input rows per chunk)."""
    nonzero = weights != 0
    first = nonzero.float().argmax(1)
    last = weights.shape[1] - 1 - nonzero.flip(1).float().argmax(1)
    for r0 in range(0, weights.shape[0], step):
        r1 = min(r0 + step, weights.shape[0])
        yield r0, r1, int(first[r0:r1].min()), int(last[r0:r1].max()) + 1


class _UpsampledCrossEntropy(torch.autograd.Function):

    @staticmethod
    def forward(ctx, logits, labels, align_corners, ignore_index, loss_weight,
                avg_non_ignore):
        n, c, h, w = logits.shape
        out_h, out_w = labels.shape[-2:]
        _check_labels(labels, c, ignore_index)
        needs_grad = ctx.needs_input_grad[0]
        low = logits.detach().float().permute(0, 2, 3, 1)  # n, h, w, c
        # Interpolation is a convex combination, so shifting each low-resolution pixel
        # by its class maximum bounds every upsampled logit by 0 (a stable softmax
        # without a max pass over the full-size chunk); the loss is shift-invariant.
        low = (low - low.amax(-1, keepdim=True)).contiguous()
        rows_h = interpolation_matrix(h, out_h, align_corners, low.device)
        cols_w = interpolation_matrix(w, out_w, align_corners, low.device)
        valid = labels != ignore_index
        safe = torch.where(valid, labels, torch.zeros_like(labels)).long()
        num_valid = valid.sum()
        eps = torch.finfo(torch.float32).eps
        scale = loss_weight / ((num_valid if avg_non_ignore else labels.numel()) + eps)
        loss_sum = low.new_zeros(())
        correct = low.new_zeros(())
        grad = torch.zeros_like(low) if needs_grad else None
        step = max(1, _CHUNK_ELEMENTS // (out_w * c))
        bands = list(_row_bands(rows_h, step))
        finite = torch.ones((), dtype=torch.bool, device=low.device)
        on_cpu = low.device.type == 'cpu'  # skipping costs a device sync elsewhere
        for b in range(n):
            # along the width first, at the low height: small (h, W, c)
            wide = torch.matmul(cols_w, low[b]).view(h, out_w * c)
            wide_grad = torch.zeros_like(wide) if needs_grad else None
            for r0, r1, k0, k1 in bands:
                uh = rows_h[r0:r1, k0:k1]
                z = (uh @ wide[k0:k1]).view(r1 - r0, out_w, c)
                y = safe[b, r0:r1, :, None]
                ok = valid[b, r0:r1]
                if on_cpu and not bool(ok.any()):  # padding rows: nothing to learn
                    continue
                z_y = z.gather(-1, y)[..., 0]
                z.exp_()
                # top-1 correct: the label's score is the largest (accuracy()'s topk)
                correct += ((z.gather(-1, y)[..., 0] >= z.amax(-1)) & ok).sum()
                total = z.sum(-1)
                lse = total.log()
                finite &= torch.isfinite(lse).all()
                loss_sum += ((lse - z_y) * ok).sum()
                if needs_grad:
                    weight = ok * scale
                    z.mul_((weight / total)[..., None])
                    z.scatter_add_(-1, y, -weight[..., None])
                    wide_grad[k0:k1].addmm_(uh.t(), z.view(r1 - r0, out_w * c))
            if needs_grad:
                grad[b] = torch.matmul(cols_w.t(), wide_grad.view(h, out_w, c))
        if not bool(finite):  # one check, not a device sync per chunk
            raise FloatingPointError(
                'upsampled_cross_entropy: non-finite logits, or logits whose spread '
                'between neighbouring pixels exceeds the float32 range (diverged)')
        loss = loss_sum * scale
        acc = (correct + eps) * (100.0 / (num_valid + eps))
        if needs_grad:
            ctx.save_for_backward(grad.permute(0, 3, 1, 2).to(logits.dtype))
        ctx.mark_non_differentiable(acc)
        return loss, acc.reshape(1)  # float32, as mmseg's CE under autocast

    @staticmethod
    def backward(ctx, grad_loss, grad_acc):
        grad, = ctx.saved_tensors
        return grad * grad_loss, None, None, None, None, None


def upsampled_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, *,
                            align_corners: bool = False, ignore_index: int = 255,
                            loss_weight: float = 1.0,
                            avg_non_ignore: bool = False
                            ) -> Tuple[torch.Tensor, torch.Tensor]:
    """mmseg's ``CrossEntropyLoss(loss_weight, avg_non_ignore)`` and ``accuracy`` of
    ``resize(logits, labels.shape[-2:], 'bilinear', align_corners)``.

    ``logits``: (N, C, h, w); ``labels``: (N, H, W) class indices or ``ignore_index``.
    Returns ``(loss, acc_seg)``; ``loss`` is differentiable with respect to
    ``logits``. The mean is over all N*H*W pixels (ignored ones count as 0), or over
    the non-ignored ones with ``avg_non_ignore``, as in mmseg.
    """
    if logits.dim() != 4 or labels.dim() != 3 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f'upsampled_cross_entropy needs logits (N, C, h, w) and labels '
                         f'(N, H, W); got {tuple(logits.shape)} and {tuple(labels.shape)}')
    return _UpsampledCrossEntropy.apply(logits, labels, bool(align_corners),
                                        int(ignore_index), float(loss_weight),
                                        bool(avg_non_ignore))
