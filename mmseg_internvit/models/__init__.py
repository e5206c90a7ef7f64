from .decode_heads import BNLinearHead, DepthBinsHead, DPTDepthHead
from .losses import ScaleInvariantLogLoss
from .necks import LastMapFeature2Pyramid
from .segmentors import BatchedSlideEncoderDecoder, FlipDepthEstimator, SweepEncoderDecoder

__all__ = ['BNLinearHead', 'BatchedSlideEncoderDecoder', 'DPTDepthHead', 'DepthBinsHead',
           'FlipDepthEstimator',
           'LastMapFeature2Pyramid', 'ScaleInvariantLogLoss', 'SweepEncoderDecoder']
