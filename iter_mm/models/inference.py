"""Whole-pipeline ITER restoration of LQ images: checks, padding, adaptive refinement, tiling, colour."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable, Optional, Union

import torch
from torch import Tensor

from ..errors import InvalidInputError, InvalidOptionError
from ..utils.color import color_correction as _color_correction
from ..utils.padding import crop_to, pad_to_multiple, padded_apply
from ..utils.tiling import auto_tile_size, cpu_max_pixels, grid_tiles, model_width_factor, tile_grid, tiled_apply
from .options import RestoreOptions
from .sampling import RefineResult, adaptive_refine, derive_seeds, resolve_seed

__all__ = ['check_lq', 'autocast_context', 'padded_refine', 'restore_image', 'RestoreOptions']

DTYPES = {
    'fp32': None,
    'float32': None,
    'bf16': torch.bfloat16,
    'bfloat16': torch.bfloat16,
    'fp16': torch.float16,
    'float16': torch.float16,
}


def check_lq(lq: Tensor) -> None:
    """Raise a clear error unless ``lq`` is a finite float (B, 3, h, w) tensor in [0, 1].

    Args:
        lq (Tensor): the LQ batch to check.

    Raises:
        InvalidInputError: not a tensor, not (B, 3, h, w), not floating point, empty, not finite, or outside [0, 1].
    """
    if not isinstance(lq, Tensor):
        raise InvalidInputError(f'lq must be a torch.Tensor, got {type(lq).__name__}')
    if lq.dim() != 4 or lq.shape[1] != 3:
        raise InvalidInputError(f'lq must have shape (B, 3, h, w) (RGB), got {tuple(lq.shape)}')
    if not lq.is_floating_point():
        raise InvalidInputError(
            f'lq must be a float tensor with values in [0, 1], got dtype {lq.dtype} '
            '(divide 8-bit images by 255, 16-bit by 65535)'
        )
    if lq.numel() == 0:
        raise InvalidInputError(f'lq is empty: shape {tuple(lq.shape)}')
    lo, hi = torch.aminmax(lq.float())
    if not (torch.isfinite(lo) and torch.isfinite(hi)):
        raise InvalidInputError('lq contains NaN or infinite values')
    if lo < 0 or hi > 1:
        raise InvalidInputError(f'lq values must lie in [0, 1], got [{lo.item():.4g}, {hi.item():.4g}]')


def autocast_context(dtype: Union[str, torch.dtype, None], device: torch.device):
    """Autocast for 'bf16'/'fp16' on ``device``; a no-op for 'fp32'/None (the default: never a silent half).

    Args:
        dtype (str | torch.dtype, optional): 'fp32', 'bf16', 'fp16' (or their long names) or a torch dtype.
        device (torch.device): the device whose autocast is entered.

    Returns:
        ContextManager: ``torch.autocast`` or a null context.

    Raises:
        InvalidOptionError: an unknown dtype name.
    """
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise InvalidOptionError(f'unknown dtype {dtype!r}; expected one of fp32, bf16, fp16')
        dtype = DTYPES[dtype]
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def padded_refine(net, lq: Tensor, official_padding: bool = False, **sampling) -> RefineResult:
    """Pad to ``net.lq_pad_multiple``, refine, crop image, token maps and intermediates back.

    Args:
        net (nn.Module): ITERNet (``lq_pad_multiple`` and the networks of ``adaptive_refine``).
        lq (Tensor): (B, 3, h, w) in [0, 1].
        official_padding (bool): the authors' always-pad rule instead of minimal mirror padding. Default: False.
        **sampling: options of :func:`~iter_mm.models.sampling.adaptive_refine`.

    Returns:
        RefineResult: cropped to the input: ``image`` (B, 3, h*s, w*s), token maps (B, h', w') of the
            unpadded token grid.
    """
    return padded_apply(lambda x: adaptive_refine(net, x, **sampling), lq, int(net.lq_pad_multiple), official_padding)


def _call_progress(progress: Optional[Callable[[int, int], None]], call: int, calls: int):
    """Per-step progress of network call ``call`` of ``calls`` as overall ``progress(done, total)`` (or None)."""
    if progress is None:
        return None
    return lambda step, steps: progress(call * steps + step, calls * steps)


@torch.no_grad()
def restore_image(
    net,
    lq: Tensor,
    options: Optional[RestoreOptions] = None,
    *,
    generator: Optional[torch.Generator] = None,
    return_result: bool = False,
    return_intermediates: bool = False,
    progress: Optional[Callable[[int, int], None]] = None,
    **overrides,
) -> Union[Tensor, RefineResult]:
    """Super-resolve (B, 3, h, w) LQ images in [0, 1] with ITER.

    Args:
        net (nn.Module): ITERNet (``scale``, ``lq_pad_multiple``, sub-networks as in docs/architecture.md).
        lq (Tensor): (B, 3, h, w) float in [0, 1].
        options (RestoreOptions, optional): :class:`~iter_mm.models.options.RestoreOptions`. Default: None (its
            defaults).
        generator (torch.Generator, optional): when given, the seed is drawn from it (unless ``seed`` is among
            ``overrides``). Default: None.
        return_result (bool): return the :class:`RefineResult` (image and token maps cropped to the input) instead of
            the image; after tiled inference only its ``image`` is set. Default: False.
        return_intermediates (bool): also keep the per-step tokens, keep-masks and decoded images (whole images only;
            implies ``return_result``). Default: False.
        progress (callable, optional): called as ``progress(done, total)`` after every refinement step of every network
            call (batch of whole images or of tiles): ``total`` = calls x ``steps``, known before the first call.
            Default: None.
        **overrides: any fields of ``RestoreOptions`` (``alpha``, ``steps``, ``seed``, ``tile``, ``max_pixels``,
            ``dtype``, ...): sampling options of :func:`~iter_mm.models.sampling.adaptive_refine`; ``seed``: one seed
            for the call, used by every image through the counter-based noise (each tile a seed derived from it and
            the tile's position), so results do not depend on batch composition; ``color_correction`` (paper
            Eq. 10); ``tile``, ``tile_overlap``, ``max_pixels``: the tiling rule of :mod:`iter_mm.models.options`
            (tiles lie on the ``net.lq_pad_multiple`` grid of the mirror-padded image and need no padding);
            ``dtype``: 'fp32', 'bf16' or 'fp16' autocast; ``official_padding``: the authors' always-pad rule.

    Returns:
        Tensor | RefineResult: the SR image (B, 3, h*s, w*s) float32 in [0, 1], or the ``RefineResult`` with it.

    Raises:
        InvalidInputError: ``lq`` is not a finite float (B, 3, h, w) tensor in [0, 1].
        InvalidOptionError: intermediates are asked for an image that is tiled.
    """
    check_lq(lq)
    opts = (options or RestoreOptions()).replace(**overrides)
    if return_intermediates:
        return_result = True
    b, _, h, w = lq.shape
    s, multiple = int(net.scale), int(net.lq_pad_multiple)
    seed = (
        resolve_seed(None, generator)
        if generator is not None and 'seed' not in overrides
        else resolve_seed(opts.seed, None)
    )
    sampling = dict(opts.sampling(), seed=seed)
    tile, tile_overlap, max_pixels = opts.tile, opts.tile_overlap, opts.max_pixels
    max_pixels = cpu_max_pixels(max_pixels, tile, lq.device, s, b, h, w, multiple, model_width_factor(net))
    if tile is None and max_pixels is not None and h * w > max_pixels:
        tile = auto_tile_size(max_pixels, multiple)
    whole = tile is None or (h <= tile and w <= tile)
    if return_intermediates and not whole:
        raise InvalidOptionError(
            f'intermediate steps are kept for whole images only; {w}x{h} is tiled '
            f'(tile={tile}, max_pixels={max_pixels})'
        )
    if return_intermediates:
        sampling['return_intermediates'] = True

    with autocast_context(opts.dtype, lq.device):
        if whole:
            per_call = b if max_pixels is None else max(1, max_pixels // (h * w))
            starts = range(0, b, per_call)
            parts = [
                padded_refine(
                    net,
                    lq[k : k + per_call],
                    opts.official_padding,
                    progress=_call_progress(progress, n, len(starts)),
                    **sampling,
                )
                for n, k in enumerate(starts)
            ]
            if return_result:
                res = (
                    parts[0]
                    if len(parts) == 1
                    else RefineResult(
                        **{
                            f.name: None
                            if getattr(parts[0], f.name) is None
                            else torch.cat([getattr(p, f.name) for p in parts])
                            for f in dataclasses.fields(RefineResult)
                        }
                    )
                )
            out = torch.cat([p.image for p in parts]).float()
        else:  # tiles on the grid of lq_pad_multiple, so that no tile needs padding of its own
            tile, overlap = grid_tiles(tile, tile_overlap, multiple)
            padded, _ = pad_to_multiple(lq, multiple)
            th, tw, ys, xs = tile_grid(padded.shape[-2], padded.shape[-1], tile, overlap)
            per_call = 1 if max_pixels is None else max(1, max_pixels // (th * tw))
            seed = sampling.pop('seed')
            calls = [0, -(-b * len(ys) * len(xs) // per_call)]  # done, in all

            def run_tiles(tiles: Tensor, offsets: Tensor) -> Tensor:  # own noise stream per tile position
                seeds = derive_seeds(seed, offsets.to(tiles.device))
                tell = _call_progress(progress, calls[0], calls[1])
                calls[0] += 1
                return padded_refine(
                    net, tiles, opts.official_padding, seed=seeds, progress=tell, **sampling
                ).image.float()

            out = crop_to(tiled_apply(run_tiles, padded, s, tile, overlap, per_call), h * s, w * s)
            res = RefineResult(out)
    if opts.color_correction:
        out = _color_correction(out, lq)
    out = out.clamp(0, 1)
    if return_result:
        res.image = out
        return res
    return out
