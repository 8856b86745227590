"""Tiny stand-ins for the ITER networks (the ITERNet contract of docs/architecture.md), shared by the sampling,
inference and memory-tiling tests."""

import torch
import torch.nn.functional as F
from torch import nn

CODES = 16


class StubVQGAN(nn.Module):
    """decode_indices: each token becomes an 8x8 patch of its palette colour."""

    def __init__(self, codes=CODES):
        super().__init__()
        self.register_buffer('palette', torch.rand(codes, 3, generator=torch.Generator().manual_seed(1)))
        self.decoded = 0

    def decode_indices(self, idx):
        self.decoded += 1
        img = self.palette[idx].permute(0, 3, 1, 2)
        return F.interpolate(img, scale_factor=8, mode='nearest')


class StubLQEncoder(nn.Module):
    """Token = grey level of the 2x2-mean LQ block (x4: 8/4 = 2 LQ pixels per token side) in CODES bins."""

    def __init__(self, codes=CODES, scale=4):
        super().__init__()
        self.pool = 8 // scale
        self.register_buffer('centres', torch.arange(codes, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, lq):
        grey = F.avg_pool2d(lq.mean(1, keepdim=True), self.pool) * (self.centres.shape[1] - 1)
        return -((grey - self.centres) ** 2)


class StubEvaluator(nn.Module):
    """phi_e: 'good' logit from a per-code score, or from a fixed map of good positions (``good_map``)."""

    def __init__(self, codes=CODES, good_map=None):
        super().__init__()
        self.register_buffer('score', torch.linspace(-4, 4, codes))  # dark tokens bad, bright tokens good
        self.good_map = good_map
        self.calls = []

    def forward(self, tokens, cond_tokens):
        self.calls.append((tokens.clone(), cond_tokens.clone()))
        good = self.score[tokens] if self.good_map is None else self.good_map.to(tokens.device) * 20 - 10
        good = good.expand(tokens.shape).float()
        return torch.stack([torch.zeros_like(good), good], dim=1)


class StubRefiner(nn.Module):
    """phi_r: logits from the condition and the visible tokens; ``sharp`` makes it deterministic."""

    def __init__(self, codes=CODES, sharp=False):
        super().__init__()
        g = torch.Generator().manual_seed(4)
        self.a = nn.Parameter(torch.randn(codes + 1, codes, generator=g))
        self.b = nn.Parameter(torch.randn(codes + 1, codes, generator=g))
        self.sharp = sharp
        self.calls = []

    def forward(self, cond_tokens, cond_flag, tokens, keep):
        self.calls.append(
            dict(cond_tokens=cond_tokens.clone(), cond_flag=cond_flag.clone(), tokens=tokens.clone(), keep=keep.clone())
        )
        if self.sharp:  # one huge logit: Gumbel-max always picks (cond + 1) mod C
            return F.one_hot((cond_tokens + 1) % self.a.shape[1], self.a.shape[1]).permute(0, 3, 1, 2) * 1e4
        masked = torch.full_like(tokens, self.a.shape[0] - 1)
        vis = torch.where(keep > 0.5, tokens, masked)
        return (self.a[cond_tokens] + self.b[vis] + cond_flag[..., None]).permute(0, 3, 1, 2)


class StubITERNet(nn.Module):
    """Follows the ITERNet contract of docs/architecture.md with tiny per-token stand-ins."""

    def __init__(self, scale=4, good_map=None, sharp=False):
        super().__init__()
        self.scale = scale
        self.lq_pad_multiple = 8 * 8 // scale // 4  # small grid: 4 (x4), 8 (x2) LQ pixels
        self.vqgan = StubVQGAN()
        self.lq_encoder = StubLQEncoder(scale=scale)
        self.evaluator = StubEvaluator(good_map=good_map)
        self.refiner = StubRefiner(sharp=sharp)
