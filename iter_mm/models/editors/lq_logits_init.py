"""Codebook-aware start for E_l's logit layer: logits that rank codes by distance to E_l's feature.

E_l ends with a 1x1 convolution from its feature (``feat_dim`` channels) to one logit per code. When ``feat_dim``
equals the code width (128 released, 32 in the demo), that layer can start as the nearest-code classifier
``logit_k = -||f - e_k||^2 / T = (2 e_k . f - ||e_k||^2) / T + const``. E_l then begins by regressing the GT
latent (its feature lives in code space) instead of learning a 512-way classifier from random weights; training
moves every weight as usual. No state-dict entry changes.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def nearest_code_spacing(codebook: Tensor) -> Tensor:
    """Mean over codes of the squared distance to the nearest other code. codebook: (n, C) -> scalar."""
    e = codebook.double()
    d = torch.cdist(e, e).pow(2)
    d.fill_diagonal_(float('inf'))
    return d.min(1).values.mean()


@torch.no_grad()
def init_logits_from_codebook(logit_conv: nn.Conv2d, codebook: Tensor, temperature: float = 1.0) -> float:
    """Set ``logit_conv`` (1x1, C -> n) to ``(2 e_k . f - ||e_k||^2) / T``, T = temperature x code spacing.

    Args:
        logit_conv: E_l's last layer, ``Conv2d(C, n, 1)`` with a bias. codebook: (n, C) codes.
        temperature: > 0, relative to :func:`nearest_code_spacing` (1: neighbouring codes ~1 logit apart).
    Returns:
        the absolute temperature T used.
    """
    n, c = codebook.shape
    if not isinstance(logit_conv, nn.Conv2d) or logit_conv.kernel_size != (1, 1) or logit_conv.bias is None:
        raise TypeError(f'expected a 1x1 Conv2d with bias as the logit layer, got {logit_conv}')
    if (logit_conv.out_channels, logit_conv.in_channels) != (n, c):
        raise ValueError(f'E_l logit layer maps {logit_conv.in_channels} -> {logit_conv.out_channels} channels; a '
                         f'codebook start needs {c} -> {n} (E_l feat_dim equal to the VQGAN embed_dim)')
    if not temperature > 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    t = float(temperature * nearest_code_spacing(codebook).clamp(min=1e-12))
    e = codebook.to(logit_conv.weight.dtype)
    logit_conv.weight.copy_((2 * e / t).view(n, c, 1, 1))
    logit_conv.bias.copy_(-e.pow(2).sum(1) / t)
    return t
