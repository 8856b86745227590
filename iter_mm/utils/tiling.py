"""Overlapping tiled inference with linear blending ramps, under a pixel budget.

Memory rule of CPU restoration (:func:`cpu_max_pixels`): when the pixel budget ``max_pixels`` is left at its
default and no tile is given, it is lowered so that the estimated peak host memory of one network call, plus the
whole-image buffers, stays within :data:`MEMORY_SHARE` of the machine's RAM (:func:`host_memory_bytes`). The
estimate is linear in the LQ pixels of a call (:data:`CALL_BYTES_PER_HR_PIXEL`, measured with
``tools/measure_memory.py``). A given ``tile`` or ``max_pixels`` is always used as given; CUDA is not affected.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Callable, Optional

import torch
from torch import Tensor

from ..errors import InvalidOptionError

__all__ = [
    'tile_starts',
    'ramp_weight',
    'auto_tile_size',
    'grid_tiles',
    'planned_tiles',
    'tile_grid',
    'tiled_apply',
    'CALL_BYTES_PER_HR_PIXEL',
    'IMAGE_BYTES_PER_HR_PIXEL',
    'MEMORY_SHARE',
    'MIN_MEMORY_TILE',
    'MemoryTilingNote',
    'host_memory_bytes',
    'model_width_factor',
    'call_bytes_per_lq_pixel',
    'memory_max_pixels',
    'cpu_max_pixels',
]

#: Peak host memory of one fp32 CPU network call (E_l, phi_e, phi_r and the VQGAN decoder; the peak is reached in
#: the decoder's last upsampling and full-resolution blocks) per output pixel, for the paper-scale model (decoder
#: width nf = 128). Measured with tools/measure_memory.py (x4, random weights, RSS peak above the RSS after the
#: model build): 62-69 KiB per LQ pixel from 128x128 to 256x256 with 1 step, 72 KiB at 128x128 with 8 steps,
#: less under bf16 autocast. 5 KiB per output pixel (80 KiB per LQ pixel at x4) is used, for fp32 and bf16, and
#: per output pixel also at x2 (every network there runs at output resolution / 8 or finer, as at x4).
CALL_BYTES_PER_HR_PIXEL = 5120
#: Whole-image buffers per output pixel outside the calls: the blended tile sum and its weights, the division,
#: crop, clamp and the numpy copy of the caller (about five fp32 RGB images of the output size).
IMAGE_BYTES_PER_HR_PIXEL = 64
#: Share of the host memory the estimate may use (the rest: the model, libraries, other programs, misestimate).
MEMORY_SHARE = 0.5
#: Smallest LQ tile side the memory rule goes down to (smaller tiles waste most of their work on the overlap).
MIN_MEMORY_TILE = 128


class MemoryTilingNote(UserWarning):
    """Issued once per distinct choice when the CPU memory rule tiles finer than the default ``max_pixels``."""


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``size`` with at least ``overlap`` overlap.

    Stride tile - overlap; the last tile is aligned to the end. A size <= tile gives one tile at 0.

    Args:
        size (int): length to cover.
        tile (int): tile length, >= 1.
        overlap (int): minimum overlap of neighbours, in [0, tile).

    Returns:
        list[int]: increasing start offsets.

    Raises:
        InvalidOptionError: ``tile`` < 1 or ``overlap`` outside [0, tile).
    """
    if tile < 1 or not 0 <= overlap < tile:
        raise InvalidOptionError(f'need tile >= 1 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}')
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, tile - overlap))
    return starts + [size - tile]


def ramp_weight(length: int, ramp: int, left: bool, right: bool) -> Tensor:
    """1-D blending weight: linear ramp (i + 0.5) / ramp over ``ramp`` samples at the sides that overlap a
    neighbour, 1 elsewhere; always > 0.

    Args:
        length (int): samples of the tile.
        ramp (int): ramp length (clipped to ``length``).
        left (bool): the start overlaps a neighbour.
        right (bool): the end overlaps a neighbour.

    Returns:
        Tensor: (length,) float32.
    """
    wgt = torch.ones(length)
    ramp = min(ramp, length)
    if ramp > 0:
        up = (torch.arange(ramp, dtype=torch.float32) + 0.5) / ramp
        if left:
            wgt[:ramp] = torch.minimum(wgt[:ramp], up)
        if right:
            wgt[length - ramp :] = torch.minimum(wgt[length - ramp :], up.flip(0))
    return wgt


