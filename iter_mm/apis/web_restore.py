"""One restoration of the web demo: an uploaded image file -> the result file, as ``tools/infer.py`` writes it.

The file is read by :func:`~iter_mm.utils.image_io.read_picture` (EXIF orientation, alpha, grey, 16 bit),
super-resolved by :func:`~iter_mm.utils.photo_sr.super_resolve_picture` and written by
:func:`~iter_mm.utils.image_write.write_picture`, as in ``tools/infer.py``: same options, same bytes. The first
frame's restoration also keeps its refinement (per-step images and keep-masks, phi_e's confidence) when the
image is small enough to be restored whole (:data:`STRIP_MAX_PIXELS`). No Gradio here: see
:mod:`iter_mm.apis.web_demo`.
"""

from __future__ import annotations

import os.path as osp
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np
import torch
from PIL import Image

from ..errors import InvalidInputError
from ..models.sampling import RefineResult
from ..utils.image_io import Picture, read_picture
from ..utils.image_write import write_picture
from ..utils.photo_sr import output_name, super_resolve_picture

__all__ = [
    'MAX_INPUT_PIXELS',
    'STRIP_MAX_PIXELS',
    'WebSettings',
    'WebResult',
    'read_upload',
    'restore_upload',
    'display_array',
]

#: input pixels the demo accepts by default (1024 x 1024: a x4 result of 16 megapixels); larger uploads are refused
MAX_INPUT_PIXELS = 1024 * 1024
#: input pixels up to which the refinement strip is computed (one extra VQGAN decode per step, kept in memory)
STRIP_MAX_PIXELS = 320 * 320

Progress = Callable[[float, str], None]  # (fraction done in [0, 1], what is running)


@dataclass(frozen=True)
class WebSettings:
    """What the server fixes for every upload (``tools/infer.py``'s file options, and the demo's size limit).

    Args:
        ext (str): output format, 'png' | 'jpg' | 'webp' | 'same' (the input's). Default: 'same'.
        quality (int, optional): JPEG/WebP quality 1-100. Default: None (95).
        alpha_upscale (str): 'bicubic' | 'iter', how the alpha channel is upscaled. Default: 'bicubic'.
        frames (str): 'first' | 'all' frames of animations. Default: 'first'.
        to_srgb (bool): convert from an embedded ICC profile to sRGB on read. Default: False.
        max_input_pixels (int): larger uploads are refused. Default: :data:`MAX_INPUT_PIXELS`.
    """

    ext: str = 'same'
    quality: Optional[int] = None
    alpha_upscale: str = 'bicubic'
    frames: str = 'first'
    to_srgb: bool = False
    max_input_pixels: int = MAX_INPUT_PIXELS


@dataclass
class WebResult:
    """A finished restoration: the written file, 8-bit views of input and result, the refinement (or None)."""

    path: str
    lq_view: np.ndarray
    sr_view: np.ndarray
    refinement: Optional[RefineResult]
    notes: List[str] = field(default_factory=list)
    seconds: float = 0.0


def display_array(arr: np.ndarray) -> np.ndarray:
    """An image array as 8-bit RGB(A) for the page: float in [0, 1], uint8 or uint16; grey replicated.

    Args:
        arr (np.ndarray): (H, W) or (H, W, C) with C in 1-4.

    Returns:
        np.ndarray: (H, W, 3|4) uint8, contiguous.
    """
    arr = np.asarray(arr)
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.float32) / 65535.0 * 255.0).round().astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255.0).round().astype(np.uint8)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[2] in (1, 2):  # grey (+ alpha)
        arr = np.concatenate([np.repeat(arr[..., :1], 3, axis=2), arr[..., 1:]], axis=2)
    return np.ascontiguousarray(arr)


def _frame_view(pic: Picture) -> np.ndarray:
    rgb, alpha = pic.frames[0], pic.alpha
    return display_array(rgb if alpha is None else np.concatenate([rgb, alpha[..., None]], axis=2))


