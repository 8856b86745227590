"""The training randomness seam: ITERModel takes every draw of a step from one TrainingNoise."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from iter_model_helpers import (  # noqa: F401  (fixtures: one_thread, stage1_ckpt)
    N_CODES,
    NoStepOptimWrapper,
    build,
    down4,
    one_thread,
    samples,
    stage1_ckpt,
    textures,
)

from iter_mm.errors import InvalidInputError
from iter_mm.models.training_noise import (
    ReplayNoise,
    TrainingNoise,
    mask_from_draws,
    sample_training_mask,
    straight_through_gumbel,
)

IMAGE_LOSSES = dict(
    pixel_loss=dict(type='L1Loss', loss_weight=1.0), perceptual_loss=dict(type='L1Loss', loss_weight=1.0)
)


@pytest.fixture
def model(stage1_ckpt):
    model = build(str(stage1_ckpt), **IMAGE_LOSSES)
    model.init_weights()
    return model.train()


def _data(seed=0):
    gt = textures(2, 32, seed=seed)
    return dict(inputs=[(x * 255).round() for x in down4(gt)], data_samples=[samples((g * 255).round()) for g in gt])


def _step(model, noise, data):
    """One train_step with ``noise`` -> (log_vars, gradients, keep-mask phi_r received)."""
    model.train_noise = noise
    model.zero_grad(set_to_none=True)
    keep = []
    hook = model.generator.refiner.register_forward_pre_hook(lambda m, args: keep.append(args[3].clone()))
    try:
        log = model.train_step(copy.deepcopy(data), NoStepOptimWrapper(torch.optim.SGD(model.parameters(), lr=0)))
    finally:
        hook.remove()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    return log, grads, keep[0]


def test_same_seeded_noise_gives_bitwise_equal_steps(model):
    data = _data()
    first = _step(model, TrainingNoise.seeded(5), data)
    torch.rand(1000)  # the global RNG moves: a seeded source does not use it
    second = _step(model, TrainingNoise.seeded(5), data)
    other = _step(model, TrainingNoise.seeded(6), data)
    assert first[1] and first[1].keys() == second[1].keys()
    for key in first[0]:
        assert torch.equal(first[0][key], second[0][key]), key
    for key in first[1]:
        assert torch.equal(first[1][key], second[1][key]), key
    assert torch.equal(first[2], second[2])
    # the draws matter: another seed gives another mask and other losses
    assert not torch.equal(first[2], other[2])
    assert first[0]['loss_perceptual'] != other[0]['loss_perceptual']


def test_default_noise_draws_from_the_global_rng_as_torch_does():
    torch.manual_seed(11)
    mask = TrainingNoise().training_mask(3, 4, 5)
    e = TrainingNoise().gumbel_exponential((2, 6, 3, 3))
    torch.manual_seed(11)
    r = torch.rand(3, dtype=torch.float64)
    u = torch.rand(3, 20)
    k = torch.floor(torch.cos(r * math.pi / 2) * 20).long().clamp(min=1)
    expect = torch.zeros(3, 20)
    for b in range(3):
        expect[b, u[b].argsort(descending=True)[: k[b]]] = 1
    assert torch.equal(mask, expect.view(3, 4, 5))
    assert torch.equal(e, torch.empty(2, 6, 3, 3).exponential_())
    # the straight-through decode with the default source is F.gumbel_softmax, bit for bit
    logits = torch.randn(2, 6, 3, 3, requires_grad=True)
    torch.manual_seed(12)
    ours = straight_through_gumbel(logits, TrainingNoise().gumbel_exponential(logits.shape))
    torch.manual_seed(12)
    theirs = F.gumbel_softmax(logits, tau=1.0, hard=True, dim=1)
    assert torch.equal(ours, theirs)
    assert torch.equal(
        *(torch.autograd.grad((y * torch.arange(6.0).view(1, 6, 1, 1)).sum(), logits)[0] for y in (ours, theirs))
    )
    assert torch.equal(
        sample_training_mask(2, 3, 3, generator=torch.Generator().manual_seed(1)),
        TrainingNoise.seeded(1).training_mask(2, 3, 3),
    )


def test_replayed_draws_give_the_mask_and_decodes_they_select(model):
    h = w = 4  # the tiny VQGAN's grid for a 32 x 32 GT
    n = h * w
    # image 0: cos(pi r / 2) * 16 = 5.5 -> 5 masked positions, those with the largest uniforms; image 1: r near 1
    # -> max(1, floor(0.025)) = 1 position
    rate = torch.tensor([2 / math.pi * math.acos(5.5 / n), 0.999], dtype=torch.float64)
    chosen = [[0, 3, 6, 9, 15], [7]]
    uniforms = torch.full((2, n), 0.25)
    for b, positions in enumerate(chosen):
        uniforms[b, positions] = torch.linspace(0.9, 0.5, len(positions))
    expect = torch.zeros(2, n)
    for b, positions in enumerate(chosen):
        expect[b, positions] = 1
    # Exp(1) samples that force every Gumbel decode onto one code: -log E = 60 there, 0 elsewhere
    codes = (3, 17)
    exps = []
    for code in codes:
        e = torch.ones(2, N_CODES, h, w)
        e[:, code] = math.exp(-60.0)
        exps.append(e)
    noise = ReplayNoise(rate, uniforms, exps)
    data = _data()
    log, _, keep = _step(model, noise, data)
    assert noise.exhausted
    assert torch.equal(1 - keep, expect.view(2, h, w))  # phi_r saw exactly the given mask
    gt = torch.stack([d.gt_img for d in data['data_samples']]) / 255
    decoded = [model.generator.vqgan.decode_indices(torch.full((2, h, w), c)) for c in codes]
    with torch.no_grad():
        assert float(log['loss_pix']) == pytest.approx(float((decoded[0] - gt).abs().mean()), rel=1e-5)
        both = (torch.cat(decoded) - torch.cat([gt, gt])).abs().mean()
    assert float(log['loss_perceptual']) == pytest.approx(float(both), rel=1e-5)


def test_mask_from_draws_rule_and_replay_refusals():
    rate = torch.tensor([0.0, 0.5], dtype=torch.float64)
    u = torch.arange(8.0).flip(0).repeat(2, 1)
    mask = mask_from_draws(rate, u, 2, 4)
    assert mask.dtype == torch.float32 and mask.shape == (2, 2, 4)
    assert mask[0].sum() == 8 and mask[1].sum() == math.floor(math.cos(math.pi / 4) * 8)
    assert torch.equal(mask[1].flatten()[:5], torch.ones(5))  # the largest uniforms come first
    with pytest.raises(InvalidInputError, match=r'mask uniforms of shape \(2, 8\), the step needs \(2, 9\)'):
        ReplayNoise(rate, u).training_mask(2, 3, 3)
    with pytest.raises(InvalidInputError, match='no Gumbel Exp\\(1\\) sample left'):
        ReplayNoise(rate, u).gumbel_exponential((2, 3))
    fallback = ReplayNoise(fallback=TrainingNoise.seeded(2))
    assert torch.equal(fallback.training_mask(2, 3, 3), TrainingNoise.seeded(2).training_mask(2, 3, 3))
