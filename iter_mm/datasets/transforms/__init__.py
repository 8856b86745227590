"""Degradation transforms registered into MMagic's ``TRANSFORMS`` (BSRGAN, Real-ESRGAN helpers,
per-sample seeding)."""

from .bsrgan import BSRGANDegradation
from .realesrgan import RandomOrderDegradations, RelativeRandomResize
from .seeding import SeededDegradations, sample_seed, seed_global_rngs

__all__ = [
    'BSRGANDegradation',
    'RandomOrderDegradations',
    'RelativeRandomResize',
    'SeededDegradations',
    'sample_seed',
    'seed_global_rngs',
]
