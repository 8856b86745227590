"""Writing super-resolved pictures like their inputs: grey, 16 bit, alpha, ICC profile, EXIF, frames.

What a format cannot hold (alpha in JPEG, 16 bit in WebP, EXIF in BMP, frames in JPEG, ...) is left out with a
note that :func:`write_picture` returns. Files are written to a temporary name and renamed, so an interrupted
run leaves no partial file.
"""

import os
import os.path as osp
import struct
import zlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from ..errors import InvalidInputError, InvalidOptionError
from .picture import ORIENTATION_TAG, ImageInfo, Picture

DEFAULT_QUALITY = 95
EXIF_IFD, PIXEL_X, PIXEL_Y = 0x8769, 0xA002, 0xA003
# TIFF tags describing the pixel layout of the source file (meaningless once the pixels change), plus the ICC
# profile, XMP, IPTC and Photoshop blocks that TIFF keeps among its tags.
TIFF_LAYOUT_TAGS = (
    254,
    255,
    256,
    257,
    258,
    259,
    262,
    266,
    273,
    277,
    278,
    279,
    280,
    281,
    284,
    317,
    320,
    322,
    323,
    324,
    325,
    338,
    339,
    340,
    341,
    530,
    531,
    532,
    700,
    33723,
    34377,
    34675,
)


@dataclass(frozen=True)
class FormatCaps:
    """What an output format can hold.

    Args:
        alpha (bool): transparency.
        icc (bool): an ICC profile.
        exif (bool): EXIF metadata.
        sixteen (bool): 16 bits per channel.
        frames (bool): several frames.
        grey (bool): a grey mode. Default: True.
    """

    alpha: bool
    icc: bool
    exif: bool
    sixteen: bool
    frames: bool
    grey: bool = True


CAPS: Dict[str, FormatCaps] = {
    'PNG': FormatCaps(alpha=True, icc=True, exif=True, sixteen=True, frames=True),
    'JPEG': FormatCaps(alpha=False, icc=True, exif=True, sixteen=False, frames=False),
    'WEBP': FormatCaps(alpha=True, icc=True, exif=True, sixteen=False, frames=True, grey=False),
    'TIFF': FormatCaps(alpha=True, icc=True, exif=True, sixteen=True, frames=True),
    'GIF': FormatCaps(alpha=True, icc=False, exif=False, sixteen=False, frames=True),
    'BMP': FormatCaps(alpha=False, icc=False, exif=False, sixteen=False, frames=False),
    'PPM': FormatCaps(alpha=False, icc=False, exif=False, sixteen=False, frames=False),
}


def format_of(path: str) -> str:
    """Pillow's format name for the extension of ``path``.

    Args:
        path (str): output file name.

    Returns:
        str: a key of :data:`CAPS` ('PNG', 'JPEG', 'WEBP', 'TIFF', 'GIF', 'BMP' or 'PPM').

    Raises:
        InvalidOptionError: an extension of no writable format.
    """
    ext = osp.splitext(path)[1].lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt not in CAPS:
        raise InvalidOptionError(
            f'{path}: cannot write images with extension {ext!r} (use one of .png .jpg .webp .tif .gif .bmp .ppm)'
        )
    return fmt


def exif_for_output(exif: Optional[bytes], width: int, height: int) -> Optional[bytes]:
    """The input's EXIF for an output of ``width`` x ``height`` upright pixels: orientation 1, pixel size
    updated, the source's TIFF layout tags and thumbnail dropped.

    Args:
        exif (bytes, optional): the input's EXIF block.
        width (int): output width.
        height (int): output height.

    Returns:
        bytes | None: the new block; None without input EXIF, when it cannot be parsed or nothing else is left.
    """
    if not exif:
        return None
    ex = Image.Exif()
    try:
        ex.load(exif)
    except (OSError, SyntaxError, ValueError, struct.error):
        return None
    for tag in TIFF_LAYOUT_TAGS:
        if tag in ex:
            del ex[tag]
    ifd = ex.get_ifd(EXIF_IFD)
    if not [t for t in ex if t != ORIENTATION_TAG] and not [t for t in ifd if t not in (PIXEL_X, PIXEL_Y)]:
        return None
    ex[ORIENTATION_TAG] = 1
    ifd[PIXEL_X], ifd[PIXEL_Y] = width, height
    return ex.tobytes()


