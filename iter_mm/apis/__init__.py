"""Inference front doors: the one model loader and ITER inside MMagic's Inferencer API.

``init_model`` (light: no MMagic inferencer stack) builds a model from a config and loads any supported
checkpoint strictly. The Inferencer parts import MMagic's inferencer stack (diffusers, ...) and register ITER with
``MMagicInferencer`` only when first used::

    from iter_mm.apis import MMagicInferencer    # MMagic's class, with 'iter' registered
    from iter_mm.apis import ITERInferencer      # or ITER's inferencer directly
"""
from .model_loader import CheckpointMismatchError, init_model, load_model_weights

_INFERENCER_NAMES = ('ITERInferencer', 'ITER_TASK', 'MMagicInferencer', 'register_iter_inferencer')

__all__ = ['CheckpointMismatchError', 'init_model', 'load_model_weights', *_INFERENCER_NAMES]


def __getattr__(name: str):
    if name in _INFERENCER_NAMES:
        from . import inferencer  # imports MMagic's inferencer stack quietly and registers 'iter'
        return getattr(inferencer, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
