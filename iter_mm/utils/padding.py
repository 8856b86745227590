"""Pad images to a size grid with edge-repeating mirror padding, and crop back (reference 6.4)."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ['pad_amount', 'symmetric_index', 'pad_to_multiple', 'pad_to_size', 'crop_to']


def pad_amount(size: int, multiple: int, official: bool = False) -> int:
    """Padding that makes ``size`` a multiple of ``multiple``.

    official=False: only as much as needed, ``(-size) mod multiple``.
    official=True: the authors' rule ``(size // multiple + 1) * multiple - size``, which always pads
    (a full extra ``multiple`` when ``size`` already fits; reference 6.4, 8.18).
    """
    if size < 1 or multiple < 1:
        raise ValueError(f'size and multiple must be >= 1, got size={size}, multiple={multiple}')
    if official:
        return (size // multiple + 1) * multiple - size
    return (-size) % multiple


def symmetric_index(size: int, new_size: int, device=None) -> Tensor:
    """Source indices of a length-``new_size`` symmetric (edge-repeating) extension of ``size`` samples.

    Index j maps to j mod 2*size, reflected when >= size: 0 1 2 | 2 1 0 | 0 1 2 ... so any pad works,
    also pads longer than the image (e.g. size 1). -> (new_size,) int64.
    """
    j = torch.arange(new_size, device=device) % (2 * size)
    return torch.where(j < size, j, 2 * size - 1 - j)


def pad_to_multiple(x: Tensor, multiple: int, official: bool = False) -> tuple[Tensor, tuple[int, int]]:
    """Mirror-pad (B, C, H, W) on the bottom/right to a multiple of ``multiple``.

    Returns the padded tensor and (pad_h, pad_w).
    """
    if x.dim() != 4:
        raise ValueError(f'expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}')
    h, w = x.shape[-2:]
    ph, pw = pad_amount(h, multiple, official), pad_amount(w, multiple, official)
    return pad_to_size(x, (h + ph, w + pw)), (ph, pw)


def pad_to_size(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Mirror-pad (..., H, W) on the bottom/right to exactly ``size`` = (h, w) >= (H, W)."""
    h, w = x.shape[-2:]
    if size[0] < h or size[1] < w:
        raise ValueError(f'cannot pad {(h, w)} to the smaller size {tuple(size)}')
    if size[0] > h:
        x = x.index_select(-2, symmetric_index(h, size[0], x.device))
    if size[1] > w:
        x = x.index_select(-1, symmetric_index(w, size[1], x.device))
    return x


def crop_to(x: Tensor, h: int, w: int) -> Tensor:
    """Top-left crop of (..., H, W) to (..., h, w)."""
    if x.shape[-2] < h or x.shape[-1] < w:
        raise ValueError(f'cannot crop {tuple(x.shape[-2:])} to ({h}, {w})')
    return x[..., :h, :w]
