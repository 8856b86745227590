"""Runner, hooks and MMEngine integration. Importing this package changes nothing of MMEngine: the tools build
:class:`~.runner.ITERRunner` explicitly, and :func:`~.config_format.reuse_config_formatting` is opt-in."""

from . import hooks, launch, optimizers  # noqa: F401
from .runner import ITERRunner  # noqa: F401
