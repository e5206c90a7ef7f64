from .ade20k_subset import ADE20KSubsetDataset
from .held_out import HeldOutSplit
from .transforms import CropBox, DepthColorAug, LoadCheckedAnnotations, LoadCheckedDepthAnnotation

__all__ = ['ADE20KSubsetDataset', 'CropBox', 'DepthColorAug', 'HeldOutSplit',
           'LoadCheckedAnnotations', 'LoadCheckedDepthAnnotation']
