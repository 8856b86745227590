"""ITERNet: container of the four ITER networks (VQGAN, E_l, phi_e, phi_r); no forward logic of its own.

Sampling (Algorithm 2) lives in ``iter_mm.models.sampling``; freezing the VQGAN is the training model's job.
"""

from __future__ import annotations

import math
from typing import Union

from torch import nn

from .registry import MODELS

ModuleCfg = Union[dict, nn.Module]


def _build(cfg: ModuleCfg, **defaults) -> nn.Module:
    """Build a child from a config dict (defaults fill missing keys) or take a ready module."""
    if isinstance(cfg, nn.Module):
        return cfg
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f'expected a config dict with a "type" key or an nn.Module, got {cfg!r}')
    cfg = dict(cfg)
    for key, value in defaults.items():
        cfg.setdefault(key, value)
    return MODELS.build(cfg)


@MODELS.register_module()
class ITERNet(nn.Module):
    """ITER networks: ``vqgan`` (Swin-VQGAN), ``lq_encoder`` (E_l), ``evaluator`` (phi_e), ``refiner`` (phi_r).

    Args:
        scale (int): SR factor; passed to the LQ encoder config when it has none (a conflicting one is an error).
            Default: 4.
        vqgan (dict | nn.Module): Config (built with MMagic's MODELS) or module of the Swin-VQGAN.
            Default: dict(type='SwinVQGAN').
        lq_encoder (dict | nn.Module): E_l. Default: dict(type='LQEncoder').
        evaluator (dict | nn.Module): phi_e. Default: dict(type='TokenEvaluationNet').
        refiner (dict | nn.Module): phi_r. Default: dict(type='TokenRefinementNet').
    """

    def __init__(
        self,
        scale: int = 4,
        vqgan: ModuleCfg = dict(type='SwinVQGAN'),
        lq_encoder: ModuleCfg = dict(type='LQEncoder'),
        evaluator: ModuleCfg = dict(type='TokenEvaluationNet'),
        refiner: ModuleCfg = dict(type='TokenRefinementNet'),
    ) -> None:
        super().__init__()
        if isinstance(lq_encoder, dict) and lq_encoder.get('scale', scale) != scale:
            raise ValueError(f'ITERNet scale {scale} conflicts with lq_encoder scale {lq_encoder["scale"]}')
        self.scale = scale
        self.vqgan = _build(vqgan)
        self.lq_encoder = _build(lq_encoder, scale=scale)
        self.evaluator = _build(evaluator)
        self.refiner = _build(refiner)
        if getattr(self.lq_encoder, 'scale', scale) != scale:
            raise ValueError(f'ITERNet scale {scale} conflicts with lq_encoder.scale {self.lq_encoder.scale}')
        n = self.vqgan.codebook_size
        for name in ('lq_encoder', 'evaluator', 'refiner'):
            size = getattr(getattr(self, name), 'codebook_size', n)
            if size != n:
                raise ValueError(f'{name} works on {size} codes but the VQGAN codebook has {n}')

    @property
    def codebook_size(self) -> int:
        return self.vqgan.codebook_size

    @property
    def token_window(self) -> int:
        """Token-grid side multiple that suits every Swin window (lcm of the four networks' windows)."""
        return math.lcm(
            self.vqgan.swin_window, self.lq_encoder.swin_window, self.evaluator.window_size, self.refiner.window_size
        )

    @property
    def lq_pad_multiple(self) -> int:
        """LQ side multiple giving a valid token grid: downscale * token_window / scale (16 for x4, 32 for x2)."""
        return self.vqgan.downscale * self.token_window // self.scale
