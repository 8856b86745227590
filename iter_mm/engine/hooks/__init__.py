"""Runner hooks of ITER."""
from .refinement_visualization import RefinementVisualizationHook, refinement_mosaic

__all__ = ['RefinementVisualizationHook', 'refinement_mosaic']
