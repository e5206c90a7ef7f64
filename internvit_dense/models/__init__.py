from .adapter import InternViTAdapter
from .checkpoint import CheckpointMismatchError, load_pretrained_into
from .internvit import PRESETS, InternViT, resolve_preset, stage_ends
from .norms import LayerNorm2d

__all__ = ['InternViT', 'InternViTAdapter', 'PRESETS', 'resolve_preset', 'stage_ends',
           'load_pretrained_into', 'CheckpointMismatchError', 'LayerNorm2d']
