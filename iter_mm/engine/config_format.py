"""Format each config text once per process: MMEngine re-formats ``Config.pretty_text`` with yapf every time the
Runner logs the config, hands it to the visualiser, records it in the run's metadata, dumps it and saves a
checkpoint. For the ITER configs (60-80 kB of text, mostly data pipelines) each formatting takes 2-3 s, about a
dozen seconds per run, most of a short run's set-up. yapf's ``FormatCode`` is a pure function of its arguments, so
keeping the result for a text already formatted changes no output.

Opt-in: the library never calls :func:`reuse_config_formatting` (``import iter_mm`` leaves MMEngine as it is); the
command-line tools that build a Runner call it in their own process (``tools/train.py``, ``tools/test.py``,
``tools/train_pipeline.py``), the test suite does (``tests/conftest.py``), and so may any application.
"""

from __future__ import annotations

from typing import Callable, Dict, Tuple

_KEEP = 8  # formatted texts kept per process (a Runner formats one config; a pipeline a few)


def reuse_config_formatting() -> bool:
    """Make MMEngine's config formatting reuse its results for repeated texts (idempotent).

    Returns:
        bool: True when installed (now or before); False when MMEngine's config module has no ``FormatCode`` to wrap.
    """
    try:
        import mmengine.config.config as config_module
    except ImportError:
        return False
    format_code = getattr(config_module, 'FormatCode', None)
    if format_code is None:
        return False
    if getattr(format_code, 'reuses_results', False):
        return True
    config_module.FormatCode = _reusing(format_code)
    return True


def _reusing(format_code: Callable) -> Callable:
    done: Dict[Tuple[str, str], object] = {}

    def reusing_format_code(source, *args, **kwargs):
        key = (source, repr((args, sorted(kwargs.items()))))
        if key not in done:
            if len(done) >= _KEEP:
                done.pop(next(iter(done)))  # the oldest
            done[key] = format_code(source, *args, **kwargs)
        return done[key]

    reusing_format_code.reuses_results = True
    reusing_format_code.wrapped = format_code
    return reusing_format_code
