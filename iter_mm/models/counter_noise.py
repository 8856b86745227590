"""Counter-based noise of the inference sampling: every uniform number is a hash (pure torch).

Every uniform number is a hash of ``(seed, step, draw kind, element index within the image)``, computed with exact
integer tensor ops. An image therefore draws the same numbers whatever its position in the batch and on any device;
a call needs one integer seed, given directly or drawn once from a ``torch.Generator``.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from ..errors import InvalidInputError

__all__ = [
    'DRAW_TOKEN',
    'DRAW_KEEP',
    'SeedLike',
    'hash_uniform',
    'uniform_range',
    'seed_keys',
    'resolve_seed',
    'derive_seeds',
    'as_seeds',
    'gumbel_',
]

DRAW_TOKEN = 1  # draw kind of the categorical token sample
DRAW_KEEP = 2  # draw kind of the keep-mask sample

_M32 = 0xFFFFFFFF
_MAX_ELEMS = 1 << 32  # element indices are hashed as 32-bit integers
SeedLike = Union[int, Tensor]


def _mix32(x: Tensor) -> Tensor:
    """32-bit integer hash (xorshift-multiply; C. Wellons' low-bias constants), bijective on [0, 2^32).

    x: int64 in [0, 2^32). Both multipliers are < 2^31, so products stay below 2^63: no int64 overflow.
    Works in place on a fresh copy of ``x``.
    """
    x = x ^ (x >> 16)
    x.mul_(0x21F0AAAD).bitwise_and_(_M32)
    x.bitwise_xor_(x >> 15)
    x.mul_(0x735A2D97).bitwise_and_(_M32)
    return x.bitwise_xor_(x >> 15)


def seed_keys(seeds: Tensor, step: int, kind: int) -> tuple[Tensor, Tensor]:
    """Two 32-bit keys per image from (seed, step, kind).

    Args:
        seeds (Tensor): (B,) int64 seeds.
        step (int): refinement step.
        kind (int): draw kind (``DRAW_TOKEN`` / ``DRAW_KEEP``).

    Returns:
        tuple[Tensor, Tensor]: two (B, 1) int64 keys in [0, 2^32).
    """
    lo = seeds & _M32
    hi = (seeds >> 32) & _M32
    k = _mix32(lo ^ _mix32(hi ^ 0x68E31DA4))
    k = _mix32(k ^ ((step * 0x9E3779B9) & _M32))
    k = _mix32(k ^ ((kind * 0x85EBCA6B + 0x1B56C4E9) & _M32))
    return k.unsqueeze(1), _mix32(k ^ 0x5BD1E995).unsqueeze(1)


def hash_uniform(seeds: Tensor, step: int, kind: int, shape: Sequence[int]) -> Tensor:
    """Counter-based uniform noise in the open interval (0, 1).

    Element j of image b is a pure function of (seeds[b], step, kind, j); integer ops are exact on every
    device, so only the device of ``seeds`` decides where it is computed, not what it is.

    Args:
        seeds (Tensor): (B,) int64 seeds, one per image (equal seeds give equal noise).
        step (int): refinement step, a small non-negative int.
        kind (int): draw kind (``DRAW_TOKEN`` / ``DRAW_KEEP``), a small non-negative int.
        shape (Sequence[int]): per-image shape, e.g. (C, h, w).

    Returns:
        Tensor: (B, *shape) float32, odd multiples of 2^-24 (23 random bits; never 0 or 1).
    """
    numel = math.prod(shape)
    seeds = seeds.reshape(-1).to(torch.int64)
    return uniform_range(seed_keys(seeds, int(step), int(kind)), 0, numel, numel).view(seeds.numel(), *shape)


def uniform_range(keys: tuple[Tensor, Tensor], start: int, count: int, numel: int) -> Tensor:
    """Elements [start, start + count) of the flattened :func:`hash_uniform` noise of ``numel`` elements per image.

    Args:
        keys (tuple[Tensor, Tensor]): the two (B, 1) keys of :func:`seed_keys`.
        start (int): first element index.
        count (int): number of elements.
        numel (int): elements per image of the whole draw.

    Returns:
        Tensor: (B, count) float32 in (0, 1).

    Raises:
        InvalidInputError: ``numel`` >= 2^32 (the hash's element index range).
    """
    if numel >= _MAX_ELEMS:
        raise InvalidInputError(f'{numel} noise elements per image exceed the 2^32 the hash supports; use tiling')
    k1, k2 = keys
    idx = torch.arange(start, start + count, device=k1.device, dtype=torch.int64).unsqueeze(0)
    x = _mix32(_mix32(idx ^ k1).bitwise_xor_(k2))
    return (x >> 9).mul_(2).add_(1).to(torch.float32).mul_(2.0**-24)  # (2k + 1) / 2^24, exact in fp32


def resolve_seed(seed: Optional[int] = None, generator: Optional[torch.Generator] = None) -> int:
    """The call's integer seed: ``seed`` if given, else one draw from ``generator``.

    Args:
        seed (int, optional): the seed. Default: None.
        generator (torch.Generator, optional): source of the draw when ``seed`` is None. Default: None (torch's
            default CPU generator).

    Returns:
        int: the seed, drawn in [0, 2^62) when not given.
    """
    if seed is not None:
        return int(seed)
    return int(
        torch.randint(
            0, 2**62, (1,), generator=generator, device=generator.device if generator is not None else 'cpu'
        ).item()
    )


def derive_seeds(seed: int, keys: Tensor) -> Tensor:
    """Independent per-item seeds from one seed and integer keys (e.g. tile offsets).

    Args:
        seed (int): the call's seed.
        keys (Tensor): (n, k) integer keys, one row per item.

    Returns:
        Tensor: (n,) int64.
    """
    keys = keys.to(torch.int64)
    x = torch.full(keys.shape[:1], int(seed) & _M32, dtype=torch.int64, device=keys.device)
    for j in range(keys.shape[1]):
        x = _mix32(x ^ _mix32((keys[:, j] + 0x632BE5AB * (j + 1)) & _M32))
    return ((int(seed) >> 32) << 32) | x


def as_seeds(seeds: SeedLike, batch: int, device: torch.device) -> Tensor:
    """One int64 seed per image.

    Args:
        seeds (int | Tensor): an int or a one-element tensor for all images, or (B,) seeds.
        batch (int): images B.
        device (torch.device): device of the result.

    Returns:
        Tensor: (B,) int64.

    Raises:
        InvalidInputError: a tensor of more than one seed whose length is not ``batch``.
    """
    if isinstance(seeds, Tensor):
        seeds = seeds.reshape(-1).to(device=device, dtype=torch.int64)
        if seeds.numel() == 1:
            return seeds.expand(batch)
        if seeds.numel() != batch:
            raise InvalidInputError(f'got {seeds.numel()} seeds for a batch of {batch}')
        return seeds
    return torch.full((batch,), int(seeds), dtype=torch.int64, device=device)


def gumbel_(u: Tensor) -> Tensor:
    """Gumbel noise -log(-log u) of uniforms ``u`` in (0, 1), in place.

    Args:
        u (Tensor): uniforms in (0, 1), overwritten.

    Returns:
        Tensor: ``u`` holding the Gumbel noise.
    """
    return u.log_().neg_().log_().neg_()
