"""Suite-wide test setup: yapf's formatting of a config text is reused when the same text is formatted again
(tests/config_text_reuse.py; changes no output, saves ~3 s per Runner config log, dump and checkpoint)."""
from config_text_reuse import reuse_config_formatting

reuse_config_formatting()
