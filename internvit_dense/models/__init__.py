from .adapter import InternViTAdapter
from .checkpoint import CheckpointMismatchError, load_pretrained_into
from .internvit import PRESETS, InternViT, resolve_preset, stage_ends

__all__ = ['InternViT', 'InternViTAdapter', 'PRESETS', 'resolve_preset', 'stage_ends',
           'load_pretrained_into', 'CheckpointMismatchError']
