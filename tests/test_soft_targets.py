"""E_l's soft token targets (``ITERModel(lq_target_temperature=...)``): distances to codes -> target distribution."""
import math

import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper

from iter_mm.models.editors.iter_model import soft_code_targets
from iter_model_helpers import build, down4, one_thread, samples, stage1_ckpt, textures  # noqa: F401


def test_soft_targets_follow_code_distances():
    codes = torch.tensor([[0., 0.], [1., 0.], [3., 0.]])
    latent = torch.tensor([0.2, 0.0]).view(1, 2, 1, 1)  # squared distances 0.04, 0.64, 7.84; d_min 0.04
    q = soft_code_targets(codes, latent, temperature=1.0)
    d = torch.tensor([0.04, 0.64, 7.84])
    expected = torch.softmax(-(d - 0.04) / 0.04, 0)
    torch.testing.assert_close(q.view(3), expected)
    sharp = soft_code_targets(codes, latent, temperature=1e-3).view(3)
    assert sharp[0] > 0.999  # -> the one-hot nearest code (S_h)
    flat = soft_code_targets(codes, latent, temperature=1e5).view(3)
    assert (flat - 1 / 3).abs().max() < 0.01


def test_soft_targets_peak_at_the_nearest_code_and_sum_to_one():
    g = torch.Generator().manual_seed(0)
    codes, latent = torch.randn(16, 4, generator=g), torch.randn(2, 4, 3, 5, generator=g)
    q = soft_code_targets(codes, latent, 0.3)
    assert q.shape == (2, 16, 3, 5)
    torch.testing.assert_close(q.sum(1), torch.ones(2, 3, 5))
    nearest = torch.cdist(latent.permute(0, 2, 3, 1).reshape(-1, 4), codes).argmin(1).view(2, 3, 5)
    assert torch.equal(q.argmax(1), nearest)


def test_model_uses_soft_targets_for_the_lq_ce(stage1_ckpt, monkeypatch):
    gt = textures(2, 32)
    data = dict(inputs=[(x * 255).round() for x in down4(gt)], data_samples=[samples((g * 255).round()) for g in gt])
    model = build(str(stage1_ckpt), lq_target_temperature=0.2)
    model.init_weights()
    seen = {}
    orig = model.generator.lq_encoder.forward

    def el(lq):
        seen['logits'] = orig(lq)
        return seen['logits']

    monkeypatch.setattr(model.generator.lq_encoder, 'forward', el)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0))
    log = model.train_step(data, wrapper)
    vq = model.generator.vqgan
    with torch.no_grad():
        q = soft_code_targets(vq.quantize.embedding.weight, vq.encode(gt), 0.2)
        expected = -(q * F.log_softmax(seen['logits'].float(), 1)).sum(1).mean()
    assert math.isclose(float(log['loss_lq_ce']), float(expected), rel_tol=1e-5)
    hard = build(str(stage1_ckpt))
    hard.init_weights()
    assert hard.lq_target_temperature is None


def test_bad_temperature_is_refused():
    import pytest
    with pytest.raises(ValueError, match='lq_target_temperature'):
        build(None, lq_target_temperature=0.0)