def output_arrays(pic: Picture, bit_depth: Optional[int] = None, keep_alpha: bool = True) -> List[np.ndarray]:
    """The frames as they are written. Grey outputs are the mean of the three super-resolved channels.

    Args:
        pic (Picture): the frames and their input's info.
        bit_depth (int, optional): 8 or 16. Default: None (the input's).
        keep_alpha (bool): append the alpha channels. Default: True.

    Returns:
        list[np.ndarray]: uint8/uint16 (H, W) grey or (H, W, 2|3|4) with alpha last, RGB order, one per frame.
    """
    depth = bit_depth or pic.info.bit_depth
    maxval, dtype = (65535.0, np.uint16) if depth == 16 else (255.0, np.uint8)
    out = []
    for rgb, alpha in zip(pic.frames, pic.alphas):
        colour = rgb.mean(axis=2, keepdims=True) if pic.info.grey else rgb
        if keep_alpha and alpha is not None:
            colour = np.concatenate([colour, alpha[..., None]], axis=2)
        arr = np.round(np.clip(colour, 0.0, 1.0) * maxval).astype(dtype)
        out.append(arr[..., 0] if arr.shape[2] == 1 else arr)
    return out


def png_bytes(arr: np.ndarray, icc: Optional[bytes] = None, exif: Optional[bytes] = None) -> bytes:
    """Encode an 8/16-bit array as PNG with optional iCCP and eXIf chunks (all rows 'Sub' filtered). Used for
    16-bit outputs, which Pillow cannot write in colour or with alpha.

    Args:
        arr (np.ndarray): uint8 or uint16 (H, W) or (H, W, 2|3|4).
        icc (bytes, optional): ICC profile. Default: None.
        exif (bytes, optional): EXIF block (a leading ``Exif`` header is dropped). Default: None.

    Returns:
        bytes: the PNG file.
    """
    h, w = arr.shape[:2]
    c = 1 if arr.ndim == 2 else arr.shape[2]
    depth = 16 if arr.dtype == np.uint16 else 8
    raw = np.ascontiguousarray(arr.astype('>u2' if depth == 16 else np.uint8)).reshape(h, -1).view(np.uint8)
    bpp = c * depth // 8
    rows = raw.copy()
    rows[:, bpp:] = raw[:, bpp:] - raw[:, :-bpp]  # filter 1 ('Sub'), modulo 256
    data = np.concatenate([np.ones((h, 1), np.uint8), rows], axis=1).tobytes()
    chunks = [(b'IHDR', struct.pack('>IIBBBBB', w, h, depth, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, 0))]
    if icc:
        chunks.append((b'iCCP', b'ICC Profile\x00\x00' + zlib.compress(icc)))
    if exif:
        chunks.append((b'eXIf', exif[6:] if exif.startswith(b'Exif\x00\x00') else exif))
    chunks += [(b'IDAT', zlib.compress(data, 6)), (b'IEND', b'')]
    return b'\x89PNG\r\n\x1a\n' + b''.join(
        struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d)) for t, d in chunks
    )


def _save_tiff16(path: str, arr: np.ndarray, alpha: bool, icc: Optional[bytes]) -> None:
    import tifffile

    tifffile.imwrite(
        path,
        arr,
        photometric='rgb' if arr.ndim == 3 and arr.shape[2] >= 3 else 'minisblack',
        planarconfig='contig' if arr.ndim == 3 else None,
        extrasamples=('unassalpha',) if alpha else None,
        extratags=[(34675, 7, len(icc), icc, True)] if icc else None,
    )


def _save_pillow(
    path: str,
    fmt: str,
    arrays: List[np.ndarray],
    info: ImageInfo,
    icc: Optional[bytes],
    exif: Optional[bytes],
    quality: Optional[int],
) -> None:
    images = [Image.fromarray(a) for a in arrays]
    if fmt == 'GIF' and images[0].mode == 'LA':
        images = [im.convert('RGBA') for im in images]
    kwargs = {}
    if icc:
        kwargs['icc_profile'] = icc
    if exif:
        kwargs['exif'] = exif
    q = DEFAULT_QUALITY if quality is None else quality
    if fmt == 'JPEG':
        kwargs.update(quality=q, subsampling=0 if q >= 90 else 2)
    elif fmt == 'WEBP':
        kwargs.update(lossless=True) if q >= 100 else kwargs.update(quality=q)
    if len(images) > 1:
        kwargs.update(save_all=True, append_images=images[1:], loop=0 if info.loop is None else info.loop)
        if any(info.durations):
            kwargs['duration'] = list(info.durations[: len(images)])
    images[0].save(path, format=fmt, **kwargs)


