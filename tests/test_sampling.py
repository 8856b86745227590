"""Tests of iter_mm.models.sampling: schedules, adaptive start, counter-based sampling, Algorithm 2."""

import math

import pytest
import torch
from stub_networks import CODES, StubITERNet  # stand-in networks, shared with the inference tests

from iter_mm.models import sampling as S


# ----------------------------------------------------------------------------- schedules
def test_mask_schedule_values():
    assert S.mask_schedule(0.0, 'cosine') == 1.0
    assert S.mask_schedule(0.5, 'linear') == 0.5
    assert torch.allclose(S.mask_schedule(torch.tensor([0.5]), 'cosine'), torch.tensor([math.sqrt(0.5)]))
    with pytest.raises(ValueError, match='unknown mask schedule'):
        S.mask_schedule(0.1, 'square')


def test_keep_counts_linear_and_cosine():
    # linear: K_i = floor(i N / 8), N = 1600 -> 0, 200, ..., 1400 (docs/faithfulness.md#adaptive-start)
    assert S.keep_counts(1600, 8, 'linear').tolist() == [200 * i for i in range(8)]
    # cosine: fractions 0, .019, .076, .169, .293, .444, .617, .805 (docs/faithfulness.md#adaptive-start), by hand
    hand = [math.floor((1 - math.cos(math.pi * i / 16)) * 1600) for i in range(8)]
    assert S.keep_counts(1600, 8, 'cosine').tolist() == hand
    fracs = [round(1 - math.cos(math.pi * i / 16), 3) for i in range(8)]
    assert fracs == [0, 0.019, 0.076, 0.169, 0.293, 0.444, 0.617, 0.805]
    assert S.keep_counts(7, 8, 'linear').tolist() == [0, 0, 1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError):
        S.keep_counts(10, 0)


def test_adaptive_start_step_per_image():
    counts = S.keep_counts(1600, 8, 'linear')
    init = torch.tensor([0, 480, 1520, 1600, 200, 201, 1400])
    # 0 -> 0 (all bad: 8 steps); 480 -> 3 (K_3 = 600); 1520 / 1600 -> 8 (all good: none);
    # 200 -> 1; 201 -> 2; 1400 -> 7
    assert S.adaptive_start_step(init, counts).tolist() == [0, 3, 8, 8, 1, 2, 7]
    cos = S.keep_counts(1600, 8, 'cosine')
    assert S.adaptive_start_step(torch.tensor([31, 30, 1287, 1288]), cos).tolist() == [2, 1, 7, 8]


# ----------------------------------------------------------------------------- noise
def _py_mix32(x):
    x ^= x >> 16
    x = (x * 0x21F0AAAD) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x735A2D97) & 0xFFFFFFFF
    return x ^ (x >> 15)


def test_mix32_matches_python_integers():
    xs = [0, 1, 2**31, 2**32 - 1, 123456789, 0xDEADBEEF]
    from iter_mm.models.counter_noise import _mix32

    got = _mix32(torch.tensor(xs, dtype=torch.int64)).tolist()
    assert got == [_py_mix32(x) for x in xs]


def test_hash_uniform_moments_and_reproducibility():
    seeds = torch.tensor([7, 7, 8])
    u = S.hash_uniform(seeds, step=3, kind=S.DRAW_TOKEN, shape=(64, 32, 32))
    assert u.shape == (3, 64, 32, 32) and u.dtype == torch.float32
    assert 0 < u.min() and u.max() < 1
    n = u[0].numel()
    assert abs(u[0].mean().item() - 0.5) < 4 * math.sqrt(1 / 12 / n)
    assert abs(u[0].var().item() - 1 / 12) < 2e-3
    # equal seeds -> equal noise; other seed / step / kind -> uncorrelated noise
    assert torch.equal(u[0], u[1])
    others = [
        u[2],
        S.hash_uniform(seeds[:1], 4, S.DRAW_TOKEN, (64, 32, 32))[0],
        S.hash_uniform(seeds[:1], 3, S.DRAW_KEEP, (64, 32, 32))[0],
    ]
    for v in others:
        corr = torch.corrcoef(torch.stack([u[0].flatten(), v.flatten()]))[0, 1]
        assert abs(corr) < 0.02
    assert torch.equal(S.hash_uniform(torch.tensor([7]), 3, S.DRAW_TOKEN, (64, 32, 32))[0], u[0])
    # neighbouring elements are not correlated either
    flat = u[0].flatten()
    assert abs(torch.corrcoef(torch.stack([flat[:-1], flat[1:]]))[0, 1]) < 0.02


