"""How many token positions are masked and which ones: the schedule gamma and the top-k choice (pure torch).

Shared by the training masks (:mod:`.training_noise`, paper Algorithm 1) and the adaptive refinement
(:mod:`.sampling`, Algorithm 2). Keep/mask maps are float ``(B, h, w)`` with values 0/1.
"""

from __future__ import annotations

import math
from typing import Union

import torch
from torch import Tensor

from ..errors import InvalidOptionError

__all__ = ['SCHEDULES', 'mask_schedule', 'keep_counts', 'adaptive_start_step', 'top_k_mask']

SCHEDULES = ('cosine', 'linear')


def mask_schedule(r: Union[float, Tensor], kind: str = 'cosine') -> Union[float, Tensor]:
    """Masked fraction gamma(r) for r in [0, 1]: 'cosine' cos(pi r / 2), 'linear' 1 - r (Algorithms 1 and 2).

    Args:
        r (float | Tensor): progress r in [0, 1].
        kind (str): 'cosine' or 'linear'. Default: 'cosine'.

    Returns:
        float | Tensor: gamma(r), of the type (and shape) of ``r``.

    Raises:
        InvalidOptionError: unknown ``kind``.
    """
    if kind == 'cosine':
        return torch.cos(r * (math.pi / 2)) if isinstance(r, Tensor) else math.cos(r * math.pi / 2)
    if kind == 'linear':
        return 1 - r
    raise InvalidOptionError(f'unknown mask schedule {kind!r}; expected one of {SCHEDULES}')


def keep_counts(num_tokens: int, steps: int, kind: str = 'linear') -> Tensor:
    """Kept-token counts K_i = floor((1 - gamma(i / T)) N), i = 0..T-1, computed in float32 (Algorithm 2).

    Args:
        num_tokens (int): token positions N of the image.
        steps (int): refinement steps T.
        kind (str): mask schedule, 'cosine' or 'linear'. Default: 'linear'.

    Returns:
        Tensor: (T,) int64.

    Raises:
        InvalidOptionError: ``steps`` < 1, ``num_tokens`` < 0 or an unknown ``kind``.
    """
    if steps < 1:
        raise InvalidOptionError(f'steps must be >= 1, got {steps}')
    if num_tokens < 0:
        raise InvalidOptionError(f'num_tokens must be >= 0, got {num_tokens}')
    r = torch.arange(steps, dtype=torch.float32) / steps
    frac = 1 - mask_schedule(r, kind)
    return torch.floor(frac * torch.tensor(float(num_tokens), dtype=torch.float32)).long()


def adaptive_start_step(init_keep: Tensor, counts: Tensor) -> Tensor:
    """First executed step per image: smallest i with K_i >= init_keep[b]; T if none (all steps skipped).

    Args:
        init_keep (Tensor): (B,) number of initially kept (good) tokens per image (the adaptive start of
            Algorithm 2, decided per image).
        counts (Tensor): (T,) keep counts K_i.

    Returns:
        Tensor: (B,) int64 in [0, T].
    """
    counts = counts.to(init_keep.device)
    ge = counts.unsqueeze(0) >= init_keep.reshape(-1, 1).to(counts.dtype)
    first = ge.to(torch.int8).argmax(dim=1)
    return torch.where(ge.any(dim=1), first, torch.full_like(first, counts.numel()))


def top_k_mask(scores: Tensor, k: Tensor) -> Tensor:
    """True at the ``k[b]`` largest entries of every row ``b`` (equal scores: the lower index first).

    Args:
        scores (Tensor): (B, N) scores.
        k (Tensor): (B,) int64 counts.

    Returns:
        Tensor: (B, N) bool.
    """
    order = scores.argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)  # rank of every entry in descending order, 0 = largest
    ranks.scatter_(1, order, torch.arange(scores.shape[1], device=scores.device).expand_as(order))
    return ranks < k.unsqueeze(1)
