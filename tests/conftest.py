"""Suite-wide test setup: MMEngine's formatting of a config text is reused when the same text comes back
(``iter_mm.engine.config_format``, opt-in: ``import iter_mm`` does not install it; no output changes)."""

from iter_mm.engine.config_format import reuse_config_formatting

reuse_config_formatting()
