"""Registration of iter-mm's components into MMagic's registries (as ``mmagic.utils.register_all_modules``).

``import iter_mm`` calls :func:`register_all_modules` with ``deferred=True``: the networks, losses, datasets,
transforms, hooks and optimizer wrappers register at once; the two groups that need MMagic's model and
evaluation packages (which import diffusers and take seconds) -- the editors ``ITERModel`` / ``SwinVQGANModel``
and the metrics -- are added to the import locations of MMagic's ``MODELS`` / ``METRICS`` registries, which
import them on the registry's first look-up, together with MMagic's own ``mmagic.models`` /
``mmagic.evaluation``. A config that names ``ITERModel`` therefore builds with no other call, and
``import iter_mm`` stays light. ``register_all_modules(deferred=False)`` imports everything now.
"""
from __future__ import annotations

import importlib

#: modules registered at ``import iter_mm`` (none of them imports mmagic.models / mmagic.evaluation)
EAGER_MODULES = ('iter_mm.models.archs.vqgan', 'iter_mm.models.archs.lq_encoder', 'iter_mm.models.archs.token_nets',
                 'iter_mm.models.archs.iter_net', 'iter_mm.models.losses', 'iter_mm.datasets', 'iter_mm.engine')
#: registry name in ``mmagic.registry`` -> module imported with that registry's own locations
DEFERRED_MODULES = (('MODELS', 'iter_mm.models.editors'), ('METRICS', 'iter_mm.evaluation.metrics'))


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
        init_default_scope: also make ``mmagic`` the default scope (as MMagic's function does), unless a
            default scope is set already.
        deferred: leave the editors and metrics to the registries' first look-up (``import iter_mm`` does).
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
