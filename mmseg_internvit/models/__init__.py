from .backbones import (PRESETS, CheckpointMismatchError, InternViT,
                        load_pretrained_into, resolve_preset)
from .decode_heads import BNLinearHead

__all__ = ['InternViT', 'PRESETS', 'resolve_preset', 'load_pretrained_into',
           'CheckpointMismatchError', 'BNLinearHead']
