from .sweep import (
    SweepOptimWrapperConstructor,
    SweepTestLoop,
    SweepValLoop,
    write_sweep_results,
)

__all__ = ['SweepOptimWrapperConstructor', 'SweepTestLoop', 'SweepValLoop',
           'write_sweep_results']
