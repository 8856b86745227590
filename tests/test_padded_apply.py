"""padded_apply: the one pad-run-crop (VQGAN reconstruction, ITER restoration, GT tokens)."""

from dataclasses import dataclass
from typing import Optional

import torch

from iter_mm.utils.padding import pad_to_multiple, padded_apply


@dataclass
class Out:
    image: torch.Tensor
    tokens: torch.Tensor
    start: torch.Tensor
    extra: Optional[torch.Tensor] = None


def test_crops_every_map_back_to_the_input_region():
    x = torch.rand(2, 3, 13, 10)
    seen = []

    def fn(p):
        seen.append(tuple(p.shape[-2:]))
        up = torch.nn.functional.interpolate(p, scale_factor=4, mode='nearest')
        return Out(up, p[:, 0, ::2, ::2], torch.arange(2)), (up, None)

    res, (img, none) = padded_apply(fn, x, 8)
    assert seen == [(16, 16)]
    assert res.image.shape == img.shape == (2, 3, 52, 40)
    assert res.tokens.shape == (2, 7, 5)  # ceil(13 / 2), ceil(10 / 2)
    assert torch.equal(res.start, torch.arange(2)) and res.extra is None and none is None
    assert torch.equal(res.image[..., ::4, ::4], x)  # the input region, top-left


def test_official_rule_always_pads_and_matches_pad_to_multiple():
    x = torch.rand(1, 3, 16, 8)
    sizes = []
    out = padded_apply(lambda p: sizes.append(p.shape[-2:]) or p * 2, x, 8, official=True)
    assert tuple(sizes[0]) == (24, 16) and torch.equal(out, x * 2)
    padded, _ = pad_to_multiple(x, 8, official=True)
    assert tuple(padded.shape[-2:]) == tuple(sizes[0])
