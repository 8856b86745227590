"""Reading user images as people have them: EXIF orientation, alpha, grey, 16 bit, palettes, CMYK, ICC, frames.

:func:`read_picture` returns upright RGB float frames, their alpha and an :class:`ImageInfo` record that
:func:`~iter_mm.utils.image_write.write_picture` uses to write the super-resolved result alike (grey in, grey
out; 16 bit in, 16 bit out; alpha, ICC profile and EXIF carried). :func:`read_image` is the one-frame shortcut.
Pixels come from Pillow, except 16-bit PNG/TIFF files, which Pillow would cut to 8 bit: those come from OpenCV.
"""

import functools
import io
import os.path as osp
from typing import Optional, Tuple

import cv2
import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from ..errors import InvalidInputError, InvalidOptionError
from .image_files import IMAGE_EXTENSIONS, list_images  # noqa: F401  (re-exported: the one image listing)
from .image_write import write_image, write_picture  # noqa: F401  (re-exported: one place to import I/O from)
from .picture import ORIENTATION_TAG, ImageInfo, Picture  # noqa: F401  (re-exported)

FLOAT_TOLERANCE = 1e-6  # float array pixels may exceed [0, 1] by this much (rounding); clipped
GREY_MODES = ('1', 'L', 'LA', 'La', 'I', 'F', 'I;16', 'I;16L', 'I;16B', 'I;16N')


class ImageReadError(InvalidInputError):
    """An input file that is not a readable image."""


def orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF ``orientation`` (1-8) to an array: the result is what viewers display.

    Args:
        arr (np.ndarray): (H, W) or (H, W, C).
        orientation (int): EXIF orientation; values outside 1-8 leave the array as it is.

    Returns:
        np.ndarray: the upright array, contiguous ((W, H[, C]) for the transposing orientations 5-8).
    """
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops.get(orientation, ops[1])(arr))


@functools.lru_cache(maxsize=1)
def srgb_profile() -> bytes:
    """The bytes of an sRGB ICC profile (LittleCMS's built-in; made once: its header holds the creation time).

    Returns:
        bytes: the profile.
    """
    return ImageCms.ImageCmsProfile(ImageCms.createProfile('sRGB')).tobytes()


def _sixteen_bit(head: bytes, im: Image.Image) -> Tuple[bool, bool]:
    """(16 bits per sample, grey) for a PNG (IHDR) or TIFF (BitsPerSample, Photometric): Pillow decodes those
    files at 8 bits (16-bit grey+alpha even as 'RGBA')."""
    grey = im.mode in GREY_MODES
    if head[:8] == b'\x89PNG\r\n\x1a\n' and head[12:16] == b'IHDR':
        return head[24] == 16, head[25] in (0, 4)
    if im.format == 'TIFF':
        bits = im.tag_v2.get(258, (8,))
        return max(bits if isinstance(bits, tuple) else (bits,)) == 16, im.tag_v2.get(262, 2) in (0, 1)
    return im.mode.startswith('I;16'), grey


def _read_sixteen(data: np.ndarray, path: str, grey: bool) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """OpenCV decode of a 16-bit file -> (RGB float, alpha float or None)."""
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None or img.dtype != np.uint16:
        raise ImageReadError(f'{path}: not a readable image (corrupt 16-bit file)')
    img = img.astype(np.float32) / 65535.0
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2), None
    alpha = img[..., 3] if img.shape[2] == 4 else None
    rgb = img[..., 2::-1] if img.shape[2] >= 3 else np.repeat(img[..., :1], 3, axis=2)
    if grey:  # OpenCV expands grey(+alpha) files to BGR(A) with equal channels
        rgb = np.repeat(rgb[..., :1], 3, axis=2)
    return np.ascontiguousarray(rgb), alpha


def _frame_arrays(im: Image.Image, info: ImageInfo, to_srgb: bool) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """The current frame of ``im`` -> (RGB float, alpha float or None); conversions noted in ``info``."""
    mode = im.mode
    note = info.notes.append
    if mode == 'P' or mode == 'PA':
        alpha = mode == 'PA' or 'transparency' in im.info
        im = im.convert('RGBA' if alpha else 'RGB')
        if not any(n.startswith('palette') for n in info.notes):
            note(f'palette image converted to {im.mode}')
    elif mode == 'CMYK':
        profile = info.icc_profile
        if profile:
            try:
                im = ImageCms.profileToProfile(
                    im, io.BytesIO(profile), ImageCms.createProfile('sRGB'), outputMode='RGB'
                )
                info.icc_profile = srgb_profile()
                note('CMYK image converted to sRGB with its embedded profile; output tagged sRGB')
            except (ImageCms.PyCMSError, OSError):
                profile = None
        if not profile:
            im = im.convert('RGB')
            info.icc_profile = None
            note('CMYK image converted to RGB without a profile (colours approximate)')
    elif mode in ('L', 'RGB') and 'transparency' in im.info:
        im = im.convert('LA' if mode == 'L' else 'RGBA')
    elif mode in ('1', 'La', 'RGBa'):
        im = im.convert({'1': 'L', 'La': 'LA', 'RGBa': 'RGBA'}[mode])
    elif mode not in ('L', 'LA', 'RGB', 'RGBA', 'I', 'F') and not mode.startswith('I;16'):
        im = im.convert('RGB')
        note(f'{mode} image converted to RGB')
    if to_srgb and info.icc_profile and im.mode in ('RGB', 'RGBA') and info.icc_profile != srgb_profile():
        try:
            im = ImageCms.profileToProfile(
                im, io.BytesIO(info.icc_profile), ImageCms.createProfile('sRGB'), outputMode=im.mode
            )
            info.icc_profile = srgb_profile()
            note('pixels converted from the embedded profile to sRGB; output tagged sRGB')
        except (ImageCms.PyCMSError, OSError) as err:
            note(f'embedded ICC profile unusable ({err}); pixels kept, profile carried')
    arr = np.asarray(im)
    if im.mode in ('I', 'F') or im.mode.startswith('I;16'):
        scale = 1.0 if im.mode == 'F' else 65535.0
        return np.repeat(np.clip(arr.astype(np.float32) / scale, 0, 1)[..., None], 3, axis=2), None
    arr = arr.astype(np.float32) / 255.0
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2), None
    alpha = arr[..., -1] if arr.shape[2] in (2, 4) else None
    rgb = np.repeat(arr[..., :1], 3, axis=2) if arr.shape[2] <= 2 else arr[..., :3]
    return np.ascontiguousarray(rgb), None if alpha is None else np.ascontiguousarray(alpha)


def _open(path: str, data: np.ndarray) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data.tobytes()))
    except UnidentifiedImageError:
        raise ImageReadError(f'{path}: not a readable image (corrupt or unsupported format)') from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageReadError(f'{path}: not a readable image (corrupt or unsupported format: {err})') from None


def read_picture(path: str, frames: str = 'first', to_srgb: bool = False) -> Picture:
    """Read an image file as upright RGB float frames plus alpha and an :class:`ImageInfo`.

    Args:
        path (str): the image file.
        frames (str): 'first' (a note says how many were left out) or 'all' (every frame of an animation or page of
            a multi-page file). Default: 'first'.
        to_srgb (bool): convert the pixels from an embedded ICC profile to sRGB (8-bit colour files). Default: False.

    Returns:
        Picture: frames (H, W, 3) float32 RGB in [0, 1], alphas (H, W) in [0, 1] or None, and the file's info.

    Raises:
        InvalidOptionError: ``frames`` is neither 'first' nor 'all'.
        ImageReadError: naming the path, for missing, empty, truncated, corrupt or unsupported files.
    """
    if frames not in ('first', 'all'):
        raise InvalidOptionError(f"frames must be 'first' or 'all', got {frames!r}")
    if not osp.isfile(path):
        raise ImageReadError(f'{path}: no such file')
    if osp.getsize(path) == 0:
        raise ImageReadError(f'{path}: empty file')
    data = np.fromfile(path, dtype=np.uint8)
    im = _open(path, data)
    try:
        exif = im.getexif()
        orientation = int(exif.get(ORIENTATION_TAG, 1) or 1)
        info = ImageInfo(
            path=path,
            format=im.format or '',
            mode=im.mode,
            channels=1 if im.mode in GREY_MODES else 3,
            icc_profile=im.info.get('icc_profile') or None,
            exif=exif.tobytes() if exif else None,
            orientation=orientation if 1 <= orientation <= 8 else 1,
            n_frames=getattr(im, 'n_frames', 1),
            loop=im.info.get('loop'),
        )
        sixteen, grey = _sixteen_bit(data[:32].tobytes(), im)
        if sixteen:
            if info.icc_profile and to_srgb:
                info.notes.append('16-bit image: not converted to sRGB (8-bit colour files only); profile carried')
            info.channels, info.bit_depth = (1 if grey else 3), 16
            rgb_alphas = [_read_sixteen(data, path, grey)]
            if info.n_frames > 1:
                info.notes.append(f'warning: {info.n_frames} pages: only the first is read (16-bit multi-page file)')
        else:
            count = info.n_frames if frames == 'all' else 1
            rgb_alphas = []
            for i in range(count):
                im.seek(i)
                im.load()
                info.durations.append(int(im.info.get('duration', 0) or 0))
                rgb_alphas.append(_frame_arrays(im, info, to_srgb))
                if im.mode in ('I', 'I;16', 'I;16B', 'I;16L'):
                    info.bit_depth = 16
            if info.n_frames > count:
                info.notes.append(
                    f'warning: {info.n_frames} frames: only the first is super-resolved (--frames all for every frame)'
                )
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, TypeError, EOFError, Image.DecompressionBombError) as err:
        raise ImageReadError(f'{path}: not a readable image (truncated or corrupt: {err})') from None
    if info.mode == 'F':
        info.notes.append('float image: values clipped to [0, 1]')
    if any(a is not None for _, a in rgb_alphas):
        info.has_alpha = True
        rgb_alphas = [(rgb, np.ones(rgb.shape[:2], np.float32) if a is None else a) for rgb, a in rgb_alphas]
    if info.orientation != 1:
        info.notes.append(f'EXIF orientation {info.orientation} applied: pixels upright, output tag reset to 1')
    return Picture(
        frames=[orient(rgb, info.orientation) for rgb, _ in rgb_alphas],
        alphas=[None if a is None else orient(a, info.orientation) for _, a in rgb_alphas],
        info=info,
    )


def picture_from_array(arr: np.ndarray, name: str = '<array>') -> Picture:
    """An in-memory image as a :class:`Picture`.

    Float pixels outside [0, 1] (such as 0-255 values) or not finite are refused instead of being clipped into a white
    image.

    Args:
        arr (np.ndarray): (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA (RGB order, not OpenCV's BGR); uint8 (0-255),
            uint16 (0-65535) or float in [0, 1].
        name (str): the array's name in messages. Default: '<array>'.

    Returns:
        Picture: one frame (H, W, 3) float32 RGB in [0, 1] and its alpha (H, W) or None.

    Raises:
        InvalidInputError: another shape or dtype (a TypeError too), or float pixels outside [0, 1] or not finite (a
            ValueError too).
    """
    arr = np.asarray(arr)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 2, 3, 4)) or 0 in arr.shape:
        raise InvalidInputError(f'{name}: expected (H, W), (H, W, 3) or (H, W, 4) pixels, got {arr.shape}')
    depth = 16 if arr.dtype == np.uint16 else 8
    if arr.dtype in (np.uint8, np.uint16):
        img = arr.astype(np.float32) / (255.0 if arr.dtype == np.uint8 else 65535.0)
    elif np.issubdtype(arr.dtype, np.floating):
        low, high = float(np.min(arr)), float(np.max(arr))
        if not (np.isfinite(low) and np.isfinite(high)):
            raise InvalidInputError(f'{name}: pixels must be finite, got NaN or inf values')
        if low < -FLOAT_TOLERANCE or high > 1 + FLOAT_TOLERANCE:
            raise InvalidInputError(
                f'{name}: float pixels must lie in [0, 1], got [{low:g}, {high:g}]; divide '
                '0-255 values by 255 (or pass a uint8 array)'
            )
        img = np.clip(arr.astype(np.float32), 0, 1)
    else:
        raise InvalidInputError(
            f'{name}: unsupported pixel dtype {arr.dtype}; pass uint8 (0-255), uint16 '
            '(0-65535) or float in [0, 1], e.g. arr.astype(np.uint8) for 8-bit values'
        )
    if img.ndim == 2:
        img = img[..., None]
    grey = img.shape[2] <= 2
    alpha = img[..., -1] if img.shape[2] in (2, 4) else None
    rgb = np.repeat(img[..., :1], 3, axis=2) if grey else img[..., :3]
    info = ImageInfo(path=name, mode='array', bit_depth=depth, channels=1 if grey else 3, has_alpha=alpha is not None)
    return Picture([np.ascontiguousarray(rgb)], [alpha], info)


def read_image(path: str) -> 'tuple[np.ndarray, ImageInfo]':
    """The first frame of a file as upright RGB, and its :class:`ImageInfo`.

    Grey images are replicated to 3 channels; the alpha channel is not part of the array (see :func:`read_picture`);
    16-bit images are scaled by 1/65535.

    Args:
        path (str): the image file.

    Returns:
        tuple[np.ndarray, ImageInfo]: (H, W, 3) float32 RGB in [0, 1], and the file's info.

    Raises:
        ImageReadError: not a readable image.
    """
    pic = read_picture(path)
    return pic.frames[0], pic.info
