from .ade20k_subset import ADE20KSubsetDataset
from .transforms import LoadCheckedAnnotations

__all__ = ['ADE20KSubsetDataset', 'LoadCheckedAnnotations']
