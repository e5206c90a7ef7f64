from .sweep_metric import SweepIoUMetric

__all__ = ['SweepIoUMetric']
