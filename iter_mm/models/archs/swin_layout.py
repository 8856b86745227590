"""Token layout of the Swin blocks: windows, window orders and the gathers between them.

Inside an RSTB the token stream stays in the *window order* of the block it enters (every token op but attention
is per token, and the MLP gate's image-wide mean ignores the order), so roll + partition and reverse + roll become
one gather between blocks (:func:`reorder`); the 3x3 convs read the row-major (B, L, C) stream as a channels_last
image, without a transpose (:func:`tokens_as_image`). Pure index bookkeeping: no weights, no arithmetic on values.
"""

from __future__ import annotations

import functools
from typing import Optional, Tuple

import torch
from torch import Tensor

from . import fast_ops


def window_partition(x: Tensor, window: int) -> Tensor:
    """Cut a channels-last map into non-overlapping windows (batch-major, then row-major).

    Args:
        x (Tensor): (B, H, W, C), H and W multiples of ``window``.
        window (int): window side.

    Returns:
        Tensor: (B * nW, window, window, C) with nW = (H / window) * (W / window).
    """
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window, window, c)


def window_reverse(windows: Tensor, window: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`window_partition`.

    Args:
        windows (Tensor): (B * nW, window, window, C).
        window (int): window side.
        h (int): map height H.
        w (int): map width W.

    Returns:
        Tensor: (B, H, W, C).
    """
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // window) * (w // window))
    x = windows.view(b, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, c)


Order = Optional[Tuple[int, int]]  # (window, shift) of a windowed token order; None = row-major (spatial)


def window_order(h: int, w: int, window: int, shift: int) -> Tensor:
    """Spatial index of every position of a block's windowed token sequence.

    Position ``k * N + t`` (window k in :func:`window_partition`'s order, token t row-major in the window) holds
    the token at row-major index ``order[k * N + t]`` of the grid, after the cyclic shift by ``-shift``.

    Args:
        h (int): token grid height.
        w (int): token grid width.
        window (int): window side.
        shift (int): cyclic shift (0 = regular windows).

    Returns:
        Tensor: (h * w,) int64.
    """
    idx = torch.arange(h * w).view(1, h, w, 1)
    if shift:
        idx = torch.roll(idx, shifts=(-shift, -shift), dims=(1, 2))
    return window_partition(idx, window).reshape(-1)


@functools.lru_cache(maxsize=64)
def reorder_index(h: int, w: int, src: Order, dst: Order, device: torch.device) -> Tensor:
    """``index_select`` index along the token axis taking a sequence in order ``src`` to order ``dst``.

    Cached per grid and device; read-only.

    Args:
        h (int): token grid height.
        w (int): token grid width.
        src (tuple[int, int] | None): order of the input, ``(window, shift)`` (see :func:`window_order`) or None
            (row-major).
        dst (tuple[int, int] | None): order of the output, same form.
        device (torch.device): device of the index.

    Returns:
        Tensor: (h * w,) int64.
    """
    n = h * w
    index = torch.arange(n) if dst is None else window_order(h, w, *dst)
    if src is not None:
        inverse = torch.empty(n, dtype=torch.int64)
        inverse[window_order(h, w, *src)] = torch.arange(n)
        index = inverse[index]
    return index.to(device)


def reorder(x: Tensor, h: int, w: int, src: Order, dst: Order) -> Tensor:
    """The same tokens in another order: one gather (``x`` itself if the orders are equal).

    Args:
        x (Tensor): (B, h * w, C) tokens in order ``src``.
        h (int): token grid height.
        w (int): token grid width.
        src (tuple[int, int] | None): order of ``x``: ``(window, shift)`` or None (row-major).
        dst (tuple[int, int] | None): order of the output, same form.

    Returns:
        Tensor: (B, h * w, C) in order ``dst``.
    """
    if src == dst:
        return x
    return x.index_select(1, fast_ops.retain(reorder_index(h, w, src, dst, x.device)))


def tokens_as_image(x: Tensor, h: int, w: int) -> Tensor:
    """Row-major tokens as an image: a channels_last view of a contiguous ``x``.

    Args:
        x (Tensor): (B, h * w, C) row-major tokens.
        h (int): grid height.
        w (int): grid width.

    Returns:
        Tensor: (B, C, h, w).
    """
    return x.reshape(x.shape[0], h, w, x.shape[2]).permute(0, 3, 1, 2)


def image_as_tokens(x: Tensor) -> Tensor:
    """An image as row-major tokens: a view for a channels_last ``x``, a copy otherwise.

    Args:
        x (Tensor): (B, C, h, w).

    Returns:
        Tensor: (B, h * w, C).
    """
    b, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(b, h * w, c)


def check_token_grid(h: int, w: int, window: int) -> None:
    """Raise a clear error unless the token grid (h, w) is a positive multiple of the window.

    Args:
        h (int): token grid height.
        w (int): token grid width.
        window (int): window side.

    Raises:
        ValueError: h or w is smaller than ``window`` or not a multiple of it.
    """
    if h < window or w < window or h % window or w % window:
        raise ValueError(
            f'Swin token grid {h}x{w} must be a multiple of the window size {window} in both directions '
            f'(and at least {window}x{window}); pad the input (e.g. to a multiple of {window} tokens) first.'
        )
