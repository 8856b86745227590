"""Networks (archs), training/inference models (editors), losses and the pure-torch sampling / inference code
of ITER. Importing this package imports none of them (``iter_mm.utils.setup_env`` registers them)."""
