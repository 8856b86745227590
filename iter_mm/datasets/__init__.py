"""Datasets and data transforms (degradation pipelines)."""
from . import transforms  # noqa: F401
from .checked_dataset import CheckedImageDataset  # noqa: F401
