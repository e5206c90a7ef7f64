from .adapter import InternViTAdapter
from .checkpoint import CheckpointMismatchError, load_pretrained_into
from .internvit import PRESETS, InternViT, resolve_preset

__all__ = ['InternViT', 'InternViTAdapter', 'PRESETS', 'resolve_preset',
           'load_pretrained_into', 'CheckpointMismatchError']
