"""Test-time colour correction (paper Eq. 10; not in the authors' code, docs/faithfulness.md#colour-correction)."""

from __future__ import annotations

from torch import Tensor

__all__ = ['color_correction']


def color_correction(sr: Tensor, lq: Tensor, eps: float = 1e-6) -> Tensor:
    """Match every channel's mean and standard deviation of ``sr`` to those of ``lq`` (Eq. 10).

    sr' = (sr - mu_sr) / sigma_sr * sigma_lq + mu_lq, statistics per image and channel over all pixels
    (population std), clamped to [0, 1]. A flat SR channel (sigma_sr < eps) is only shifted to mu_lq.

    Args:
        sr (Tensor): (B, C, H, W) restored image.
        lq (Tensor): (B, C, h, w) input, any size.
        eps (float): smallest SR standard deviation that is scaled. Default: 1e-6.

    Returns:
        Tensor: (B, C, H, W) in [0, 1], dtype of ``sr``.

    Raises:
        ValueError: ``sr`` and ``lq`` are not 4-D with equal B and C.
    """
    if sr.dim() != 4 or lq.dim() != 4 or sr.shape[:2] != lq.shape[:2]:
        raise ValueError(f'sr {tuple(sr.shape)} and lq {tuple(lq.shape)} must be (B, C, *, *) with equal B, C')
    s, q = sr.float(), lq.float()
    mu_s, sd_s = s.mean(dim=(2, 3), keepdim=True), s.std(dim=(2, 3), keepdim=True, unbiased=False)
    mu_q, sd_q = q.mean(dim=(2, 3), keepdim=True), q.std(dim=(2, 3), keepdim=True, unbiased=False)
    gain = (sd_q / sd_s).masked_fill(sd_s < eps, 0.0)
    return ((s - mu_s) * gain + mu_q).clamp(0, 1).to(sr.dtype)
