from .batched_slide import BatchedSlideEncoderDecoder, slide_windows
from .depth import FlipDepthEstimator
from .sweep import SweepEncoderDecoder, expand_sweep

__all__ = ['BatchedSlideEncoderDecoder', 'FlipDepthEstimator', 'SweepEncoderDecoder',
           'expand_sweep', 'slide_windows']