def read_upload(path: str, name: str, settings: WebSettings) -> Picture:
    """Read an uploaded file, refusing images of more than ``settings.max_input_pixels`` pixels before decoding them.

    Args:
        path (str): the uploaded file on the server.
        name (str): its name on the user's machine, used in messages.
        settings (WebSettings): limits and reading options (``frames``, ``to_srgb``).

    Returns:
        Picture: the read image.

    Raises:
        InvalidInputError: unreadable, corrupt or unsupported file, or too large.
    """
    try:
        with Image.open(path) as im:  # the header only
            w, h = im.size
    except Exception:  # noqa: BLE001 - read_picture below says what is wrong with the file
        w = h = 0
    if w * h > settings.max_input_pixels:
        side = int(settings.max_input_pixels**0.5)
        raise InvalidInputError(
            f'{name}: {w}x{h} pixels is larger than this demo accepts ({settings.max_input_pixels}'
            f' pixels, e.g. {side}x{side}); use tools/infer.py for large images, which tiles them'
        )
    try:
        return read_picture(path, frames=settings.frames, to_srgb=settings.to_srgb)
    except ValueError as err:  # ImageReadError: the message names the server's temporary copy
        raise InvalidInputError(str(err).replace(path, name)) from None


def restore_upload(
    model, path: str, name: str, out_dir: str, options: dict, settings: WebSettings, progress: Optional[Progress] = None
) -> WebResult:
    """Super-resolve the uploaded file ``path`` into ``out_dir`` under ``tools/infer.py``'s output name of ``name``.

    Args:
        model (ITERModel): the model (``restore`` with the config's ``test_cfg``), on its device.
        path (str): the uploaded file.
        name (str): its original file name.
        out_dir (str): where the result file is written (created if missing).
        options (dict): ``RestoreOptions`` fields for ``model.restore`` (the page's and the command line's).
        settings (WebSettings): output format and limits.
        progress (callable, optional): ``progress(fraction, text)`` after every refinement step of every tile.
            Default: None.

    Returns:
        WebResult: the file written and what the page shows.
    """
    t0 = time.perf_counter()
    pic = read_upload(path, name, settings)
    steps = model.options(**options).steps  # the options' own rules (InvalidOptionError / ValueError) first
    device = next(model.parameters()).device
    h, w = pic.frames[0].shape[:2]
    kept: List[RefineResult] = []
    calls = [0]
    per_frame = len(pic.frames) * (2 if pic.info.has_alpha and settings.alpha_upscale == 'iter' else 1)

    def tell(done: int, total: int) -> None:  # total: network calls (tiles) x steps
        if progress is not None:
            part, call, calls_in_all = calls[0] - 1, (done - 1) // steps + 1, total // steps
            progress(
                (part + done / total) / per_frame,
                f'refinement step {(done - 1) % steps + 1} of {steps}'
                + (f', tile {call} of {calls_in_all}' if calls_in_all > 1 else '')
                + (f' (image {part + 1} of {per_frame})' if per_frame > 1 else ''),
            )

    def restore(lq: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        strip = not kept and h * w <= STRIP_MAX_PIXELS
        with torch.no_grad():
            try:
                res = model.restore(
                    lq.to(device), return_result=True, return_intermediates=strip, progress=tell, **options
                )
            except ValueError:  # intermediates are kept for whole images only: this one is tiled
                if not strip:
                    raise
                strip = False
                res = model.restore(lq.to(device), return_result=True, progress=tell, **options)
        if strip:
            kept.append(res)
        return res.image.float()

    sr = super_resolve_picture(pic, restore, settings.alpha_upscale)
    out_path = osp.join(out_dir, output_name(name, settings.ext))
    written, notes = write_picture(out_path, sr, settings.quality)
    refinement = kept[0] if kept and kept[0].step_images is not None else None
    return WebResult(
        out_path,
        _frame_view(pic),
        display_array(written),
        refinement,
        list(pic.info.notes) + notes,
        time.perf_counter() - t0,
    )
