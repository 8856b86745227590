"""Inference sampling of ITER: categorical token draws, keep-mask growth and the adaptive refinement (Algorithm 2).

Token maps are int64 ``(B, h, w)``; keep/mask maps are float ``(B, h, w)`` with values 0/1. The noise is
counter based (:mod:`.counter_noise`): an image draws the same numbers whatever its position in the batch and on
any device. The schedule and the top-k choice are in :mod:`.masking`, the training draws in
:mod:`.training_noise`; the names this module held before are importable from here too.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .archs.fast_ops import call_cache
from .counter_noise import (
    DRAW_KEEP,
    DRAW_TOKEN,
    SeedLike,
    as_seeds,
    derive_seeds,
    gumbel_,
    hash_uniform,
    resolve_seed,
    seed_keys,
    uniform_range,
)
from .cuda_graphs import GraphRunner, cuda_graphs_available, graph_runner
from .masking import SCHEDULES, adaptive_start_step, keep_counts, mask_schedule, top_k_mask
from .options import DEFAULTS as _DEFAULTS
from .training_noise import sample_training_mask

__all__ = [
    'sample_tokens',
    'sample_keep_mask',
    'RefineResult',
    'adaptive_refine',
    # re-exported from .masking, .counter_noise and .training_noise
    'SCHEDULES',
    'mask_schedule',
    'keep_counts',
    'adaptive_start_step',
    'hash_uniform',
    'resolve_seed',
    'derive_seeds',
    'DRAW_TOKEN',
    'DRAW_KEEP',
    'sample_training_mask',
]

#: noise elements per chunk of the CPU token sampler (int64 temporaries of 2 MiB stay in cache)
_TOKEN_CHUNK = 1 << 18


# ----------------------------------------------------------------------------- sampling
def sample_tokens(logits: Tensor, temperature: float, seeds: SeedLike, step: int) -> Tensor:
    """Categorical sample of every token by Gumbel-max on logits / temperature.

    docs/faithfulness.md#adaptive-start step 5.2.

    Args:
        logits (Tensor): (B, C, h, w) token logits (cast to fp32).
        temperature (float): >= 0; 0 means argmax (no noise).
        seeds (int | Tensor): int or (B,) int64 per-image seeds.
        step (int): refinement step index (selects an independent stream).

    Returns:
        Tensor: (B, h, w) int64 token map.

    Raises:
        ValueError: ``temperature`` < 0.
    """
    if temperature < 0:
        raise ValueError(f'token temperature must be >= 0, got {temperature}')
    logits = logits.float()
    if temperature == 0:
        return logits.argmax(dim=1)
    b, c, h, w = logits.shape
    keys = seed_keys(as_seeds(seeds, b, logits.device), int(step), DRAW_TOKEN)
    hw = h * w
    # argmax over codes of gumbel + logits / T, a block of codes at a time on a single CPU thread (the int64 hash
    # temporaries stay in cache: ~2x faster); the same numbers and the first maximum as one pass over all codes.
    # With more threads one pass: fewer ops, and many small ops stall when other jobs share the cores.
    single = logits.device.type == 'cpu' and torch.get_num_threads() == 1
    per = max(1, _TOKEN_CHUNK // max(1, b * hw)) if single else c
    best_val = best_idx = None
    for c0 in range(0, c, per):
        n = min(per, c - c0)
        g = gumbel_(uniform_range(keys, c0 * hw, n * hw, c * hw).view(b, n, h, w))
        val, idx = g.add_(logits[:, c0 : c0 + n] / temperature).max(dim=1)
        if best_val is None:
            best_val, best_idx = val, idx
            continue
        better = (val > best_val) | (val.isnan() & ~best_val.isnan())  # argmax: first maximum, NaN wins
        best_val = torch.where(better, val, best_val)
        best_idx = torch.where(better, idx + c0, best_idx)
    return best_idx


def sample_keep_mask(
    eval_logits: Tensor, keep: Tensor, target: Union[int, Tensor], temperature: float, seeds: SeedLike, step: int
) -> Tensor:
    """Grow the keep-mask to ``target`` tokens, drawing new positions without replacement.

    New positions are a Gumbel-top-k draw on log P_good over the positions not yet kept, i.e. sampling
    without replacement proportional to P_good (docs/faithfulness.md#keep-mask-resampling). Each image adds
    k_new = max(1, target - kept_b) positions (its own count, fixing docs/faithfulness.md#batch-invariant-inference;
    capped by the free positions), and a kept position is never re-picked (docs/faithfulness.md#keep-mask-resampling).

    Args:
        eval_logits (Tensor): (B, 2, h, w) phi_e logits; channel 1 = good.
        keep (Tensor): (B, h, w) current keep-mask (0/1).
        target (int | Tensor): K_i, int or (B,) tensor.
        temperature (float): >= 0 softmax temperature of phi_e; 0 means take the most probable positions.
        seeds (int | Tensor): as in :func:`sample_tokens`.
        step (int): as in :func:`sample_tokens`.

    Returns:
        Tensor: (B, h, w) float keep-mask, ``keep`` plus the new positions.

    Raises:
        ValueError: ``temperature`` < 0.
    """
    if temperature < 0:
        raise ValueError(f'mask temperature must be >= 0, got {temperature}')
    b, _, h, w = eval_logits.shape
    logits = eval_logits.float()
    log_p = F.log_softmax(logits / temperature if temperature > 0 else logits, dim=1)[:, 1].reshape(b, -1)
    kept = keep.reshape(b, -1) > 0.5
    if temperature > 0:
        log_p = log_p + gumbel_(hash_uniform(as_seeds(seeds, b, logits.device), step, DRAW_KEEP, (h * w,)))
    scores = log_p.masked_fill(kept, float('-inf'))
    n_kept = kept.sum(dim=1)
    target = torch.as_tensor(target, device=logits.device).reshape(-1)
    k_new = torch.minimum((target - n_kept).clamp(min=1), h * w - n_kept)
    new = top_k_mask(scores, k_new)
    return (kept | new).to(keep.dtype if keep.is_floating_point() else torch.float32).view(b, h, w)


# ----------------------------------------------------------------------------- Algorithm 2
@dataclass
class RefineResult:
    """Output of :func:`adaptive_refine` (token grid h x w, image H = 8h x W = 8w).

    image: (B, 3, H, W) decoded final tokens in [0, 1].
    tokens: (B, h, w) final tokens. lq_tokens: (B, h, w) S_l = argmax E_l(lq).
    good_prob: (B, h, w) phi_e's P(good) of S_l. start_step: (B,) first executed step (T = none executed).
    step_tokens / step_keep: (B, T, h, w) state after / keep-mask used at every step (skipped steps: S_l / m_s),
    step_images: (B, T, 3, H, W) decoded step_tokens; all three only with ``return_intermediates``.
    Tiled restoration (``restore_image``) fills only ``image``: token maps of tiles are not stitched.
    """

    image: Tensor
    tokens: Optional[Tensor] = None
    lq_tokens: Optional[Tensor] = None
    good_prob: Optional[Tensor] = None
    start_step: Optional[Tensor] = None
    step_tokens: Optional[Tensor] = None
    step_keep: Optional[Tensor] = None
    step_images: Optional[Tensor] = None


def _full_precision(device_type: str):
    """Autocast off for ``device_type`` when it is on (a no-op context otherwise)."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def _rows(t: Tensor, idx: Optional[Tensor]) -> Tensor:
    return t if idx is None else t.index_select(0, idx)


def _put_rows(dst: Tensor, idx: Optional[Tensor], src: Tensor) -> Tensor:
    return src if idx is None else dst.index_copy(0, idx, src)


def adaptive_refine(
    net,
    lq: Tensor,
    alpha: float = _DEFAULTS.alpha,
    steps: int = _DEFAULTS.steps,
    token_temperature: float = _DEFAULTS.token_temperature,
    mask_temperature: float = _DEFAULTS.mask_temperature,
    schedule: str = _DEFAULTS.schedule,
    generator: Optional[torch.Generator] = None,
    seed: Optional[SeedLike] = None,
    return_intermediates: bool = False,
    cuda_graphs: bool = _DEFAULTS.cuda_graphs,
    progress: Optional[Callable[[int, int], None]] = None,
) -> RefineResult:
    """ITER's adaptive iterative refinement, as the authors run it (docs/faithfulness.md#adaptive-inference), per image.

    S_l = argmax E_l(lq); m_s = [P_good(S_l) >= alpha]; an image starts at the first step whose keep count
    reaches sum(m_s). At its first step keep = m_s, later the keep-mask grows to K_i by sampling on phi_e of
    the previous sample; phi_r sees (S_l, flag 1 - m_s) and (sample * keep, flag 1 - keep) and every position
    is resampled. Images that skip every step output D(S_l).

    Networks run only on images that need them; the only host sync is one read of the start steps.

    Args:
        net (nn.Module): ITERNet-like module with ``lq_encoder``, ``evaluator``, ``refiner`` and
            ``vqgan.decode_indices``.
        lq (Tensor): (B, 3, h_lq, w_lq) in [0, 1], already padded so the token grid fits the networks.
        alpha (float): phi_e threshold in [0, 1] of the start mask m_s. Default: 0.7.
        steps (int): refinement steps T, >= 1. Default: 8.
        token_temperature (float): temperature of the token sampling (0: argmax). Default: 1.0.
        mask_temperature (float): temperature of the keep-mask sampling (0: deterministic). Default: 1.0.
        schedule (str): mask schedule, 'cosine' or 'linear'. Default: 'linear'.
        generator (torch.Generator, optional): source of the call's seed when ``seed`` is None (see
            :func:`resolve_seed`). Default: None.
        seed (int | Tensor, optional): the call's seed, or a (B,) int64 tensor of per-image seeds. Default: None.
        return_intermediates (bool): also fill ``step_tokens``, ``step_keep`` and ``step_images``. Default: False.
        cuda_graphs (bool): on a CUDA device, every network call runs as a CUDA graph captured once per input
            signature and kept with ``net`` (:mod:`.cuda_graphs`); no effect elsewhere. Default: False.
        progress (callable, optional): called as ``progress(i + 1, steps)`` after every step i (skipped ones too; no
            host sync). Default: None.

    Returns:
        RefineResult: ``image`` (B, 3, 8h, 8w) in [0, 1] for the token grid (h, w), the token maps, ``good_prob`` and
        the start steps.

    Raises:
        ValueError: ``alpha`` outside [0, 1] or ``steps`` < 1.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'alpha must be in [0, 1], got {alpha}')
    if steps < 1:
        raise ValueError(f'steps must be >= 1, got {steps}')
    graphs = graph_runner(net) if cuda_graphs and cuda_graphs_available(lq.device) else None
    # the weights do not change during the call: weight-only values computed once
    with call_cache(), graphs.fixed_weights() if graphs else contextlib.nullcontext():
        return _adaptive_refine(
            net,
            lq,
            alpha,
            steps,
            token_temperature,
            mask_temperature,
            schedule,
            generator,
            seed,
            return_intermediates,
            graphs,
            progress,
        )


class _Calls:
    """The four network calls of a refinement, eager or through a :class:`~.cuda_graphs.GraphRunner`."""

    def __init__(self, net, graphs: Optional[GraphRunner]) -> None:
        self.net, self.graphs = net, graphs

    def _run(self, module, fn, *inputs: Tensor) -> Tensor:
        return fn(*inputs) if self.graphs is None else self.graphs(module, fn, *inputs)

    def lq_encoder(self, lq: Tensor) -> Tensor:
        return self._run(self.net.lq_encoder, self.net.lq_encoder, lq)

    def evaluator(self, tokens: Tensor, cond: Tensor) -> Tensor:
        return self._run(self.net.evaluator, self.net.evaluator, tokens, cond)

    def refiner(self, cond: Tensor, cond_flag: Tensor, tokens: Tensor, keep: Tensor) -> Tensor:
        return self._run(self.net.refiner, self.net.refiner, cond, cond_flag, tokens, keep)

    def decode(self, tokens: Tensor) -> Tensor:
        return self._run(self.net.vqgan, self.net.vqgan.decode_indices, tokens)


def _adaptive_refine(
    net,
    lq: Tensor,
    alpha: float,
    steps: int,
    token_temperature: float,
    mask_temperature: float,
    schedule: str,
    generator: Optional[torch.Generator],
    seed: Optional[SeedLike],
    return_intermediates: bool,
    graphs: Optional[GraphRunner] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> RefineResult:
    calls = _Calls(net, graphs)
    b = lq.shape[0]
    device = lq.device
    seeds = as_seeds(seed if isinstance(seed, Tensor) else resolve_seed(seed, generator), b, device)

    with _full_precision(lq.device.type):  # S_l conditions every later step: E_l in fp32 also under autocast
        lq_tokens = calls.lq_encoder(lq.float()).argmax(dim=1)  # S_l, (B, h, w)
    _, h, w = lq_tokens.shape
    good_prob = F.softmax(calls.evaluator(lq_tokens, lq_tokens).float(), dim=1)[:, 1]
    init_keep = (good_prob >= alpha).float()  # m_s
    counts = keep_counts(h * w, steps, schedule).to(device)
    start = adaptive_start_step(init_keep.sum(dim=(1, 2)), counts)
    start_host = start.tolist()  # the one host sync
    first = min(start_host)

    # rows of the images that run step i (start <= i), built before the loop: no host-device traffic inside
    rows = {i: [j for j in range(b) if start_host[j] <= i] for i in range(first, steps)}
    rows = {i: None if len(r) == b else torch.tensor(r, device=device) for i, r in rows.items()}

    cond_flag = 1.0 - init_keep
    tokens, keep = lq_tokens, init_keep
    eval_logits = None  # phi_e of the previous sample, rows of the images that ran the previous step
    step_tokens, step_keep = [], []
    for i in range(steps):
        if i >= first:
            idx = rows[i]
            if i > first:  # grow keep for images that ran step i - 1 (docs/faithfulness.md#keep-mask-resampling);
                # newcomers keep m_s
                pidx = rows[i - 1]
                new_keep = sample_keep_mask(
                    eval_logits, _rows(keep, pidx), counts[i], mask_temperature, _rows(seeds, pidx), i
                )
                keep = _put_rows(keep, pidx, new_keep)
            cond_a = _rows(lq_tokens, idx)
            logits = calls.refiner(cond_a, _rows(cond_flag, idx), _rows(tokens, idx), _rows(keep, idx))
            new_tokens = sample_tokens(logits, token_temperature, _rows(seeds, idx), i)
            del logits
            tokens = _put_rows(tokens, idx, new_tokens)
            if i < steps - 1:  # phi_e after the last step is not needed (docs/faithfulness.md#phi-e-calls)
                eval_logits = calls.evaluator(new_tokens, cond_a)
        if return_intermediates:
            step_tokens.append(tokens)
            step_keep.append(keep)
        if progress is not None:
            progress(i + 1, steps)

    result = RefineResult(calls.decode(tokens), tokens, lq_tokens, good_prob, start)
    if return_intermediates:
        result.step_tokens = torch.stack(step_tokens, dim=1)
        result.step_keep = torch.stack(step_keep, dim=1)
        result.step_images = torch.stack([calls.decode(t) for t in step_tokens], dim=1)
    return result
