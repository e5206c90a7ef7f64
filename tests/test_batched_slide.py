"""Batched sliding-window inference equals mmseg 1.2.2's per-window
``EncoderDecoder.slide_inference`` on the same model and inputs."""
from pathlib import Path

import pytest
import torch
from conftest import cached_config
from mmengine.registry import init_default_scope
from mmseg.models.segmentors import EncoderDecoder
from test_segmentation import SEG_CONFIGS, tiny_model_cfg

import mmseg_internvit  # noqa: F401
from mmseg_internvit import BatchedSlideEncoderDecoder
from mmseg_internvit.models.segmentors import slide_windows

ROOT = Path(__file__).resolve().parents[1]
LINEAR = str(ROOT / 'configs/internvit/linear_internvit-300m-448px_8xb2-80k_ade20k-504x504.py')
UPERNET = str(ROOT / 'configs/internvit/upernet_internvit-300m-448px_8xb2-80k_ade20k-504x504.py')


def build(path, crop=42, stride=28, slide_batch_size=4):
    from mmseg.registry import MODELS
    cfg = tiny_model_cfg(cached_config(path))
    cfg.model.backbone.img_size = crop
    cfg.model.test_cfg.update(crop_size=(crop, crop), stride=(stride, stride),
                              slide_batch_size=slide_batch_size)
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    # non-trivial BN statistics, so that eval-mode BN is not the identity
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def metas(inputs):
    shape = tuple(inputs.shape[-2:])
    return [dict(ori_shape=shape, img_shape=shape, pad_shape=shape)
            for _ in range(inputs.shape[0])]


def mmseg_slide(model, inputs):
    """mmseg's own per-window loop, run on the very same model object."""
    with torch.no_grad():
        return EncoderDecoder.slide_inference(model, inputs, metas(inputs))


def count_backbone_calls(model):
    calls = []
    handle = model.backbone.register_forward_hook(
        lambda mod, args, out: calls.append(args[0].shape[0]))
    return calls, handle


@pytest.mark.parametrize('path', [LINEAR, UPERNET], ids=['linear', 'upernet'])
@pytest.mark.parametrize('size', [(75, 130), (30, 100), (42, 42), (100, 31)],
                         ids=['overlap+shift', 'short-side-below-crop', 'one-window',
                              'narrow'])
def test_equals_mmseg_slide_inference(path, size):
    model = build(path)
    torch.manual_seed(1)
    for batch in (1, 2):
        inputs = torch.randn(batch, 3, *size)
        expected = mmseg_slide(model, inputs)
        for chunk in (1, 2, 3, 4, 100):
            model.test_cfg.slide_batch_size = chunk
            calls, handle = count_backbone_calls(model)
            with torch.no_grad():
                got = model.slide_inference(inputs, metas(inputs))
            handle.remove()
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
            # whole windows per call, as many as fit in `chunk` crops (at least one)
            per_call = max(1, chunk // batch) * batch
            n_crops = len(slide_windows(*size, 42, 42, 28, 28)) * batch
            assert sum(calls) == n_crops and max(calls) <= per_call
            assert len(calls) == -(-n_crops // per_call)


def test_windows_are_mmseg_windows():
    """The enumeration is mmseg's: every pixel covered, the last row/column moved back
    inside the image, windows clipped when the image is smaller than the crop."""
    assert slide_windows(75, 130, 42, 42, 28, 28) == [
        (y1, y1 + 42, x1, x1 + 42) for y1 in (0, 28, 33) for x1 in (0, 28, 56, 84, 88)]
    assert slide_windows(30, 100, 42, 42, 28, 28) == [
        (0, 30, x1, x1 + 42) for x1 in (0, 28, 56, 58)]
    assert slide_windows(504, 672, 504, 504, 322, 322) == [(0, 504, 0, 504),
                                                           (0, 504, 168, 672)]


def test_predict_end_to_end_matches_mmseg():
    """Through ``predict`` (what the val/test loops call), the predicted maps and
    logits are mmseg's."""
    from mmseg.structures import SegDataSample
    model = build(UPERNET, slide_batch_size=3)
    torch.manual_seed(2)
    inputs = torch.randn(1, 3, 60, 90)

    def samples():
        s = SegDataSample()
        s.set_metainfo(metas(inputs)[0])
        return [s]
    with torch.no_grad():
        ours = model.predict(inputs, samples())[0]
        model.test_cfg.slide_batch_size = 0  # mmseg's loop, through the same class
        theirs = model.predict(inputs, samples())[0]
    torch.testing.assert_close(ours.seg_logits.data, theirs.seg_logits.data,
                               rtol=1e-5, atol=1e-5)
    assert torch.equal(ours.pred_sem_seg.data, theirs.pred_sem_seg.data)


def test_training_mode_and_disabled_keep_mmseg_loop():
    """In train() BatchNorm uses batch statistics, which a batch of windows would
    change: the model then runs mmseg's loop (one window per call), bit for bit."""
    model = build(LINEAR, slide_batch_size=8)
    inputs = torch.randn(1, 3, 60, 90)
    n_windows = len(slide_windows(60, 90, 42, 42, 28, 28))
    assert n_windows == 6
    for train, chunk in ((True, 8), (False, 0), (False, None)):
        model.train(train)
        model.test_cfg.slide_batch_size = chunk
        torch.manual_seed(3)
        expected = mmseg_slide(model, inputs)
        calls, handle = count_backbone_calls(model)
        torch.manual_seed(3)
        with torch.no_grad():
            got = model.slide_inference(inputs, metas(inputs))
        handle.remove()
        assert calls == [1] * n_windows
        assert torch.equal(got, expected)


def test_bad_slide_batch_size_is_rejected():
    for bad in (-1, 2.5, True, '4'):
        with pytest.raises(ValueError, match='slide_batch_size'):
            build(LINEAR, slide_batch_size=bad)


def test_our_configs_use_batched_slide_inference():
    assert len(SEG_CONFIGS) > 20
    for path in SEG_CONFIGS:
        cfg = cached_config(path)
        assert cfg.model.type == 'BatchedSlideEncoderDecoder', path
        assert cfg.model.test_cfg.slide_batch_size == 4, path
    assert issubclass(BatchedSlideEncoderDecoder, EncoderDecoder)


def test_plain_dict_test_cfg():
    """Built from a plain dict (not a config file), test_cfg is read by attribute as
    mmseg's code does, for both paths."""
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    model = MODELS.build(dict(
        type='BatchedSlideEncoderDecoder',
        backbone=dict(type='InternViT', embed_dims=32, num_layers=1, num_heads=2,
                      mlp_hidden_dims=64, img_size=42),
        decode_head=dict(type='BNLinearHead', in_channels=32, num_classes=3),
        test_cfg=dict(mode='slide', crop_size=(42, 42), stride=(28, 28),
                      slide_batch_size=2))).eval()
    inputs = torch.randn(1, 3, 50, 70)
    torch.testing.assert_close(model.slide_inference(inputs, metas(inputs)),
                               mmseg_slide(model, inputs), rtol=1e-5, atol=1e-5)
