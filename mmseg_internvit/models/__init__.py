from .decode_heads import BNLinearHead
from .necks import LastMapFeature2Pyramid
from .segmentors import BatchedSlideEncoderDecoder

__all__ = ['BNLinearHead', 'BatchedSlideEncoderDecoder', 'LastMapFeature2Pyramid']
