"""The authors' state-dict manifests (key, shape, dtype of every entry), read by ``iter_mm.utils.checkpoint``."""
