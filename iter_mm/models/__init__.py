"""Networks (archs), training/inference models (editors) and losses of ITER."""
from . import archs, editors, losses  # noqa: F401  (registers into mmagic.registry.MODELS)
