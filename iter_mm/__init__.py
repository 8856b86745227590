"""iter_mm: ITER (Chen et al., AAAI 2024) real-world super-resolution as an MMagic plugin.

``import iter_mm`` registers every component into MMagic's registries (default scope ``mmagic``);
configs load it with ``custom_imports = dict(imports=['iter_mm'], allow_failed_imports=False)``.
"""
from .version import __version__
from . import apis, datasets, engine, evaluation, models, utils  # noqa: F401,E402

__all__ = ['__version__']
