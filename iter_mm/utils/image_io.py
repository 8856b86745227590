"""Reading and writing user images robustly: grayscale, alpha, 16-bit and corrupt files."""
import os
import os.path as osp
from dataclasses import dataclass
from typing import List, Sequence

import cv2
import numpy as np

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


class ImageReadError(ValueError):
    """An input file that is not a readable image."""


@dataclass
class ImageInfo:
    """What :func:`read_image` found in the file (so the output can be written alike)."""
    path: str
    bit_depth: int          # 8 or 16
    channels: int           # channels in the file: 1 (grey), 3, or 4 (alpha dropped)
    notes: List[str]


def read_image(path: str) -> 'tuple[np.ndarray, ImageInfo]':
    """Read an image file as RGB float32 (H, W, 3) in [0, 1].

    Grey images are replicated to 3 channels, an alpha channel is dropped (noted in ``info.notes``),
    16-bit images are scaled by 1/65535. Raises :class:`ImageReadError` with the path for missing,
    empty, corrupt or unsupported files.
    """
    if not osp.isfile(path):
        raise ImageReadError(f'{path}: no such file')
    if osp.getsize(path) == 0:
        raise ImageReadError(f'{path}: empty file')
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageReadError(f'{path}: not a readable image (corrupt or unsupported format)')
    notes = []
    if img.dtype == np.uint8:
        depth, scale = 8, 255.0
    elif img.dtype == np.uint16:
        depth, scale = 16, 65535.0
    elif img.dtype in (np.float32, np.float64):
        depth, scale = 32, 1.0
        notes.append('float image: values clipped to [0, 1]')
    else:
        raise ImageReadError(f'{path}: unsupported pixel type {img.dtype}')
    if img.ndim == 2:
        channels = 1
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.ndim == 3 and img.shape[2] in (3, 4):
        channels = img.shape[2]
        if channels == 4:
            notes.append('alpha channel dropped')
            img = img[..., :3]
        img = img[..., ::-1]  # BGR -> RGB
    else:
        raise ImageReadError(f'{path}: unsupported channel layout {img.shape}')
    rgb = np.clip(np.ascontiguousarray(img).astype(np.float32) / scale, 0.0, 1.0)
    return rgb, ImageInfo(path=path, bit_depth=min(depth, 16), channels=channels, notes=notes)


def write_image(path: str, rgb: np.ndarray, bit_depth: int = 8) -> None:
    """Write RGB float (H, W, 3) in [0, 1] as an 8- or 16-bit image (16-bit only for PNG/TIFF)."""
    ext = osp.splitext(path)[1].lower()
    if bit_depth == 16 and ext not in ('.png', '.tif', '.tiff'):
        bit_depth = 8
    maxval = 65535.0 if bit_depth == 16 else 255.0
    dtype = np.uint16 if bit_depth == 16 else np.uint8
    out = np.round(np.clip(rgb, 0.0, 1.0) * maxval).astype(dtype)[..., ::-1]
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    ok, buf = cv2.imencode(ext if ext else '.png', out)
    if not ok:
        raise ValueError(f'cannot encode an image as {ext!r} for {path}')
    buf.tofile(path)


def list_images(inputs: Sequence[str]) -> List[str]:
    """Expand files and folders (non-recursive, sorted) into image paths; a missing path is an error."""
    paths: List[str] = []
    for item in inputs:
        if osp.isdir(item):
            found = sorted(osp.join(item, f) for f in os.listdir(item)
                           if f.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise FileNotFoundError(f'{item}: folder holds no images ({", ".join(IMAGE_EXTENSIONS)})')
            paths += found
        elif osp.isfile(item):
            paths.append(item)
        else:
            raise FileNotFoundError(f'{item}: no such file or folder')
    return paths