def test_resolve_seed_from_generator():
    assert S.resolve_seed(5) == 5
    a = S.resolve_seed(generator=torch.Generator().manual_seed(0))
    b = S.resolve_seed(generator=torch.Generator().manual_seed(0))
    assert a == b and a != S.resolve_seed(generator=torch.Generator().manual_seed(1))


# ----------------------------------------------------------------------------- sampling
def test_sample_tokens_batch_invariant():
    logits = torch.randn(2, CODES, 6, 5, generator=torch.Generator().manual_seed(0))
    both = S.sample_tokens(logits, 1.0, 1234, step=2)
    assert torch.equal(both[0], S.sample_tokens(logits[:1], 1.0, 1234, step=2)[0])
    assert torch.equal(both[1], S.sample_tokens(logits[1:], 1.0, 1234, step=2)[0])
    assert torch.equal(both[[1, 0]], S.sample_tokens(logits[[1, 0]], 1.0, 1234, step=2))
    assert not torch.equal(both, S.sample_tokens(logits, 1.0, 1235, step=2))
    assert torch.equal(S.sample_tokens(logits, 0.0, 1, 0), logits.argmax(1))


def test_sample_tokens_is_categorical():
    # identical logits at 4096 positions: empirical frequencies must match softmax(logits / T)
    base = torch.tensor([0.0, 1.0, -1.0, 2.0])
    for temp in (1.0, 0.5):
        logits = base.view(1, 4, 1, 1).expand(1, 4, 64, 64)
        tok = S.sample_tokens(logits, temp, 99, step=0)
        freq = torch.bincount(tok.flatten(), minlength=4).float() / tok.numel()
        p = torch.softmax(base / temp, 0)
        assert torch.allclose(freq, p, atol=4 * math.sqrt(0.25 / 4096))


