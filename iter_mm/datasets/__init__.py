"""Datasets and data transforms (degradation pipelines)."""

from . import transforms  # noqa: F401
from .checked_dataset import CheckedImageDataset  # noqa: F401
from .skimage_photos import SKIMAGE_HELDOUT, SKIMAGE_TRAIN, SkimagePhotoDataset, skimage_data_dir  # noqa: F401
