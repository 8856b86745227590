"""Runner hooks and MMEngine integration."""
from . import checkpoint_loader, hooks, launch, optimizers  # noqa: F401
from .config_format import reuse_config_formatting

reuse_config_formatting()  # each config text is formatted once per process, not at every log / dump / checkpoint
