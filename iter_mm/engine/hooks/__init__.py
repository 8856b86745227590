"""Runner hooks of ITER."""

from .ema import WrapperAwareEMAHook
from .metrics_recorder import MetricsRecorderHook
from .refinement_visualization import RefinementVisualizationHook, refinement_mosaic

__all__ = ['WrapperAwareEMAHook', 'MetricsRecorderHook', 'RefinementVisualizationHook', 'refinement_mosaic']
