"""iter_mm: ITER (Chen et al., AAAI 2024) real-world super-resolution as an MMagic plugin.

``import iter_mm`` registers every component into MMagic's registries (scope ``mmagic``) without importing
MMagic's inferencer stack or diffusers: the editors and metrics register on the registries' first look-up
(:mod:`iter_mm.utils.setup_env`). Configs load it with ``custom_imports = dict(imports=['iter_mm'])``.
``iter_mm.register_all_modules()`` registers everything at once, as MMagic's function of the same name.
MMagic's Inferencer learns 'iter' where it is used: ``from iter_mm.apis import MMagicInferencer``.

The pure-torch parts (``iter_mm.models.sampling``, ``iter_mm.models.archs.swin``, ``iter_mm.utils.padding``,
``iter_mm.utils.checkpoint``, ...) import without MMCV / MMagic; without them ``import iter_mm`` registers
nothing and says so once.
"""

import warnings

from .utils.quiet import quiet_dependency_loggers
from .utils.setup_env import register_all_modules
from .version import __version__

__all__ = ['__version__', 'register_all_modules']

quiet_dependency_loggers()  # bitsandbytes' optional-kernel note (MMEngine imports it); ITER_MM_VERBOSE=1 keeps it
try:
    register_all_modules(init_default_scope=False, deferred=True)
except ImportError as _err:  # MMCV / MMEngine / MMagic missing: the pure-torch modules still work
    if (_err.name or '').split('.')[0] not in ('mmcv', 'mmengine', 'mmagic'):
        raise
    warnings.warn(f'iter_mm: {_err}; components are not registered (pure-torch modules only)', ImportWarning)
