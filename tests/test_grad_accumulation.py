"""Gradient accumulation as the authors run it, made by MMEngine's ``optim_wrapper.accumulative_counts`` (float64).

The authors train with accelerate and ``gradient_accumulation_steps: 4``: each micro-batch loss is divided by 4
and backpropagated, and the optimizer steps once per 4 micro-batches. MMEngine's ``OptimWrapper`` with
``accumulative_counts=4`` must make the same update from 4 ``train_step`` calls.

That update is not the one of a single batch 4x as large: ``ClassBalancedCELoss`` (phi_e's loss on S_l, Eq. 9)
weights its classes by the counts of its own batch, i.e. of each micro-batch under accumulation (as in the
authors' code). Every other term is a mean over images and positions, so with equal class weights (beta = 0)
the two updates agree; with the paper's beta = 0.9999 phi_e's update differs and E_l's and phi_r's do not.
"""

import copy
from typing import Dict, List

import pytest
import torch
from iter_model_helpers import (  # noqa: F401  (fixtures: one_thread, stage1_ckpt)
    build,
    down4,
    one_thread,
    samples,
    stage1_ckpt,
    textures,
)
from mmengine.optim import build_optim_wrapper

from iter_mm.models.editors import iter_model as im
from iter_mm.models.training_noise import TrainingNoise

ACCUM = 4
MICRO = 2  # images per micro-batch
GT = 32  # GT side (LQ 8, token grid 4 x 4)
LR = 0.5


@pytest.fixture
def float64(monkeypatch):
    """Everything in float64: iter-mm casts some inputs with ``.float()`` (CE, Gumbel); keep those in float64 too,
    so that sums over differently grouped images agree to rounding (~1e-15) instead of float32's ~1e-7."""
    monkeypatch.setattr(
        torch.Tensor,
        'float',
        lambda self, memory_format=torch.preserve_format: self.to(torch.float64, memory_format=memory_format),
    )


def make_model(stage1_ckpt, beta: float = 0.9999) -> im.ITERModel:
    """Tiny ITER with every loss term (L1 stands in for LPIPS), float64, trained-like VQGAN from ``stage1_ckpt``."""
    model = build(
        str(stage1_ckpt),
        eval_lq_loss=dict(type='ClassBalancedCELoss', beta=beta),
        pixel_loss=dict(type='L1Loss'),
        perceptual_loss=dict(type='L1Loss'),
    )
    model.init_weights()
    model.double().train()
    return model


def micro_batches(seed: int = 0) -> List[dict]:
    gt = textures(ACCUM * MICRO, GT, seed=seed).double()
    data = []
    for k in range(ACCUM):
        g = gt[k * MICRO : (k + 1) * MICRO]
        data.append(dict(inputs=[x * 255 for x in down4(g)], data_samples=[samples(x * 255) for x in g]))
    return data


def total_loss(model: im.ITERModel, data: dict) -> torch.Tensor:
    """Sum of the ``loss_*`` terms of one batch (what the authors backpropagate)."""
    data = model.data_preprocessor(data, True)
    losses = model(**data, mode='loss')
    return sum(v for k, v in losses.items() if k.startswith('loss'))


def params(model) -> Dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad}


def rel_diff(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor], prefix: str = '') -> float:
    """Largest difference of a tensor of ``a`` and ``b`` (names starting with ``prefix``), relative to the largest
    tensor of ``b`` there (a conv bias before a one-channel GroupNorm has an analytically zero gradient)."""
    keys = [k for k in a if k.startswith(prefix)]
    return max(float((a[k] - b[k]).norm()) for k in keys) / max(float(b[k].norm()) for k in keys)


def update(before, after) -> Dict[str, torch.Tensor]:
    return {k: after[k] - before[k] for k in before}


@pytest.mark.parametrize('optimizer', [dict(type='SGD', lr=LR), dict(type='Adam', lr=1e-3, betas=(0.9, 0.99))])
def test_accumulative_counts_make_the_authors_update(stage1_ckpt, float64, optimizer):
    """4 train_steps with accumulative_counts=4 == four micro-batch losses each / 4, backward, one step."""
    model = make_model(stage1_ckpt)
    ref = copy.deepcopy(model)
    data = micro_batches()
    start = params(model)

    # by hand: the authors' accelerate rule; the same global seed before each micro-batch gives both sides the
    # same masks and Gumbel noise
    opt = build_optim_wrapper(ref, dict(optimizer=optimizer)).optimizer
    opt.zero_grad()
    for k, batch in enumerate(data):
        torch.manual_seed(k)
        (total_loss(ref, batch) / ACCUM).backward()
    opt.step()
    expect = params(ref)

    wrapper = build_optim_wrapper(model, dict(optimizer=optimizer, accumulative_counts=ACCUM))
    wrapper.initialize_count_status(model, 0, ACCUM)  # as MMEngine's train loop does
    for k, batch in enumerate(data):
        torch.manual_seed(k)
        model.train_step(batch, wrapper)
        if k < ACCUM - 1:  # accumulating: no update yet
            assert rel_diff(params(model), start) == 0.0
    got = params(model)
    assert rel_diff(update(start, got), update(start, expect)) < 1e-12
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())  # zeroed after the step
    if optimizer['type'] == 'SGD':  # the division by 4 matters (Adam is nearly scale-invariant)
        assert rel_diff(update(start, got), {k: ACCUM * v for k, v in update(start, expect).items()}) > 0.5


