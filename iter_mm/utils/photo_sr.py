"""Super-resolving a :class:`~iter_mm.utils.image_io.Picture` frame by frame, alpha apart.

Shared by ``tools/infer.py`` and ``ITERInferencer`` so that both give the same files. The network sees RGB only
(grey replicated to three channels); the alpha channel is upscaled with bicubic interpolation (default) or, with
``alpha_mode='iter'``, by the same network on the alpha replicated to three channels (mean of the outputs).
"""

import os.path as osp
from typing import Callable, List, Optional

import cv2
import numpy as np
import torch

from ..errors import InvalidOptionError
from .image_io import Picture

ALPHA_MODES = ('bicubic', 'iter')
OUTPUT_EXTS = {'png': '.png', 'jpg': '.jpg', 'webp': '.webp'}

Restore = Callable[[torch.Tensor], torch.Tensor]  # (1, 3, h, w) in [0, 1] -> (1, 3, H, W)


def _run(restore: Restore, rgb: np.ndarray) -> np.ndarray:
    lq = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32))[None]
    with torch.no_grad():
        sr = restore(lq)
    return np.ascontiguousarray(sr[0].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())


def upscale_alpha(
    alpha: np.ndarray, size: 'tuple[int, int]', mode: str = 'bicubic', restore: Optional[Restore] = None
) -> np.ndarray:
    """Upscale an alpha channel: OpenCV's bicubic (clipped), or ``restore`` on the replicated alpha.

    Args:
        alpha (np.ndarray): (h, w) in [0, 1].
        size (tuple[int, int]): output (H, W).
        mode (str): 'bicubic' or 'iter' (``restore`` on the alpha as grey RGB, mean of the outputs). Default:
            'bicubic'.
        restore (callable, optional): (1, 3, h, w) -> (1, 3, H, W) in [0, 1]; needed by 'iter'. Default: None.

    Returns:
        np.ndarray: (H, W) float32 in [0, 1].

    Raises:
        InvalidOptionError: an unknown mode.
        ValueError: 'iter' without ``restore``, or a restored alpha of another size.
    """
    if mode not in ALPHA_MODES:
        raise InvalidOptionError(f'alpha mode must be one of {ALPHA_MODES}, got {mode!r}')
    if mode == 'iter':
        if restore is None:
            raise ValueError("alpha mode 'iter' needs the restore function")
        out = _run(restore, np.repeat(alpha[..., None], 3, axis=2)).mean(axis=2)
        if out.shape != tuple(size):
            raise ValueError(f'restored alpha is {out.shape}, expected {tuple(size)}')
        return out.astype(np.float32)
    up = cv2.resize(alpha.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(up.reshape(size), 0.0, 1.0)


def super_resolve_picture(pic: Picture, restore: Restore, alpha_mode: str = 'bicubic') -> Picture:
    """Every frame of ``pic`` through ``restore``; alpha upscaled to the output size; the info record kept.

    Args:
        pic (Picture): frames (h, w, 3) float32 RGB in [0, 1] and alphas.
        restore (callable): (1, 3, h, w) -> (1, 3, H, W) in [0, 1].
        alpha_mode (str): how alphas are upscaled (:func:`upscale_alpha`). Default: 'bicubic'.

    Returns:
        Picture: frames (H, W, 3) float32 RGB in [0, 1], alphas (H, W) or None, ``pic.info``.
    """
    frames: List[np.ndarray] = []
    alphas: List[Optional[np.ndarray]] = []
    for rgb, alpha in zip(pic.frames, pic.alphas):
        sr = _run(restore, rgb)
        frames.append(sr)
        alphas.append(None if alpha is None else upscale_alpha(alpha, sr.shape[:2], alpha_mode, restore))
    return Picture(frames, alphas, pic.info)


def output_name(path: str, ext: str = 'same') -> str:
    """The output file name of input ``path``: its name, with the extension of ``ext``.

    Args:
        path (str): the input file.
        ext (str): 'png', 'jpg', 'webp' or 'same' (the input's). Default: 'same'.

    Returns:
        str: the file name (no folder).

    Raises:
        InvalidOptionError: an unknown ``ext``.
    """
    if ext == 'same':
        return osp.basename(path)
    if ext not in OUTPUT_EXTS:
        raise InvalidOptionError(f"ext must be one of {sorted(OUTPUT_EXTS)} or 'same', got {ext!r}")
    return osp.splitext(osp.basename(path))[0] + OUTPUT_EXTS[ext]
