"""Overlapping tiled inference with linear blending ramps, under a pixel budget."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

__all__ = ['tile_starts', 'ramp_weight', 'auto_tile_size', 'tiled_apply']


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``size`` with at least ``overlap`` overlap.

    Stride tile - overlap; the last tile is aligned to the end. A size <= tile gives one tile at 0.
    """
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f'need tile >= 1 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}')
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, tile - overlap))
    return starts + [size - tile]


def ramp_weight(length: int, ramp: int, left: bool, right: bool) -> Tensor:
    """1-D blending weight (length,): linear ramp (i + 0.5) / ramp over ``ramp`` samples at the sides that
    overlap a neighbour (``left`` / ``right``), 1 elsewhere; always > 0."""
    wgt = torch.ones(length)
    ramp = min(ramp, length)
    if ramp > 0:
        up = (torch.arange(ramp, dtype=torch.float32) + 0.5) / ramp
        if left:
            wgt[:ramp] = torch.minimum(wgt[:ramp], up)
        if right:
            wgt[length - ramp:] = torch.minimum(wgt[length - ramp:], up.flip(0))
    return wgt


def auto_tile_size(max_pixels: int, multiple: int = 1) -> int:
    """Largest multiple of ``multiple`` whose square fits in ``max_pixels`` (at least ``multiple``)."""
    side = math.isqrt(max(int(max_pixels), 1))
    return max(multiple, side // multiple * multiple)


def tiled_apply(fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, scale: int, tile: int, overlap: int = 16,
                tiles_per_batch: int = 1) -> Tensor:
    """Run ``fn`` on overlapping tiles of ``x`` and blend the outputs.

    Args:
        fn: ``fn(tiles, offsets)`` maps (n, C, th, tw) LQ tiles and their (n, 2) int64 (y, x) offsets in the
            image to (n, C_out, th * scale, tw * scale).
        x: (B, C, H, W) input. tile: tile side (clipped to the image). overlap: LQ pixels shared by neighbours.
        tiles_per_batch: tiles per ``fn`` call (tiles of all images are batched together).
    Returns:
        (B, C_out, H * scale, W * scale): per-pixel weighted mean of the overlapping tile outputs,
        weights = products of linear ramps over the overlaps (no seams; non-overlapped pixels exact).
    """
    b, _, h, w = x.shape
    th, tw = min(tile, h), min(tile, w)
    ys, xs = tile_starts(h, th, min(overlap, th - 1)), tile_starts(w, tw, min(overlap, tw - 1))
    boxes = [(n, y, z) for n in range(b) for y in ys for z in xs]
    out = weight = None
    for k in range(0, len(boxes), max(1, tiles_per_batch)):
        chunk = boxes[k:k + tiles_per_batch]
        offsets = torch.tensor([(y, z) for _, y, z in chunk], dtype=torch.int64)
        res = fn(torch.stack([x[n, :, y:y + th, z:z + tw] for n, y, z in chunk]), offsets)
        if out is None:
            out = res.new_zeros(b, res.shape[1], h * scale, w * scale, dtype=torch.float32)
            weight = torch.zeros(1, 1, h * scale, w * scale, device=res.device)
        for r, (n, y, z) in zip(res, chunk):
            wy = ramp_weight(th * scale, overlap * scale, y > 0, y + th < h)
            wx = ramp_weight(tw * scale, overlap * scale, z > 0, z + tw < w)
            wgt = (wy[:, None] * wx[None, :]).to(res.device)
            sl = (slice(y * scale, (y + th) * scale), slice(z * scale, (z + tw) * scale))
            out[n, :, sl[0], sl[1]] += r.float() * wgt
            if n == 0:
                weight[0, 0, sl[0], sl[1]] += wgt
    return out / weight
