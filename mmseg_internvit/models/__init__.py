from .decode_heads import BNLinearHead

__all__ = ['BNLinearHead']
