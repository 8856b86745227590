"""Runner hooks and MMEngine integration."""
from . import checkpoint_loader, hooks  # noqa: F401
