"""The fused loss of BNLinearHead: mmseg's resize + CrossEntropyLoss + accuracy
without the full-size logits, equal to them to float rounding."""
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.models.losses import CrossEntropyLoss, accuracy
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import mmseg_internvit  # noqa: F401
import mmseg_internvit.models.decode_heads.upsampled_ce as upsampled_ce
from mmseg_internvit.models.decode_heads.upsampled_ce import upsampled_cross_entropy

IGNORE = 255


def mmseg_loss(logits, labels, align_corners, **ce):
    up = resize(logits, size=labels.shape[-2:], mode='bilinear',
                align_corners=align_corners)
    loss = CrossEntropyLoss(**ce)(up, labels, ignore_index=IGNORE)
    return loss, accuracy(up, labels, ignore_index=IGNORE)


def labelled(n, classes, size, seed=0, ignore_rows=3):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n, *size), generator=g)
    labels[:, :ignore_rows] = IGNORE           # padding at the top
    labels[0, :, -2:] = IGNORE                 # and a strip at the side
    return labels


@pytest.mark.parametrize('low, out', [((6, 9), (23, 31)), ((8, 8), (56, 56)),
                                      ((7, 5), (7, 5)), ((4, 4), (57, 13))])
@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('avg_non_ignore, loss_weight', [(False, 1.0), (True, 0.4)])
def test_loss_gradient_and_accuracy_equal_mmseg(monkeypatch, low, out, align_corners,
                                                avg_non_ignore, loss_weight):
    # small chunks: several bands per image, one of them all padding
    monkeypatch.setattr(upsampled_ce, '_CHUNK_ELEMENTS', 3 * out[1] * 7)
    torch.manual_seed(0)
    logits = (3 * torch.randn(3, 7, *low)).requires_grad_()
    labels = labelled(3, 7, out)
    ce = dict(loss_weight=loss_weight, avg_non_ignore=avg_non_ignore)
    ref_loss, ref_acc = mmseg_loss(logits, labels, align_corners, **ce)
    ref_grad, = torch.autograd.grad(ref_loss, logits)
    loss, acc = upsampled_cross_entropy(logits, labels, align_corners=align_corners,
                                        ignore_index=IGNORE, **ce)
    grad, = torch.autograd.grad(loss * 2.5, logits)   # the upstream gradient is applied
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(acc, ref_acc, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad, 2.5 * ref_grad, rtol=1e-5, atol=1e-9)


def test_an_image_with_no_labelled_pixel_gives_zero_loss_and_gradient():
    logits = torch.randn(2, 4, 3, 3, requires_grad=True)
    labels = torch.full((2, 12, 12), IGNORE)
    loss, acc = upsampled_cross_entropy(logits, labels, ignore_index=IGNORE,
                                        avg_non_ignore=True)
    loss.backward()
    ref_loss, ref_acc = mmseg_loss(logits.detach(), labels, False, avg_non_ignore=True)
    assert float(loss.detach()) == float(ref_loss) == 0.0
    assert not logits.grad.any()
    torch.testing.assert_close(acc, ref_acc)


def test_a_label_outside_the_classes_is_an_error_naming_it():
    labels = labelled(1, 4, (8, 8))
    labels[0, 5, 5] = 9
    with pytest.raises(ValueError, match=r'\[9\].*\[0, 4\).*ignore_index=255'):
        upsampled_cross_entropy(torch.randn(1, 4, 2, 2), labels, ignore_index=IGNORE)


def test_diverged_logits_are_an_error_not_a_nan_loss():
    logits = torch.randn(1, 3, 2, 2)
    logits[0, 1, 0, 0] = float('nan')
    with pytest.raises(FloatingPointError, match='non-finite'):
        upsampled_cross_entropy(logits, torch.zeros(1, 8, 8, dtype=torch.long))


def head_cfg(**kw):
    return dict(type='BNLinearHead', in_channels=16, num_classes=6, dropout_ratio=0.0,
                align_corners=False, norm_cfg=dict(type='BN'), **kw)


def build_head(**kw):
    init_default_scope('mmseg')
    torch.manual_seed(0)
    return MODELS.build(head_cfg(**kw))


def samples(n=2, size=(40, 40), seed=0):
    out = []
    for i, labels in enumerate(labelled(n, 6, size, seed=seed)):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=labels[None])
        out.append(s)
    return out


def test_the_head_fuses_a_plain_ce_and_keeps_mmseg_for_anything_else():
    assert build_head().fused_loss
    assert not build_head(fused_loss=False).fused_loss
    lovasz = dict(type='LovaszLoss', loss_type='multi_class', reduction='none')
    assert not build_head(loss_decode=lovasz).fused_loss
    assert not build_head(loss_decode=[dict(type='CrossEntropyLoss'),
                                       dict(type='DiceLoss')]).fused_loss
    for kw, why in [(dict(sampler=dict(type='OHEMPixelSampler')), 'sampler'),
                    (dict(loss_decode=dict(type='CrossEntropyLoss',
                                           class_weight=[1.0] * 6)), 'class weights'),
                    (dict(loss_decode=dict(type='CrossEntropyLoss',
                                           use_sigmoid=True)), 'sigmoid')]:
        with pytest.raises(ValueError, match=why):
            build_head(fused_loss=True, **kw)


def test_a_fused_head_trains_as_the_same_head_on_mmseg_s_loss():
    """Four SGD steps of BNLinearHead with the fused loss and with mmseg's: the same
    logged losses and the same weights, to float rounding."""
    heads = [build_head(), build_head(fused_loss=False)]
    assert heads[0].fused_loss and not heads[1].fused_loss
    opts = [torch.optim.SGD(h.parameters(), lr=0.5, momentum=0.9) for h in heads]
    g = torch.Generator().manual_seed(3)
    for step in range(4):
        feats = [torch.randn(2, 16, 5, 5, generator=g)]
        data = samples(seed=step)
        logs = []
        for head, opt in zip(heads, opts):
            losses = head.loss_by_feat(head(feats), data)
            opt.zero_grad()
            losses['loss_ce'].backward()
            opt.step()
            logs.append(losses)
        assert logs[0].keys() == logs[1].keys() == {'loss_ce', 'acc_seg'}
        for k in logs[0]:
            torch.testing.assert_close(logs[0][k], logs[1][k], rtol=1e-5, atol=1e-5)
    for k, v in heads[1].state_dict().items():
        torch.testing.assert_close(heads[0].state_dict()[k], v, rtol=1e-5, atol=1e-6)
