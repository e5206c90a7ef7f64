from .decode_heads import BNLinearHead
from .necks import LastMapFeature2Pyramid
from .segmentors import BatchedSlideEncoderDecoder, SweepEncoderDecoder

__all__ = ['BNLinearHead', 'BatchedSlideEncoderDecoder', 'LastMapFeature2Pyramid',
           'SweepEncoderDecoder']
