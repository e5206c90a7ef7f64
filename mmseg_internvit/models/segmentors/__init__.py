from .batched_slide import BatchedSlideEncoderDecoder, slide_windows
from .sweep import SweepEncoderDecoder, expand_sweep

__all__ = ['BatchedSlideEncoderDecoder', 'SweepEncoderDecoder', 'expand_sweep',
           'slide_windows']
