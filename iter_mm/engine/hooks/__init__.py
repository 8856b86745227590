"""Runner hooks of ITER."""
from .metrics_recorder import MetricsRecorderHook
from .refinement_visualization import RefinementVisualizationHook, refinement_mosaic

__all__ = ['MetricsRecorderHook', 'RefinementVisualizationHook', 'refinement_mosaic']
