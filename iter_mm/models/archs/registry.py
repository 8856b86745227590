"""The registry the ITER networks register into: MMagic's ``MODELS``, or, where MMagic is not installed (e.g. a bare
PyTorch machine that only runs the networks), a plain name table with the same ``register_module`` / ``build``."""

from __future__ import annotations

import importlib
from typing import Callable, Dict

_MODULES = ('vqgan', 'lq_encoder', 'token_nets', 'iter_net')  # the modules whose classes register


class NameTable:
    """A registry of network classes by name, for machines without MMagic.

    ``register_module()`` records a class under its name; ``build(dict(type=name, **kwargs))`` makes one.
    """

    def __init__(self) -> None:
        self.classes: Dict[str, type] = {}

    def register_module(self) -> Callable[[type], type]:
        def add(cls: type) -> type:
            self.classes[cls.__name__] = cls
            return cls

        return add

    def build(self, cfg: dict):
        for module in _MODULES:  # register every network (their modules import lazily)
            importlib.import_module(f'{__package__}.{module}')
        cfg = dict(cfg)
        name = cfg.pop('type')
        if name not in self.classes:
            raise KeyError(f'{name!r} is not an ITER network (without MMagic only these build: {sorted(self.classes)})')
        return self.classes[name](**cfg)


try:
    from mmagic.registry import MODELS
except ImportError as _err:  # MMCV / MMEngine / MMagic missing: the networks still build from their names
    if (_err.name or '').split('.')[0] not in ('mmcv', 'mmengine', 'mmagic'):
        raise
    MODELS = NameTable()
