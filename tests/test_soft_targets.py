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


# ----------------------------------------------------------------------------- codebook start of E_l's logits
def test_codebook_logits_rank_codes_by_distance():
    from iter_mm.models.editors.lq_logits_init import init_logits_from_codebook, nearest_code_spacing
    codes = torch.tensor([[0., 0.], [1., 0.], [0., 3.]])  # nearest-other squared distances 1, 1, 9 -> mean 11/3
    assert math.isclose(float(nearest_code_spacing(codes)), 11 / 3)
    conv = torch.nn.Conv2d(2, 3, 1)
    t = init_logits_from_codebook(conv, codes, temperature=0.5)
    assert math.isclose(t, 0.5 * 11 / 3)
    f = torch.tensor([0.9, 0.2]).view(1, 2, 1, 1)
    d = ((codes - f.view(1, 2)) ** 2).sum(1)  # 0.85, 0.05, 7.65
    torch.testing.assert_close(torch.softmax(conv(f).view(3), 0), torch.softmax(-d / t, 0))
    g = torch.Generator().manual_seed(0)
    codes, feats = torch.randn(32, 6, generator=g), torch.randn(1, 6, 5, 7, generator=g)
    conv = torch.nn.Conv2d(6, 32, 1)
    init_logits_from_codebook(conv, codes)
    nearest = torch.cdist(feats.permute(0, 2, 3, 1).reshape(-1, 6), codes).argmin(1).view(1, 5, 7)
    assert torch.equal(conv(feats).argmax(1), nearest)


def test_model_starts_el_logits_from_the_loaded_codebook(stage1_ckpt):
    import copy

    from iter_model_helpers import TINY_NET
    from mmagic.registry import MODELS
    net = copy.deepcopy(TINY_NET)
    net['lq_encoder']['feat_dim'] = net['vqgan']['embed_dim']
    torch.manual_seed(0)
    model = MODELS.build(dict(type='ITERModel', generator=net, vqgan_ckpt=str(stage1_ckpt),
                              lq_logits_init=dict(temperature=2.0)))
    model.init_weights()
    conv, codes = model.generator.lq_encoder.model[-1], model.generator.vqgan.quantize.embedding.weight
    from iter_mm.models.editors.lq_logits_init import nearest_code_spacing
    t = 2.0 * float(nearest_code_spacing(codes))
    torch.testing.assert_close(conv.weight.view(codes.shape), 2 * codes / t)
    torch.testing.assert_close(conv.bias, -codes.pow(2).sum(1) / t)
    wide = build(str(stage1_ckpt), lq_logits_init=dict(temperature=1.0))  # E_l feat_dim 16, codes of width 8
    import pytest
    with pytest.raises(ValueError, match='feat_dim equal to the VQGAN embed_dim'):
        wide.init_weights()
