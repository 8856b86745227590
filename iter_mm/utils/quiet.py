"""Quiet by default: the tools and the Inferencer show results and real problems, not library chatter.

Chatter silenced (``--verbose`` / ``verbose=True`` shows it again): MMEngine's registry-scope and visualiser
notes and per-parameter init reports (logger level ERROR), third-party deprecation warnings raised while MMagic's
inferencer stack imports (diffusers, timm, controlnet_aux, clip: ``FutureWarning`` / ``DeprecationWarning`` and
``UserWarning`` from those packages), and bitsandbytes' message about optional CPU kernels. Warnings of iter-mm
itself (file notes, errors) are never filtered.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings

#: third-party packages whose import-time warnings are not the user's problem
NOISY_PACKAGES = (
    'diffusers',
    'transformers',
    'timm',
    'controlnet_aux',
    'clip',
    'torch',
    'mmengine',
    'mmcv',
    'mmagic',
    'bitsandbytes',
    'pkg_resources',
    'huggingface_hub',
    'accelerate',
    'xformers',
)
_NOISY_LOGGERS = ('bitsandbytes', 'diffusers', 'transformers', 'xformers')


def verbose_requested() -> bool:
    """``ITER_MM_VERBOSE`` set to anything but '' / '0' (the tools' ``--verbose`` sets it).

    Returns:
        bool: whether verbose output was asked for.
    """
    return os.environ.get('ITER_MM_VERBOSE', '') not in ('', '0')


def quiet_dependency_loggers() -> None:
    """Make the loggers of dependencies that iter-mm never uses log only errors (called by ``import iter_mm``).

    Those are dependencies that MMEngine imports (bitsandbytes and its optional-kernel message); nothing changes when
    ``ITER_MM_VERBOSE`` is set or the application configured those loggers itself.
    """
    if verbose_requested():
        return
    for name in ('bitsandbytes',):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.ERROR)


@contextlib.contextmanager
def quiet_mmengine(level: int = logging.ERROR):
    """Raise MMEngine's current logger to ``level`` inside the block (init reports, preprocessor notes).

    Args:
        level (int): the lowest level that passes (never lowered). Default: ``logging.ERROR``.
    """
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    old = logger.level
    logger.setLevel(max(old, level))
    try:
        yield
    finally:
        logger.setLevel(old)


@contextlib.contextmanager
def quiet_tool(verbose: bool = False):
    """The body of a command-line tool: third-party warnings dropped, noisy loggers at ERROR.

    MMEngine's INFO / WARNING records (registry scopes, visualiser) and the bitsandbytes / diffusers loggers are raised
    to ERROR, and warnings that pass are one ``warning: ...`` line; everything is restored on exit (the tools' ``main``
    also runs inside tests).

    Args:
        verbose (bool): show everything instead (sets ``ITER_MM_VERBOSE``): the block is a no-op. Default: False.
    """
    if verbose:
        os.environ['ITER_MM_VERBOSE'] = '1'
        logging.getLogger('bitsandbytes').setLevel(logging.NOTSET)
        yield
        return
    levels = {n: logging.getLogger(n).level for n in _NOISY_LOGGERS}
    with warnings.catch_warnings():
        for pkg in NOISY_PACKAGES:
            warnings.filterwarnings('ignore', module=rf'{pkg}(\.|$)')
        warnings.filterwarnings('ignore', category=FutureWarning, message=r'.*(deprecated|_register_pytree_node)')
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        os.environ.setdefault('TRANSFORMERS_VERBOSITY', 'error')
        os.environ.setdefault('DIFFUSERS_VERBOSITY', 'error')
        formatwarning, warnings.formatwarning = warnings.formatwarning, _one_line_warning  # (recording unchanged)
        try:
            with quiet_mmengine():
                yield
        finally:
            warnings.formatwarning = formatwarning
            for name, lvl in levels.items():
                logging.getLogger(name).setLevel(lvl)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A warning that passed the filters as the tools' own ``warning: ...`` line (no source file and line)."""
    return f'warning: {message}\n'


@contextlib.contextmanager
def quiet_imports(verbose: bool = False):
    """Import noisy libraries (MMagic's inferencer stack) inside this block: their warnings and log lines are dropped.

    stdout/stderr writes of C extensions loaded there are not redirected (they are rare).

    Args:
        verbose (bool): show everything (a no-op block), as does ``ITER_MM_VERBOSE``. Default: False.
    """
    if verbose or verbose_requested():
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        levels = {n: logging.getLogger(n).level for n in _NOISY_LOGGERS}
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            yield
        finally:
            for name, lvl in levels.items():
                logging.getLogger(name).setLevel(lvl)
