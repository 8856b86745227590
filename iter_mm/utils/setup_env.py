"""Registration of iter-mm's components into MMagic's registries (as ``mmagic.utils.register_all_modules``).

``import iter_mm`` calls :func:`register_all_modules` with ``deferred=True``: the networks and losses register at
once; the groups that need heavy packages (MMagic's models and metrics import diffusers, its transforms
torchvision's model zoo, the engine MMEngine's runner) -- the editors ``ITERModel`` / ``SwinVQGANModel``, the
metrics, the datasets and degradation transforms, the hooks, the optimizer wrapper and ``ITERRunner`` -- are
added to the import locations of the MMagic registry they register into (``MODELS``, ``METRICS``, ``DATASETS`` /
``TRANSFORMS``, ``HOOKS`` / ``OPTIM_WRAPPERS`` / ``RUNNERS``). A registry imports its locations on its first
look-up, so a config that names ``ITERModel``, ``SkimagePhotoDataset``, ``MetricsRecorderHook``,
``AutocastOptimWrapper`` or ``runner_type = 'ITERRunner'`` builds with no other call.
``register_all_modules(deferred=False)`` imports everything now. Registering changes nothing of MMEngine or MMagic
beyond their registries.
"""

from __future__ import annotations

import importlib

#: modules registered at ``import iter_mm`` (none of them imports mmagic.models / mmagic.evaluation)
EAGER_MODULES = (
    'iter_mm.models.archs.vqgan',
    'iter_mm.models.archs.lq_encoder',
    'iter_mm.models.archs.token_nets',
    'iter_mm.models.archs.iter_net',
    'iter_mm.models.losses',
)
#: registry name in ``mmagic.registry`` -> module imported with that registry's own locations (the datasets
#: module registers into both DATASETS and TRANSFORMS, so either look-up imports it)
DEFERRED_MODULES = (
    ('MODELS', 'iter_mm.models.editors'),
    ('METRICS', 'iter_mm.evaluation.metrics'),
    ('DATASETS', 'iter_mm.datasets'),
    ('TRANSFORMS', 'iter_mm.datasets'),
    ('HOOKS', 'iter_mm.engine'),
    ('OPTIM_WRAPPERS', 'iter_mm.engine'),
    ('RUNNERS', 'iter_mm.engine'),
)


def _defer(registry, module: str) -> None:
    """Import ``module`` with ``registry``'s own import locations (on its first look-up), or now if the registry
    has already imported them. MMEngine has no public call to add a location after construction, so this appends
    to the list that MMagic passed as ``locations=`` when it created the registry."""
    locations = getattr(registry, '_locations', None)
    if getattr(registry, '_imported', True) or not isinstance(locations, list):
        importlib.import_module(module)
    elif module not in locations:
        locations.append(module)


def register_all_modules(init_default_scope: bool = True, deferred: bool = False) -> None:
    """Register every iter-mm component into MMagic's registries (scope ``mmagic``).

    Args:
        init_default_scope (bool): also make ``mmagic`` the default scope (as MMagic's function does), unless a
            default scope is set already. Default: True.
        deferred (bool): leave the editors and metrics to the registries' first look-up (``import iter_mm`` does).
            Default: False.
    """
    import mmagic.registry as registries

    for module in EAGER_MODULES:
        importlib.import_module(module)
    for registry_name, module in DEFERRED_MODULES:
        if deferred:
            _defer(getattr(registries, registry_name), module)
        else:
            importlib.import_module(module)
    if init_default_scope:
        from mmengine.registry import DefaultScope

        if DefaultScope.get_current_instance() is None:
            DefaultScope.get_instance('iter_mm', scope_name='mmagic')
