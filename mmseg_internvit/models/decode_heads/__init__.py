from .depth_bins_head import DepthBinsHead, DepthHead
from .dpt_depth_head import DPTDepthHead
from .linear_head import BNLinearHead

__all__ = ['BNLinearHead', 'DPTDepthHead', 'DepthBinsHead', 'DepthHead']
