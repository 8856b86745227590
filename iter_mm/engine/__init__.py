"""Runner hooks and MMEngine integration."""
from . import checkpoint_loader, hooks, launch, optimizers  # noqa: F401
