"""What the web demo shows of a restoration: the refinement strip and the before/after comparison, as HTML.

The strip follows ITER's adaptive refinement (paper Sec. 3.3, Fig. 7): phi_e's confidence P(good) of the LQ tokens
S_l at the start, the tokens kept there (P(good) >= alpha), the first step whose keep count reaches them, and for
every executed step the decoded tokens and the keep-mask (white: kept from the previous step, black: re-sampled).
Pure NumPy/OpenCV; no Gradio.
"""

from __future__ import annotations

import base64
import html
from typing import List, Optional

import cv2
import numpy as np
import torch

from ..models.sampling import RefineResult

__all__ = ['THUMB_SIDE', 'png_data_url', 'confidence_map', 'step_count', 'strip_html', 'compare_html']

#: longest side of the strip's pictures, in screen pixels
THUMB_SIDE = 192


def png_data_url(rgb: np.ndarray) -> str:
    """An RGB image as a ``data:image/png`` URL.

    Args:
        rgb (np.ndarray): (H, W, 3) uint8 RGB.

    Returns:
        str: the base64 ``data:`` URL.
    """
    ok, buf = cv2.imencode('.png', np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise ValueError('PNG encoding failed')
    return 'data:image/png;base64,' + base64.b64encode(buf.tobytes()).decode('ascii')


def _thumb_size(h: int, w: int) -> tuple[int, int]:
    f = THUMB_SIDE / max(h, w)
    return max(1, round(h * f)), max(1, round(w * f))


def _image(t: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (h, w, 3) uint8 at ``size``."""
    arr = (t.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    return cv2.resize(arr, size[::-1], interpolation=cv2.INTER_AREA)


def _grid(t: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(h, w) map on the token grid -> (H, W) float32 at ``size``, each token a block (nearest)."""
    return cv2.resize(t.detach().float().cpu().numpy(), size[::-1], interpolation=cv2.INTER_NEAREST)


def confidence_map(good_prob: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """phi_e's P(good) as an RGB picture (viridis: dark = low, yellow = high).

    Args:
        good_prob (torch.Tensor): (h, w) in [0, 1] on the token grid.
        size (tuple[int, int]): output (H, W); each token becomes a block (nearest).

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB.
    """
    grey = (np.clip(_grid(good_prob, size), 0, 1) * 255).round().astype(np.uint8)
    return cv2.applyColorMap(grey, cv2.COLORMAP_VIRIDIS)[..., ::-1].copy()


def _mask(keep: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    m = (_grid(keep, size) > 0.5).astype(np.uint8) * 255
    return np.repeat(m[..., None], 3, axis=2)


def step_count(res: RefineResult, index: int = 0) -> tuple[int, int]:
    """First executed step and number of steps of image ``index``: T - first steps ran.

    Args:
        res (RefineResult): a result with intermediates.
        index (int): the image in the batch. Default: 0.

    Returns:
        tuple[int, int]: (first executed step, steps T).
    """
    return int(res.start_step[index]), int(res.step_keep.shape[1])


def _figure(cls: str, caption: str, *pictures: np.ndarray, step: Optional[int] = None) -> str:
    data = f' data-step="{step}"' if step is not None else ''
    imgs = ''.join(f'<img src="{png_data_url(p)}" width="{p.shape[1]}" height="{p.shape[0]}" alt="">' for p in pictures)
    return f'<figure class="{cls}"{data}><div class="iter-pics">{imgs}</div><figcaption>{caption}</figcaption></figure>'


def strip_html(res: Optional[RefineResult], alpha: float, note: str = '') -> str:
    """The refinement of the first image of ``res`` as HTML: one ``figure.iter-step`` per executed step.

    Args:
        res (RefineResult, optional): a result with intermediates; None shows ``note`` instead (e.g. the image was
            tiled).
        alpha (float): the phi_e threshold the result was restored with.
        note (str): text shown when ``res`` is None. Default: ''.

    Returns:
        str: a ``div.iter-strip`` with a summary and the pictures as PNG data URLs.
    """
    if res is None:
        return f'<div class="iter-strip"><p class="iter-note">{html.escape(note)}</p></div>'
    first, steps = step_count(res)
    prob = res.good_prob[0]
    n = prob.numel()
    kept = int((prob >= alpha).sum())
    size = _thumb_size(*res.step_images.shape[-2:])
    ran = steps - first
    head = (
        f'<p class="iter-summary">alpha {alpha:.2f}: phi_e keeps {kept} of {n} tokens ({100 * kept / n:.0f}%) '
        f'of the LQ image; refinement starts at step {first + 1} of {steps}, so '
        f'<b class="iter-ran">{ran} step{"s" if ran != 1 else ""} ran</b>'
        + (' (every token was kept: the result is the decoded LQ tokens)' if ran == 0 else '')
        + '.</p>'
    )
    figures: List[str] = [
        _figure(
            'iter-start',
            f"phi_e's confidence P(good) at the start | kept (white) at alpha {alpha:.2f}",
            confidence_map(prob, size),
            _mask(prob >= alpha, size),
        )
    ]
    for i in range(first, steps):
        keep = res.step_keep[0, i]
        k = int((keep > 0.5).sum())
        figures.append(
            _figure(
                'iter-step',
                f'step {i + 1}/{steps}: decoded tokens | keep-mask ({k} kept, {n - k} re-sampled)',
                _image(res.step_images[0, i], size),
                _mask(keep, size),
                step=i + 1,
            )
        )
    return f'<div class="iter-strip">{head}<div class="iter-figures">{"".join(figures)}</div></div>'


def compare_html(before_url: str, after_url: str, width: int, height: int) -> str:
    """A before/after slider at full resolution.

    The input (scaled without smoothing) lies under the result, both ``width`` x ``height`` screen pixels in a
    scrolling box; the range input moves the border between them.

    Args:
        before_url (str): URL of the input picture.
        after_url (str): URL of the result.
        width (int): displayed width in screen pixels.
        height (int): displayed height in screen pixels.

    Returns:
        str: a ``div.iter-compare``.
    """
    size = f'width:{width}px;height:{height}px'
    move = (
        "this.parentNode.querySelector('.iter-after').style.clipPath='inset(0 0 0 '+this.value+'%)';"
        "this.parentNode.querySelector('.iter-line').style.left=this.value+'%'"
    )
    return (
        f'<div class="iter-compare"><input type="range" class="iter-split" min="0" max="100" value="50" '
        f'step="0.5" oninput="{html.escape(move)}" aria-label="before / after border">'
        f'<div class="iter-view"><div class="iter-layers" style="{size}">'
        f'<img class="iter-before" src="{html.escape(before_url)}" style="{size}" alt="input">'
        f'<img class="iter-after" src="{html.escape(after_url)}" style="{size};clip-path:inset(0 0 0 50%)" '
        f'alt="result"><div class="iter-line" style="left:50%"></div></div></div>'
        '<p class="iter-note">left: input (each pixel enlarged), right: result, 1:1; drag the slider to move '
        'the border, scroll to pan</p></div>'
    )
