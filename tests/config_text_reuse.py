"""Reuse yapf's formatting of config texts already formatted (``mmengine.config.Config.pretty_text``).

MMEngine formats the whole config text with yapf each time a Runner logs its config, dumps it and saves a
checkpoint: about 3 s per call for the ITER configs, whose data pipelines make the text 65 kB, so most of the time
of a short training run went into formatting the same text again. yapf's ``FormatCode`` is a pure function of
its arguments: keeping its results for texts already formatted changes no output. Installed in the pytest
process (tests/conftest.py) and in the processes of tests/test_distributed.py (tests/dist_probe.py).
"""


def reuse_config_formatting() -> None:
    try:
        import mmengine.config.config as config_module
    except ImportError:  # the pure-torch parts of the suite run without MMEngine
        return
    format_code = config_module.FormatCode
    if getattr(format_code, 'reuses_results', False):
        return
    results = {}

    def reusing_format_code(unformatted_source, *args, **kwargs):
        key = (unformatted_source, repr(args), repr(sorted(kwargs.items())))
        if key not in results:
            if len(results) >= 16:
                results.clear()
            results[key] = format_code(unformatted_source, *args, **kwargs)
        return results[key]

    reusing_format_code.reuses_results = True
    config_module.FormatCode = reusing_format_code
