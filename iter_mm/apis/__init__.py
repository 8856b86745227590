"""Inference front doors: the one model loader and ITER inside MMagic's Inferencer API.

``init_model`` (light: no MMagic inferencer stack) builds a model from a config and loads any supported
checkpoint strictly. The Inferencer parts import MMagic's inferencer stack (diffusers, ...) only when first used;
nothing of MMagic is changed::

    from iter_mm.apis import MMagicInferencer    # a subclass of MMagic's that also knows 'iter'
    from iter_mm.apis import ITERInferencer      # or ITER's inferencer directly
"""

from ..errors import CheckpointMismatchError
from .model_loader import init_model, load_model_weights

_INFERENCER_NAMES = ('ITERInferencer', 'ITER_TASK', 'MMagicInferencer')

__all__ = ['CheckpointMismatchError', 'init_model', 'load_model_weights', *_INFERENCER_NAMES]


def __getattr__(name: str):
    if name in _INFERENCER_NAMES:
        from . import inferencer  # imports MMagic's inferencer stack quietly

        return getattr(inferencer, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
