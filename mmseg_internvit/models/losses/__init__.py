from .depth_losses import ScaleInvariantLogLoss

__all__ = ['ScaleInvariantLogLoss']
