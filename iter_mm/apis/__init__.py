"""ITER inside MMagic's Inferencer API (``MMagicInferencer('iter', ...)``) and ``ITERInferencer``."""
from .inferencer import ITER_TASK, ITERInferencer, register_iter_inferencer

register_iter_inferencer()

__all__ = ['ITERInferencer', 'ITER_TASK', 'register_iter_inferencer']
