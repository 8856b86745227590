"""Metrics (pyiqa wrappers, token and codebook diagnostics)."""
from . import metrics  # noqa: F401