def test_sample_keep_mask_counts_and_no_repick():
    g = torch.Generator().manual_seed(0)
    b, h, w = 4, 8, 8
    logits = torch.randn(b, 2, h, w, generator=g)
    keep = torch.zeros(b, h, w)
    kept = [0, 10, 30, 63]
    for i, k in enumerate(kept):
        keep[i].view(-1)[torch.randperm(h * w, generator=g)[:k]] = 1
    target = 20
    new = S.sample_keep_mask(logits, keep, target, 1.0, 5, step=3)
    assert set(new.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(new >= keep)  # never drops, never re-picks (values stay 0/1)
    added = (new - keep).sum(dim=(1, 2)).tolist()
    # k_new = max(1, K - kept_b) per image, capped by free positions
    assert added == [20, 10, 1, 1]
    # per-image target tensor; batch invariance
    new_b = S.sample_keep_mask(logits, keep, torch.tensor([5, 40, 40, 64]), 1.0, 5, step=3)
    assert (new_b - keep).sum(dim=(1, 2)).tolist() == [5, 30, 10, 1]
    for i in range(b):
        one = S.sample_keep_mask(logits[i : i + 1], keep[i : i + 1], target, 1.0, 5, step=3)
        assert torch.equal(one[0], new[i])


def test_sample_keep_mask_follows_good_probability():
    # one new position among 2 free ones with P_good 0.8 / 0.2 (others kept): picks ~ proportional to p
    logits = torch.zeros(1, 2, 1, 3)
    logits[0, 1, 0, 0] = math.log(0.8 / 0.2)  # softmax -> P_good = 0.8
    logits[0, 1, 0, 1] = math.log(0.2 / 0.8)  # P_good = 0.2
    keep = torch.tensor([[[0.0, 0.0, 1.0]]])
    n = 4000  # one image per seed: a batch of copies with seeds 0..n-1
    picks = S.sample_keep_mask(logits.expand(n, 2, 1, 3), keep.expand(n, 1, 3), 2, 1.0, torch.arange(n), 0)
    picks = picks[:, 0, :2]
    assert torch.all(picks.sum(1) == 1)
    assert abs(picks[:, 0].mean().item() - 0.8) < 4 * math.sqrt(0.16 / n)


def test_sample_training_mask_counts():
    b, h, w = 6, 5, 7
    mask = S.sample_training_mask(b, h, w, generator=torch.Generator().manual_seed(3))
    r = torch.rand(b, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    k = [max(1, math.floor(math.cos(math.pi * x / 2) * h * w)) for x in r.tolist()]
    assert mask.shape == (b, h, w) and mask.dtype == torch.float32
    assert mask.sum(dim=(1, 2)).long().tolist() == k
    assert torch.equal(mask, S.sample_training_mask(b, h, w, generator=torch.Generator().manual_seed(3)))
    assert S.sample_training_mask(2, 1, 1).sum() == 2  # at least one masked


# ----------------------------------------------------------------------------- Algorithm 2
def _good_map(frac, h=40, w=40):
    m = torch.zeros(h * w)
    m[: round(frac * h * w)] = 1
    return m[torch.randperm(h * w, generator=torch.Generator().manual_seed(0))].view(1, h, w)


@pytest.mark.parametrize('frac,steps_run', [(0.30, 5), (0.0, 8), (0.95, 0)])
def test_call_counts_match_reference(frac, steps_run):
    # docs/faithfulness.md#adaptive-start: phi_e = 2 + executed, phi_r = executed (1600 tokens); we drop the 2 wasted
    # phi_e calls
    net = StubITERNet(good_map=_good_map(frac))
    res = S.adaptive_refine(net, torch.rand(1, 3, 80, 80), alpha=0.7, seed=0)
    assert len(net.refiner.calls) == steps_run
    assert len(net.evaluator.calls) == 1 + max(steps_run - 1, 0)
    assert net.vqgan.decoded == 1
    assert res.start_step.tolist() == [8 - steps_run]
    if steps_run == 0:
        assert torch.equal(res.tokens, res.lq_tokens)
        assert torch.equal(res.image, net.vqgan.decode_indices(res.lq_tokens))


def test_refiner_inputs_follow_algorithm():
    gm = _good_map(0.30, 8, 8)
    net = StubITERNet(good_map=gm)
    res = S.adaptive_refine(net, torch.rand(1, 3, 16, 16), alpha=0.7, seed=3, return_intermediates=True)
    counts = S.keep_counts(64, 8, 'linear')
    calls = net.refiner.calls
    m_s = gm
    assert res.start_step.item() == 3 and len(calls) == 5  # 19 good tokens, K_3 = 24
    for j, c in enumerate(calls):
        i = 3 + j
        assert torch.equal(c['cond_tokens'], res.lq_tokens)
        assert torch.equal(c['cond_flag'], 1 - m_s)
        if j == 0:  # first executed step: keep = m_s, tokens = S_l
            assert torch.equal(c['keep'], m_s) and torch.equal(c['tokens'], res.lq_tokens)
        else:  # keep grows to K_i and contains the previous keep; tokens = previous sample
            assert c['keep'].sum() == counts[i]
            assert torch.all(c['keep'] >= calls[j - 1]['keep'])
            assert torch.equal(c['tokens'], res.step_tokens[:, i - 1])
        assert torch.equal(res.step_keep[:, i], c['keep'])
    # phi_e evaluates each new sample against S_l (not after the last step)
    ev = net.evaluator.calls
    assert torch.equal(ev[0][0], res.lq_tokens) and torch.equal(ev[0][1], res.lq_tokens)
    for j in range(1, len(ev)):
        assert torch.equal(ev[j][0], res.step_tokens[:, 2 + j]) and torch.equal(ev[j][1], res.lq_tokens)
    # skipped steps hold S_l and m_s; the output decodes the last sample
    assert torch.equal(res.step_tokens[:, 0], res.lq_tokens) and torch.equal(res.step_keep[:, 2], m_s)
    assert torch.equal(res.tokens, res.step_tokens[:, -1])
    assert res.step_images.shape == (1, 8, 3, 64, 64)
    assert torch.equal(res.image, net.vqgan.decode_indices(res.tokens))


def test_adaptive_refine_batch_matches_single_images():
    # three images with different start steps (flat images give one token everywhere)
    lq = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    lq[1], lq[2] = 0.2, 0.9
    net = StubITERNet()
    res = S.adaptive_refine(net, lq, alpha=0.6, seed=11, return_intermediates=True)
    assert len(set(res.start_step.tolist())) == 3, res.start_step
    for i in range(3):
        one = S.adaptive_refine(net, lq[i : i + 1], alpha=0.6, seed=11, return_intermediates=True)
        for name in ('image', 'tokens', 'lq_tokens', 'good_prob', 'start_step', 'step_tokens', 'step_keep'):
            assert torch.equal(getattr(res, name)[i], getattr(one, name)[0]), name
    gen = S.adaptive_refine(net, lq, seed=None, generator=torch.Generator().manual_seed(4))
    assert torch.equal(gen.tokens, S.adaptive_refine(net, lq, generator=torch.Generator().manual_seed(4)).tokens)


def test_adaptive_refine_bad_arguments():
    net = StubITERNet()
    with pytest.raises(ValueError, match='alpha'):
        S.adaptive_refine(net, torch.rand(1, 3, 16, 16), alpha=1.5)
    with pytest.raises(ValueError, match='steps'):
        S.adaptive_refine(net, torch.rand(1, 3, 16, 16), steps=0)
