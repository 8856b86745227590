"""The records an image read carries to its write: the pixels (:class:`Picture`) and what the file held
(:class:`ImageInfo`). Shared by :mod:`~iter_mm.utils.image_io` (reading) and :mod:`~iter_mm.utils.image_write`."""
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

ORIENTATION_TAG = 0x0112  # EXIF tag of the orientation (1-8)


@dataclass
class ImageInfo:
    """What :func:`read_picture` found in the file, so that the output can be written alike."""
    path: str
    format: str = ''                      # Pillow's name of the file format: 'PNG', 'JPEG', 'GIF', ...
    mode: str = 'RGB'                     # pixel mode in the file: 'RGB', 'RGBA', 'L', 'LA', 'P', 'CMYK', 'I;16'...
    bit_depth: int = 8                    # 8 or 16
    channels: int = 3                     # colour channels to write: 1 (grey) or 3; alpha is not counted
    has_alpha: bool = False
    icc_profile: Optional[bytes] = None   # the embedded profile (sRGB's after ``to_srgb``)
    exif: Optional[bytes] = None          # the file's EXIF block (orientation not yet reset)
    orientation: int = 1                  # EXIF orientation found (1-8); the pixels are already upright
    n_frames: int = 1                     # frames or pages in the file (read: ``len(Picture.frames)``)
    durations: List[int] = field(default_factory=list)  # per read frame, ms (animations)
    loop: Optional[int] = None
    notes: List[str] = field(default_factory=list)

    @property
    def grey(self) -> bool:
        return self.channels == 1


@dataclass
class Picture:
    """Upright frames: RGB float32 (H, W, 3) in [0, 1] (grey replicated) and alpha (H, W) in [0, 1] or None."""
    frames: List[np.ndarray]
    alphas: List[Optional[np.ndarray]]
    info: ImageInfo

    @property
    def alpha(self) -> Optional[np.ndarray]:
        return self.alphas[0]
