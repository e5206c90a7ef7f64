from .ade20k_subset import ADE20KSubsetDataset
from .held_out import HeldOutSplit
from .transforms import LoadCheckedAnnotations

__all__ = ['ADE20KSubsetDataset', 'HeldOutSplit', 'LoadCheckedAnnotations']
