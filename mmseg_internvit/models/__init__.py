from .decode_heads import BNLinearHead
from .segmentors import BatchedSlideEncoderDecoder

__all__ = ['BNLinearHead', 'BatchedSlideEncoderDecoder']