def auto_tile_size(max_pixels: int, multiple: int = 1) -> int:
    """Largest multiple of ``multiple`` whose square fits in ``max_pixels`` (at least ``multiple``).

    Args:
        max_pixels (int): pixel budget of a tile.
        multiple (int): grid of the side. Default: 1.

    Returns:
        int: the tile side.
    """
    side = math.isqrt(max(int(max_pixels), 1))
    return max(multiple, side // multiple * multiple)


def grid_tiles(tile: int, overlap: int, multiple: int) -> 'tuple[int, int]':
    """Tile side and overlap on the network's grid of ``multiple`` LQ pixels, so that no tile needs padding.

    The tile is rounded down to the grid (at least one cell); the overlap is rounded up to the grid (at least
    ``overlap``) and capped at tile - multiple, so that tiles advance by at least one cell.
    """
    tile = max(multiple, tile // multiple * multiple)
    return tile, min(-(-overlap // multiple) * multiple, tile - multiple)


def planned_tiles(
    tile: Optional[int], overlap: int, max_pixels: Optional[int], multiple: int
) -> Optional['tuple[int, int]']:
    """The (tile, overlap) that restoration uses for images larger than one tile: the given ``tile``, else the
    largest that fits ``max_pixels`` (:func:`auto_tile_size`), on the grid (:func:`grid_tiles`); None when
    neither is given (no tiling)."""
    if tile is None and max_pixels is None:
        return None
    return grid_tiles(tile if tile is not None else auto_tile_size(max_pixels, multiple), overlap, multiple)


def tile_grid(h: int, w: int, tile: int, overlap: int) -> tuple[int, int, list[int], list[int]]:
    """The tiles :func:`tiled_apply` cuts from an (h, w) image: (tile height, tile width, row starts, column
    starts)."""
    th, tw = min(tile, h), min(tile, w)
    return th, tw, tile_starts(h, th, min(overlap, th - 1)), tile_starts(w, tw, min(overlap, tw - 1))


def tiled_apply(
    fn: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    scale: int,
    tile: int,
    overlap: int = 16,
    tiles_per_batch: int = 1,
) -> Tensor:
    """Run ``fn`` on overlapping tiles of ``x`` and blend the outputs.

    Args:
        fn (Callable[[Tensor, Tensor], Tensor]): ``fn(tiles, offsets)`` maps (n, C, th, tw) LQ tiles and their
            (n, 2) int64 (y, x) offsets in the image to (n, C_out, th * scale, tw * scale).
        x (Tensor): (B, C, H, W) input.
        scale (int): upscaling factor of ``fn``.
        tile (int): tile side (clipped to the image).
        overlap (int): LQ pixels shared by neighbours (clipped to the tile side - 1). Default: 16.
        tiles_per_batch (int): tiles per ``fn`` call (tiles of all images are batched together). Default: 1.

    Returns:
        Tensor: (B, C_out, H * scale, W * scale) float32: per-pixel weighted mean of the overlapping tile outputs,
        weights = products of linear ramps over the overlaps (no seams; non-overlapped pixels exact).
    """
    b, _, h, w = x.shape
    th, tw, ys, xs = tile_grid(h, w, tile, overlap)
    boxes = [(n, y, z) for n in range(b) for y in ys for z in xs]
    out = weight = None
    for k in range(0, len(boxes), max(1, tiles_per_batch)):
        chunk = boxes[k : k + tiles_per_batch]
        offsets = torch.tensor([(y, z) for _, y, z in chunk], dtype=torch.int64)
        res = fn(torch.stack([x[n, :, y : y + th, z : z + tw] for n, y, z in chunk]), offsets)
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


def _read_int(path: str) -> Optional[int]:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # 'max' (no limit) -> None


def host_memory_bytes() -> Optional[int]:
    """Memory this process may use: the physical RAM (``SC_PHYS_PAGES * SC_PAGE_SIZE``), capped by a cgroup limit
    (v2 ``memory.max`` of the process's cgroup or the root one, v1 ``memory.limit_in_bytes``); None if unknown.

    Total, not currently free, memory: the choice (and so the tiled output) is the same from run to run.

    Returns:
        int | None: bytes, or None if unknown.
    """
    try:
        total = os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    except (AttributeError, ValueError, OSError):
        total = None
    limits = [_read_int('/sys/fs/cgroup/memory.max'), _read_int('/sys/fs/cgroup/memory/memory.limit_in_bytes')]
    try:
        with open('/proc/self/cgroup') as f:
            for line in f:
                parts = line.strip().split(':', 2)
                if len(parts) == 3 and parts[0] == '0' and parts[2] not in ('', '/'):
                    limits.append(_read_int(f'/sys/fs/cgroup{parts[2]}/memory.max'))
    except OSError:
        pass
    values = [v for v in [total] + limits if v is not None and v > 0]
    return min(values) if values else None


def model_width_factor(net) -> float:
    """Width of ``net``'s VQGAN decoder relative to the paper's (channels into its last conv / 128).

    Args:
        net (nn.Module): an ITER network with ``vqgan.decoder.blocks``.

    Returns:
        float: the factor (at least 1/128); 1.0 when it cannot be read (conservative for the paper model).
    """
    try:
        return max(float(net.vqgan.decoder.blocks[-1].in_channels) / 128.0, 1.0 / 128)
    except (AttributeError, IndexError, TypeError):
        return 1.0


def call_bytes_per_lq_pixel(scale: int, width: float = 1.0) -> int:
    """Estimated peak host memory of one CPU network call per LQ pixel: ``CALL_BYTES_PER_HR_PIXEL * scale**2 *
    width`` (81920 bytes = 80 KiB for the paper model at x4).

    Args:
        scale (int): upscaling factor.
        width (float): decoder width factor (:func:`model_width_factor`). Default: 1.0.

    Returns:
        int: bytes, rounded up.
    """
    return int(math.ceil(CALL_BYTES_PER_HR_PIXEL * scale * scale * width))


def memory_max_pixels(
    memory: int, scale: int, width: float = 1.0, image_pixels: int = 0, share: float = MEMORY_SHARE
) -> int:
    """LQ pixels per network call whose estimated peak fits: ``(share * memory - IMAGE_BYTES_PER_HR_PIXEL *
    scale**2 * image_pixels) // call_bytes_per_lq_pixel(scale, width)``, at least ``MIN_MEMORY_TILE ** 2``.

    Args:
        memory (int): bytes of host memory.
        scale (int): upscaling factor.
        width (float): decoder width factor (:func:`model_width_factor`). Default: 1.0.
        image_pixels (int): LQ pixels of all images of the call to ``restore_image``. Default: 0.
        share (float): share of ``memory`` the estimate may use. Default: :data:`MEMORY_SHARE` (0.5).

    Returns:
        int: LQ pixels per network call.
    """
    budget = share * memory - IMAGE_BYTES_PER_HR_PIXEL * scale * scale * image_pixels
    return max(MIN_MEMORY_TILE**2, int(budget // call_bytes_per_lq_pixel(scale, width)))


def cpu_max_pixels(
    max_pixels: Optional[int],
    tile: Optional[int],
    device,
    scale: int,
    batch: int,
    height: int,
    width: int,
    multiple: int = 1,
    model_width: float = 1.0,
    memory: Optional[int] = None,
) -> Optional[int]:
    """The pixel budget ``restore_image`` should use for a (batch, 3, height, width) LQ input on ``device``.

    ``max_pixels`` unless all of: the device is the CPU, ``tile`` is None and ``max_pixels`` is the unset
    default (``is_default``, :data:`iter_mm.models.options.DEFAULT_MAX_PIXELS`); then the smaller of it and
    :func:`memory_max_pixels` for ``memory`` bytes (default :func:`host_memory_bytes`). When that makes an image
    tiled finer than the default would, a :class:`MemoryTilingNote` says which tile side and why.

    Args:
        max_pixels (int, optional): the requested budget (None: no limit).
        tile (int, optional): the requested tile side.
        device (str | torch.device): device of the restoration.
        scale (int): upscaling factor.
        batch (int): images of the call.
        height (int): LQ height.
        width (int): LQ width.
        multiple (int): grid of the tile side. Default: 1.
        model_width (float): decoder width factor (:func:`model_width_factor`). Default: 1.0.
        memory (int, optional): bytes of host memory. Default: None (:func:`host_memory_bytes`).

    Returns:
        int | None: the budget to use.
    """
    if tile is not None or max_pixels is None or not getattr(max_pixels, 'is_default', False):
        return max_pixels
    if torch.device(device).type != 'cpu':
        return max_pixels
    memory = host_memory_bytes() if memory is None else int(memory)
    if not memory:
        return max_pixels
    fit = memory_max_pixels(memory, scale, model_width, batch * height * width)
    if fit >= max_pixels:
        return max_pixels
    if height * width > fit:
        side = auto_tile_size(fit, multiple)
        default = f'{auto_tile_size(max_pixels, multiple)}-pixel tiles' if height * width > max_pixels else 'no tiling'
        warnings.warn(
            f'{width}x{height} LQ image restored on the CPU in tiles of {side}x{side} LQ pixels instead of '
            f'{default}: about {call_bytes_per_lq_pixel(scale, model_width) / 1024:.0f} KiB per LQ pixel of a '
            f'call, within {MEMORY_SHARE:.0%} of {memory / 2**30:.1f} GiB of RAM; set max_pixels or tile '
            '(tools/infer.py --max-pixels / --tile) to choose',
            MemoryTilingNote,
            stacklevel=2,
        )
    return fit
