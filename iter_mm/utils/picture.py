"""The records an image read carries to its write: the pixels (:class:`Picture`) and what the file held
(:class:`ImageInfo`). Shared by :mod:`~iter_mm.utils.image_io` (reading) and :mod:`~iter_mm.utils.image_write`."""

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

ORIENTATION_TAG = 0x0112  # EXIF tag of the orientation (1-8)


@dataclass
class ImageInfo:
    """What :func:`read_picture` found in the file, so that the output can be written alike.

    Args:
        path (str): the file read.
        format (str): Pillow's name of the file format ('PNG', 'JPEG', 'GIF', ...). Default: ''.
        mode (str): pixel mode in the file ('RGB', 'RGBA', 'L', 'LA', 'P', 'CMYK', 'I;16', ...). Default: 'RGB'.
        bit_depth (int): 8 or 16. Default: 8.
        channels (int): colour channels to write, 1 (grey) or 3; alpha is not counted. Default: 3.
        has_alpha (bool): the file has an alpha channel. Default: False.
        icc_profile (bytes, optional): the embedded ICC profile (sRGB's after ``to_srgb``). Default: None.
        exif (bytes, optional): the file's EXIF block (orientation not yet reset). Default: None.
        orientation (int): EXIF orientation found (1-8); the pixels are already upright. Default: 1.
        n_frames (int): frames or pages in the file (read: ``len(Picture.frames)``). Default: 1.
        durations (list[int]): per read frame, ms (animations). Default: [].
        loop (int, optional): loop count of an animation. Default: None.
        notes (list[str]): notes of the read for the user. Default: [].
    """

    path: str
    format: str = ''  # Pillow's name of the file format: 'PNG', 'JPEG', 'GIF', ...
    mode: str = 'RGB'  # pixel mode in the file: 'RGB', 'RGBA', 'L', 'LA', 'P', 'CMYK', 'I;16'...
    bit_depth: int = 8  # 8 or 16
    channels: int = 3  # colour channels to write: 1 (grey) or 3; alpha is not counted
    has_alpha: bool = False
    icc_profile: Optional[bytes] = None  # the embedded profile (sRGB's after ``to_srgb``)
    exif: Optional[bytes] = None  # the file's EXIF block (orientation not yet reset)
    orientation: int = 1  # EXIF orientation found (1-8); the pixels are already upright
    n_frames: int = 1  # frames or pages in the file (read: ``len(Picture.frames)``)
    durations: List[int] = field(default_factory=list)  # per read frame, ms (animations)
    loop: Optional[int] = None
    notes: List[str] = field(default_factory=list)

    @property
    def grey(self) -> bool:
        """bool: whether the output is written grey (one colour channel)."""
        return self.channels == 1


@dataclass
class Picture:
    """Upright frames of a picture and what its file held.

    Args:
        frames (list[np.ndarray]): RGB float32 (H, W, 3) in [0, 1] per frame (grey replicated).
        alphas (list[np.ndarray | None]): alpha (H, W) float32 in [0, 1] per frame, or None.
        info (ImageInfo): what the file held.
    """

    frames: List[np.ndarray]
    alphas: List[Optional[np.ndarray]]
    info: ImageInfo

    @property
    def alpha(self) -> Optional[np.ndarray]:
        """np.ndarray | None: the first frame's alpha (H, W)."""
        return self.alphas[0]