def write_picture(path: str, pic: Picture, quality: Optional[int] = None) -> Tuple[np.ndarray, List[str]]:
    """Write ``pic`` (super-resolved frames plus its input's :class:`ImageInfo`) in the format of ``path``'s
    extension, through a temporary file renamed at the end (missing folders are created).

    Args:
        path (str): output file; its extension picks the format.
        pic (Picture): the frames and their input's info.
        quality (int, optional): JPEG/WebP quality 1-100 (WebP at 100 is lossless). Default: None (95).

    Returns:
        tuple[np.ndarray, list[str]]: the first frame as written (see :func:`output_arrays`) and notes on what
        the format could not hold.

    Raises:
        InvalidOptionError: an extension of no writable format.
        InvalidInputError: the file cannot be written.
    """
    fmt = format_of(path)
    caps, info, notes = CAPS[fmt], pic.info, []
    if len(pic.frames) > 1 and not caps.frames:
        notes.append(
            f'warning: {fmt} holds one frame: only the first of {len(pic.frames)} written (write .png or .webp for all)'
        )
        pic = Picture(pic.frames[:1], pic.alphas[:1], info)
    depth = 16 if info.bit_depth == 16 and caps.sixteen else 8
    if info.bit_depth == 16 and depth == 8:
        notes.append(f'{fmt} holds 8 bits per channel: written as 8-bit (write .png or .tif for 16-bit)')
    keep_alpha = info.has_alpha and caps.alpha
    if info.has_alpha and not caps.alpha:
        notes.append(f'warning: alpha dropped: {fmt} cannot hold transparency (write .png or .webp)')
    elif info.has_alpha and fmt == 'GIF':
        notes.append('warning: GIF keeps 1-bit transparency and 256 colours')
    if info.grey and not caps.grey:
        notes.append(f'{fmt} has no grey mode: grey output written as RGB')
    arrays = output_arrays(pic, depth, keep_alpha)
    h, w = arrays[0].shape[:2]
    exif = exif_for_output(info.exif, w, h)
    if info.icc_profile and not caps.icc:
        notes.append(f'warning: ICC profile not carried: {fmt} cannot hold one (write .png, .jpg or .webp)')
    if exif and not caps.exif:
        notes.append(f'EXIF metadata not carried: {fmt} cannot hold it')
    if exif and depth == 16 and fmt == 'TIFF':
        notes.append('EXIF metadata not carried into 16-bit TIFF (write .png)')
    icc = info.icc_profile if caps.icc else None
    exif = exif if caps.exif else None
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = osp.join(osp.dirname(osp.abspath(path)), f'.{osp.basename(path)}.part{os.getpid()}')
    try:
        if depth == 16 and fmt == 'PNG':
            with open(tmp, 'wb') as fh:
                fh.write(png_bytes(arrays[0], icc, exif))
        elif depth == 16:
            _save_tiff16(tmp, arrays[0], keep_alpha, icc)
        else:
            _save_pillow(tmp, fmt, arrays, info, icc, exif, quality)
        os.replace(tmp, path)
    except (OSError, ValueError, TypeError, KeyError) as err:
        if osp.exists(tmp):
            os.remove(tmp)
        raise InvalidInputError(f'cannot write {path} as {fmt}: {err}') from err
    return arrays[0], notes


def write_image(path: str, rgb: np.ndarray, bit_depth: int = 8, quality: Optional[int] = None) -> List[str]:
    """Write one RGB image without metadata (16 bit only for PNG/TIFF).

    Args:
        path (str): output file; its extension picks the format.
        rgb (np.ndarray): float (H, W, 3) in [0, 1].
        bit_depth (int): 8 or 16. Default: 8.
        quality (int, optional): JPEG/WebP quality 1-100. Default: None (95).

    Returns:
        list[str]: notes on what the format could not hold.
    """
    info = ImageInfo(path=path, bit_depth=bit_depth)
    return write_picture(path, Picture([np.asarray(rgb, np.float32)], [None], info), quality)[1]
