"""Metrics (pyiqa wrappers, token and codebook diagnostics); registered through ``iter_mm.utils.setup_env``."""
