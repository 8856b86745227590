"""iter_mm.engine.config_format: a config text is formatted once per process, with the same result."""

import mmengine.config.config as config_module
from mmengine.config import Config

from iter_mm.engine import config_format
from iter_mm.engine.config_format import reuse_config_formatting


def test_repeated_texts_are_formatted_once_with_the_same_result():
    calls = []
    original = getattr(config_module.FormatCode, 'wrapped', config_module.FormatCode)

    def counting(source, *args, **kwargs):
        calls.append(source)
        return original(source, *args, **kwargs)

    reusing = config_format._reusing(counting)
    cfg = Config(dict(model=dict(type='ITERModel', steps=[1, 2, 3]), work_dir='w'))
    before = config_module.FormatCode
    config_module.FormatCode = reusing
    try:
        first, second = cfg.pretty_text, cfg.pretty_text
        other = Config(dict(a=1)).pretty_text
    finally:
        config_module.FormatCode = before
    assert first == second
    assert len(calls) == 2  # cfg once, the other config once
    assert 'ITERModel' in first and "work_dir = 'w'" in first and other.strip() == 'a = 1'
    # the same text as MMEngine's formatting without reuse
    config_module.FormatCode = original
    try:
        assert cfg.pretty_text == first
    finally:
        config_module.FormatCode = before


def test_install_is_idempotent_and_bounded():
    assert reuse_config_formatting() is True
    installed = config_module.FormatCode
    assert installed.reuses_results and reuse_config_formatting() is True and config_module.FormatCode is installed
    seen = []
    reusing = config_format._reusing(lambda s, **kw: (seen.append(s), s.upper())[1])
    for i in range(config_format._KEEP + 3):
        assert reusing(f'x{i}', style_config='s') == f'X{i}'
    assert reusing(f'x{config_format._KEEP + 2}', style_config='s') == f'X{config_format._KEEP + 2}'
    assert len(seen) == config_format._KEEP + 3  # the newest is kept
    reusing('x0', style_config='s')
    assert len(seen) == config_format._KEEP + 4  # the oldest was dropped: formatted again