class FixedDraws(TrainingNoise):
    """The training draws of forward_train (the mask, E_l's and phi_r's Gumbel noise) through ITERModel's noise seam,
    in the order it takes them: made on first use and kept (``replay=False``), or handed out from a list
    (``replay=True``). ``joined()`` replays the draws of ``n`` micro-batches as those of one batch n times as large,
    image by image."""

    def __init__(self, seed: int = 0, masks=None, noise=None) -> None:
        super().__init__()
        self.gen = torch.Generator().manual_seed(seed)
        self.replay = masks is not None
        self.masks, self.noise = list(masks or []), list(noise or [])
        self.used = [0, 0]

    def joined(self) -> 'FixedDraws':
        return FixedDraws(
            masks=[torch.cat(self.masks)], noise=[torch.cat(self.noise[0::2]), torch.cat(self.noise[1::2])]
        )

    def training_mask(self, batch, h, w, device=None):
        if not self.replay:
            m = (torch.rand(batch, h * w, generator=self.gen) < 0.6).float()
            m[:, 0] = 1.0  # at least one masked position per image
            self.masks.append(m.view(batch, h, w))
        m = self.masks[self.used[0]]
        self.used[0] += 1
        assert m.shape == (batch, h, w)
        return m.to(device) if device is not None else m

    def gumbel_exponential(self, shape, dtype=torch.float32, device=None):
        """E ~ Exp(1) of one straight-through Gumbel decode (the noise is -log E), stored or replayed."""
        if not self.replay:
            self.noise.append(torch.empty(tuple(shape), dtype=torch.float64).exponential_(generator=self.gen))
        e = self.noise[self.used[1]]
        self.used[1] += 1
        assert tuple(e.shape) == tuple(shape)
        return e.to(dtype=dtype, device=device) if device is not None else e.to(dtype)

    def install(self, model) -> None:
        """Make ``model`` take its draws from here (``all_used`` tells whether it did)."""
        model.train_noise = self

    def all_used(self) -> bool:
        return self.used == [len(self.masks), len(self.noise)] and len(self.noise) == 2 * len(self.masks) > 0


def accumulated_and_joined(stage1_ckpt, beta: float):
    """(start, accumulated update, one-4x-batch update) of the same images with the same draws (SGD)."""
    model = make_model(stage1_ckpt, beta)
    joined = copy.deepcopy(model)
    data = micro_batches()
    start = params(model)
    draws = FixedDraws()

    draws.install(model)
    wrapper = build_optim_wrapper(model, dict(optimizer=dict(type='SGD', lr=LR), accumulative_counts=ACCUM))
    wrapper.initialize_count_status(model, 0, ACCUM)
    for batch in data:
        model.train_step(batch, wrapper)
    assert draws.all_used()

    big = dict(inputs=sum((b['inputs'] for b in data), []), data_samples=sum((b['data_samples'] for b in data), []))
    one = draws.joined()
    one.install(joined)
    joined.train_step(big, build_optim_wrapper(joined, dict(optimizer=dict(type='SGD', lr=LR))))
    assert one.all_used()
    return update(start, params(model)), update(start, params(joined))


def test_one_4x_batch_equals_accumulation_only_without_class_balancing(stage1_ckpt, float64):
    """beta = 0 (equal class weights): one 4x batch == 4 accumulated micro-batches. beta = 0.9999 (paper): the
    class-balanced weights come from each micro-batch's counts, so phi_e's update differs; E_l and phi_r agree."""
    acc, one = accumulated_and_joined(stage1_ckpt, beta=0.0)
    assert rel_diff(acc, one) < 1e-12
    acc, one = accumulated_and_joined(stage1_ckpt, beta=0.9999)
    assert rel_diff(acc, one, 'generator.evaluator.') > 1e-3
    for part in ('generator.lq_encoder.', 'generator.refiner.'):
        assert rel_diff(acc, one, part) < 1e-12, part
