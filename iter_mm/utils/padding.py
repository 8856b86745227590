"""Pad images to a size grid with edge-repeating mirror padding, and crop back
(docs/faithfulness.md#padding-and-tiling).

:func:`padded_apply` is the one pad-run-crop of the package: the VQGAN's any-size reconstruction, ITER's
restoration (image, token maps and per-step intermediates) and the GT tokens of validation all use it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
from torch import Tensor

__all__ = ['pad_amount', 'symmetric_index', 'pad_to_multiple', 'pad_to_size', 'crop_to', 'padded_apply']


def pad_amount(size: int, multiple: int, official: bool = False) -> int:
    """Padding that makes ``size`` a multiple of ``multiple``.

    Args:
        size (int): length to pad, >= 1.
        multiple (int): grid, >= 1.
        official (bool): False: only as much as needed, ``(-size) mod multiple``. True: the authors' rule
            ``(size // multiple + 1) * multiple - size``, which always pads (a full extra ``multiple`` when
            ``size`` already fits; docs/faithfulness.md#padding-and-tiling). Default: False.

    Returns:
        int: the padding, in [0, multiple) or, with ``official``, in [1, multiple].

    Raises:
        ValueError: ``size`` or ``multiple`` < 1.
    """
    if size < 1 or multiple < 1:
        raise ValueError(f'size and multiple must be >= 1, got size={size}, multiple={multiple}')
    if official:
        return (size // multiple + 1) * multiple - size
    return (-size) % multiple


def symmetric_index(size: int, new_size: int, device=None) -> Tensor:
    """Source indices of a length-``new_size`` symmetric (edge-repeating) extension of ``size`` samples.

    Index j maps to j mod 2*size, reflected when >= size: 0 1 2 | 2 1 0 | 0 1 2 ... so any pad works,
    also pads longer than the image (e.g. size 1).

    Args:
        size (int): samples of the source.
        new_size (int): length of the extension.
        device (torch.device, optional): device of the index. Default: None (torch's default device).

    Returns:
        Tensor: (new_size,) int64.
    """
    j = torch.arange(new_size, device=device) % (2 * size)
    return torch.where(j < size, j, 2 * size - 1 - j)


def pad_to_multiple(x: Tensor, multiple: int, official: bool = False) -> tuple[Tensor, tuple[int, int]]:
    """Mirror-pad (B, C, H, W) on the bottom/right to a multiple of ``multiple``.

    Args:
        x (Tensor): (B, C, H, W).
        multiple (int): size grid.
        official (bool): the authors' always-pad rule (see :func:`pad_amount`). Default: False.

    Returns:
        tuple[Tensor, tuple[int, int]]: the padded (B, C, H + pad_h, W + pad_w) tensor and (pad_h, pad_w).

    Raises:
        ValueError: ``x`` is not 4-D.
    """
    if x.dim() != 4:
        raise ValueError(f'expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}')
    h, w = x.shape[-2:]
    ph, pw = pad_amount(h, multiple, official), pad_amount(w, multiple, official)
    return pad_to_size(x, (h + ph, w + pw)), (ph, pw)


def pad_to_size(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Mirror-pad (..., H, W) on the bottom/right to exactly ``size``.

    Args:
        x (Tensor): (..., H, W).
        size (tuple[int, int]): target (h, w) >= (H, W).

    Returns:
        Tensor: (..., h, w).

    Raises:
        ValueError: ``size`` is smaller than (H, W) in either direction.
    """
    h, w = x.shape[-2:]
    if size[0] < h or size[1] < w:
        raise ValueError(f'cannot pad {(h, w)} to the smaller size {tuple(size)}')
    if size[0] > h:
        x = x.index_select(-2, symmetric_index(h, size[0], x.device))
    if size[1] > w:
        x = x.index_select(-1, symmetric_index(w, size[1], x.device))
    return x


def crop_to(x: Tensor, h: int, w: int) -> Tensor:
    """Top-left crop.

    Args:
        x (Tensor): (..., H, W).
        h (int): rows kept, <= H.
        w (int): columns kept, <= W.

    Returns:
        Tensor: (..., h, w), a view.

    Raises:
        ValueError: (h, w) exceeds (H, W).
    """
    if x.shape[-2] < h or x.shape[-1] < w:
        raise ValueError(f'cannot crop {tuple(x.shape[-2:])} to ({h}, {w})')
    return x[..., :h, :w]


def _crop_like(out: Any, h: int, w: int, ph: int, pw: int) -> Any:
    if isinstance(out, Tensor):
        if out.dim() < 3:  # per-image values (B,) or scalars
            return out
        oh, ow = out.shape[-2:]
        return crop_to(out, -(-h * oh // ph), -(-w * ow // pw))
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return dataclasses.replace(
            out, **{f.name: _crop_like(getattr(out, f.name), h, w, ph, pw) for f in dataclasses.fields(out) if f.init}
        )
    if isinstance(out, (tuple, list)):
        return type(out)(_crop_like(o, h, w, ph, pw) for o in out)
    return out


def padded_apply(fn: Callable[[Tensor], Any], x: Tensor, multiple: int, official: bool = False) -> Any:
    """Mirror-pad (B, C, H, W) to a multiple of ``multiple`` (minimal, or the authors' rule with ``official``),
    run ``fn`` on it, and crop every output map back to the input's region.

    Outputs may be a tensor, a tuple / list or a dataclass of tensors (None and non-tensors pass through); each
    tensor with at least 3 dims is cropped top-left to ``ceil(H * H_out / H_padded)`` x ``ceil(W * W_out /
    W_padded)``, so an image at scale s keeps ``H * s`` rows and a token map at 1/8 keeps ``ceil(H / 8)``.

    Args:
        fn (Callable[[Tensor], Any]): the function of the padded (B, C, H_padded, W_padded) input.
        x (Tensor): (B, C, H, W) input.
        multiple (int): size grid of ``fn``'s input.
        official (bool): the authors' always-pad rule (see :func:`pad_amount`). Default: False.

    Returns:
        Any: ``fn``'s output with every map cropped back.
    """
    h, w = x.shape[-2:]
    padded, _ = pad_to_multiple(x, multiple, official)
    return _crop_like(fn(padded), h, w, *padded.shape[-2:])
