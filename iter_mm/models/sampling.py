"""Masking schedule, batch-invariant sampling and ITER's adaptive refinement (Algorithm 2).

One function per idea, shared by training and inference (reference sections 4.3, 6.2, 6.3, 8).
Token maps are int64 ``(B, h, w)``; keep/mask maps are float ``(B, h, w)`` with values 0/1.

Randomness at inference is *counter based*: every uniform number is a hash of
``(seed, step, draw kind, element index within the image)``, computed with exact integer tensor ops.
An image therefore draws the same numbers whatever its position in the batch and on any device;
a call needs one integer seed, given directly or drawn once from a ``torch.Generator``.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .archs.fast_ops import call_cache
from .cuda_graphs import GraphRunner, cuda_graphs_available, graph_runner
from .options import DEFAULTS as _DEFAULTS

__all__ = [
    'mask_schedule', 'keep_counts', 'adaptive_start_step', 'sample_training_mask', 'hash_uniform',
    'resolve_seed', 'derive_seeds', 'sample_tokens', 'sample_keep_mask', 'RefineResult', 'adaptive_refine',
    'DRAW_TOKEN', 'DRAW_KEEP'
]

SCHEDULES = ('cosine', 'linear')
DRAW_TOKEN = 1  # draw kind of the categorical token sample
DRAW_KEEP = 2  # draw kind of the keep-mask sample

_M32 = 0xFFFFFFFF
_MAX_ELEMS = 1 << 32  # element indices are hashed as 32-bit integers
SeedLike = Union[int, Tensor]


# ----------------------------------------------------------------------------- schedules
def mask_schedule(r: Union[float, Tensor], kind: str = 'cosine') -> Union[float, Tensor]:
    """Masked fraction gamma(r) for r in [0, 1]: 'cosine' cos(pi r / 2), 'linear' 1 - r (ref. 6.2, 8.6)."""
    if kind == 'cosine':
        return torch.cos(r * (math.pi / 2)) if isinstance(r, Tensor) else math.cos(r * math.pi / 2)
    if kind == 'linear':
        return 1 - r
    raise ValueError(f"unknown mask schedule {kind!r}; expected one of {SCHEDULES}")


def keep_counts(num_tokens: int, steps: int, kind: str = 'linear') -> Tensor:
    """Kept-token counts K_i = floor((1 - gamma(i / T)) N), i = 0..T-1, in float32 (ref. 6.2). -> (T,) int64."""
    if steps < 1:
        raise ValueError(f'steps must be >= 1, got {steps}')
    if num_tokens < 0:
        raise ValueError(f'num_tokens must be >= 0, got {num_tokens}')
    r = torch.arange(steps, dtype=torch.float32) / steps
    frac = 1 - mask_schedule(r, kind)
    return torch.floor(frac * torch.tensor(float(num_tokens), dtype=torch.float32)).long()


def adaptive_start_step(init_keep: Tensor, counts: Tensor) -> Tensor:
    """First executed step per image: smallest i with K_i >= init_keep[b]; T if none (all steps skipped).

    Args:
        init_keep: (B,) number of initially kept (good) tokens per image (ref. 6.2; per image, fixing 8.16).
        counts: (T,) keep counts K_i.
    Returns:
        (B,) int64 in [0, T].
    """
    counts = counts.to(init_keep.device)
    ge = counts.unsqueeze(0) >= init_keep.reshape(-1, 1).to(counts.dtype)
    first = ge.to(torch.int8).argmax(dim=1)
    return torch.where(ge.any(dim=1), first, torch.full_like(first, counts.numel()))


# ----------------------------------------------------------------------------- training mask
def sample_training_mask(batch: int, h: int, w: int, generator: Optional[torch.Generator] = None,
                         device: Optional[Union[str, torch.device]] = None) -> Tensor:
    """Random training mask (ref. 4.3): per image r ~ U[0, 1), k = max(1, floor(cos(pi r / 2) h w)) positions,
    chosen uniformly without replacement. -> (B, h, w) float, 1 = masked (to predict)."""
    gen_device = generator.device if generator is not None else torch.device('cpu')
    n = h * w
    r = torch.rand(batch, generator=generator, device=gen_device, dtype=torch.float64)
    k = torch.floor(mask_schedule(r, 'cosine') * n).long().clamp(min=1, max=n)
    noise = torch.rand(batch, n, generator=generator, device=gen_device)
    mask = _rank_desc(noise) < k.unsqueeze(1)
    return mask.to(device=device if device is not None else gen_device, dtype=torch.float32).view(batch, h, w)


def _rank_desc(scores: Tensor) -> Tensor:
    """Rank of every entry along dim 1 in descending order (0 = largest). (B, N) -> (B, N) int64."""
    order = scores.argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(scores.shape[1], device=scores.device).expand_as(order))
    return ranks


# ----------------------------------------------------------------------------- counter-based noise
def _mix32(x: Tensor) -> Tensor:
    """32-bit integer hash (xorshift-multiply; C. Wellons' low-bias constants), bijective on [0, 2^32).

    x: int64 in [0, 2^32). Both multipliers are < 2^31, so products stay below 2^63: no int64 overflow.
    Works in place on a fresh copy of ``x``.
    """
    x = x ^ (x >> 16)
    x.mul_(0x21F0AAAD).bitwise_and_(_M32)
    x.bitwise_xor_(x >> 15)
    x.mul_(0x735A2D97).bitwise_and_(_M32)
    return x.bitwise_xor_(x >> 15)


def _seed_keys(seeds: Tensor, step: int, kind: int) -> tuple[Tensor, Tensor]:
    """Two 32-bit keys per image from (seed, step, kind). seeds: (B,) int64 -> two (B, 1) int64."""
    lo = seeds & _M32
    hi = (seeds >> 32) & _M32
    k = _mix32(lo ^ _mix32(hi ^ 0x68E31DA4))
    k = _mix32(k ^ ((step * 0x9E3779B9) & _M32))
    k = _mix32(k ^ ((kind * 0x85EBCA6B + 0x1B56C4E9) & _M32))
    return k.unsqueeze(1), _mix32(k ^ 0x5BD1E995).unsqueeze(1)


def hash_uniform(seeds: Tensor, step: int, kind: int, shape: Sequence[int]) -> Tensor:
    """Counter-based uniform noise in the open interval (0, 1).

    Element j of image b is a pure function of (seeds[b], step, kind, j); integer ops are exact on every
    device, so only the device of ``seeds`` decides where it is computed, not what it is.

    Args:
        seeds: (B,) int64 seeds, one per image (equal seeds give equal noise).
        step, kind: small non-negative ints (refinement step and draw kind).
        shape: per-image shape, e.g. (C, h, w).
    Returns:
        (B, *shape) float32, odd multiples of 2^-24 (23 random bits; never 0 or 1).
    """
    numel = math.prod(shape)
    seeds = seeds.reshape(-1).to(torch.int64)
    return _uniform_range(_seed_keys(seeds, int(step), int(kind)), 0, numel, numel).view(seeds.numel(), *shape)


def _uniform_range(keys: tuple[Tensor, Tensor], start: int, count: int, numel: int) -> Tensor:
    """Elements [start, start + count) of the flattened :func:`hash_uniform` noise of ``numel`` elements per image.

    keys: the two (B, 1) keys of :func:`_seed_keys` -> (B, count) float32.
    """
    if numel >= _MAX_ELEMS:
        raise ValueError(f'{numel} noise elements per image exceed the 2^32 the hash supports; use tiling')
    k1, k2 = keys
    idx = torch.arange(start, start + count, device=k1.device, dtype=torch.int64).unsqueeze(0)
    x = _mix32(_mix32(idx ^ k1).bitwise_xor_(k2))
    return (x >> 9).mul_(2).add_(1).to(torch.float32).mul_(2.0 ** -24)  # (2k + 1) / 2^24, exact in fp32


#: noise elements per chunk of the CPU token sampler (int64 temporaries of 2 MiB stay in cache)
_TOKEN_CHUNK = 1 << 18


def resolve_seed(seed: Optional[int] = None, generator: Optional[torch.Generator] = None) -> int:
    """The call's integer seed: ``seed`` if given, else one draw from ``generator`` (else torch's default)."""
    if seed is not None:
        return int(seed)
    return int(torch.randint(0, 2 ** 62, (1,), generator=generator,
                             device=generator.device if generator is not None else 'cpu').item())


def derive_seeds(seed: int, keys: Tensor) -> Tensor:
    """Independent per-item seeds from one seed and integer keys (e.g. tile offsets). keys: (n, k) -> (n,) int64."""
    keys = keys.to(torch.int64)
    x = torch.full(keys.shape[:1], int(seed) & _M32, dtype=torch.int64, device=keys.device)
    for j in range(keys.shape[1]):
        x = _mix32(x ^ _mix32((keys[:, j] + 0x632BE5AB * (j + 1)) & _M32))
    return ((int(seed) >> 32) << 32) | x


def _as_seeds(seeds: SeedLike, batch: int, device: torch.device) -> Tensor:
    if isinstance(seeds, Tensor):
        seeds = seeds.reshape(-1).to(device=device, dtype=torch.int64)
        if seeds.numel() == 1:
            return seeds.expand(batch)
        if seeds.numel() != batch:
            raise ValueError(f'got {seeds.numel()} seeds for a batch of {batch}')
        return seeds
    return torch.full((batch,), int(seeds), dtype=torch.int64, device=device)


def _gumbel(u: Tensor) -> Tensor:
    return u.log_().neg_().log_().neg_()


# ----------------------------------------------------------------------------- sampling
def sample_tokens(logits: Tensor, temperature: float, seeds: SeedLike, step: int) -> Tensor:
    """Categorical sample of every token by Gumbel-max on logits / temperature (ref. 6.2 step 5.2).

    Args:
        logits: (B, C, h, w) token logits (cast to fp32).
        temperature: > 0; 0 means argmax (no noise).
        seeds: int or (B,) int64 per-image seeds.
        step: refinement step index (selects an independent stream).
    Returns:
        (B, h, w) int64 token map.
    """
    if temperature < 0:
        raise ValueError(f'token temperature must be >= 0, got {temperature}')
    logits = logits.float()
    if temperature == 0:
        return logits.argmax(dim=1)
    b, c, h, w = logits.shape
    keys = _seed_keys(_as_seeds(seeds, b, logits.device), int(step), DRAW_TOKEN)
    hw = h * w
    # argmax over codes of gumbel + logits / T, a block of codes at a time on a single CPU thread (the int64 hash
    # temporaries stay in cache: ~2x faster); the same numbers and the first maximum as one pass over all codes.
    # With more threads one pass: fewer ops, and many small ops stall when other jobs share the cores.
    single = logits.device.type == 'cpu' and torch.get_num_threads() == 1
    per = max(1, _TOKEN_CHUNK // max(1, b * hw)) if single else c
    best_val = best_idx = None
    for c0 in range(0, c, per):
        n = min(per, c - c0)
        g = _gumbel(_uniform_range(keys, c0 * hw, n * hw, c * hw).view(b, n, h, w))
        val, idx = g.add_(logits[:, c0:c0 + n] / temperature).max(dim=1)
        if best_val is None:
            best_val, best_idx = val, idx
            continue
        better = (val > best_val) | (val.isnan() & ~best_val.isnan())  # argmax: first maximum, NaN wins
        best_val = torch.where(better, val, best_val)
        best_idx = torch.where(better, idx + c0, best_idx)
    return best_idx


def sample_keep_mask(eval_logits: Tensor, keep: Tensor, target: Union[int, Tensor], temperature: float,
                     seeds: SeedLike, step: int) -> Tensor:
    """Grow the keep-mask to ``target`` tokens, drawing new positions without replacement (ref. 6.3).

    New positions are a Gumbel-top-k draw on log P_good over the positions not yet kept, i.e. sampling
    without replacement proportional to P_good. Each image adds k_new = max(1, target - kept_b) positions
    (its own count, fixing 8.16; capped by the free positions), and a kept position is never re-picked (8.17).

    Args:
        eval_logits: (B, 2, h, w) phi_e logits; channel 1 = good.
        keep: (B, h, w) current keep-mask (0/1).
        target: K_i, int or (B,) tensor.
        temperature: > 0 softmax temperature of phi_e; 0 means take the most probable positions.
        seeds, step: as in :func:`sample_tokens`.
    Returns:
        (B, h, w) float keep-mask, ``keep`` plus the new positions.
    """
    if temperature < 0:
        raise ValueError(f'mask temperature must be >= 0, got {temperature}')
    b, _, h, w = eval_logits.shape
    logits = eval_logits.float()
    log_p = F.log_softmax(logits / temperature if temperature > 0 else logits, dim=1)[:, 1].reshape(b, -1)
    kept = keep.reshape(b, -1) > 0.5
    if temperature > 0:
        log_p = log_p + _gumbel(hash_uniform(_as_seeds(seeds, b, logits.device), step, DRAW_KEEP, (h * w, )))
    scores = log_p.masked_fill(kept, float('-inf'))
    n_kept = kept.sum(dim=1)
    target = torch.as_tensor(target, device=logits.device).reshape(-1)
    k_new = torch.minimum((target - n_kept).clamp(min=1), h * w - n_kept)
    new = _rank_desc(scores) < k_new.unsqueeze(1)
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


def adaptive_refine(net, lq: Tensor, alpha: float = _DEFAULTS.alpha, steps: int = _DEFAULTS.steps,
                    token_temperature: float = _DEFAULTS.token_temperature,
                    mask_temperature: float = _DEFAULTS.mask_temperature, schedule: str = _DEFAULTS.schedule,
                    generator: Optional[torch.Generator] = None, seed: Optional[SeedLike] = None,
                    return_intermediates: bool = False, cuda_graphs: bool = _DEFAULTS.cuda_graphs,
                    progress: Optional[Callable[[int, int], None]] = None) -> RefineResult:
    """ITER's adaptive iterative refinement, as the authors run it (ref. 6.2-6.3), per image.

    S_l = argmax E_l(lq); m_s = [P_good(S_l) >= alpha]; an image starts at the first step whose keep count
    reaches sum(m_s). At its first step keep = m_s, later the keep-mask grows to K_i by sampling on phi_e of
    the previous sample; phi_r sees (S_l, flag 1 - m_s) and (sample * keep, flag 1 - keep) and every position
    is resampled. Images that skip every step output D(S_l).

    Networks run only on images that need them; the only host sync is one read of the start steps.

    Args:
        net: ITERNet-like module with ``lq_encoder``, ``evaluator``, ``refiner`` and ``vqgan.decode_indices``.
        lq: (B, 3, h_lq, w_lq) in [0, 1], already padded so the token grid fits the networks.
        seed / generator: the call's seed (or a (B,) int64 tensor of per-image seeds), or a generator to
            draw it from (see :func:`resolve_seed`).
        cuda_graphs: on a CUDA device, every network call runs as a CUDA graph captured once per input signature
            and kept with ``net`` (:mod:`.cuda_graphs`); no effect elsewhere.
        progress: called as ``progress(i + 1, steps)`` after every step i (skipped ones too; no host sync).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'alpha must be in [0, 1], got {alpha}')
    if steps < 1:
        raise ValueError(f'steps must be >= 1, got {steps}')
    graphs = graph_runner(net) if cuda_graphs and cuda_graphs_available(lq.device) else None
    # the weights do not change during the call: weight-only values computed once
    with call_cache(), (graphs.fixed_weights() if graphs else contextlib.nullcontext()):
        return _adaptive_refine(net, lq, alpha, steps, token_temperature, mask_temperature, schedule, generator,
                                seed, return_intermediates, graphs, progress)


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


def _adaptive_refine(net, lq: Tensor, alpha: float, steps: int, token_temperature: float, mask_temperature: float,
                     schedule: str, generator: Optional[torch.Generator], seed: Optional[SeedLike],
                     return_intermediates: bool, graphs: Optional[GraphRunner] = None,
                     progress: Optional[Callable[[int, int], None]] = None) -> RefineResult:
    calls = _Calls(net, graphs)
    b = lq.shape[0]
    device = lq.device
    seeds = _as_seeds(seed if isinstance(seed, Tensor) else resolve_seed(seed, generator), b, device)

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
            if i > first:  # grow keep for images that ran step i - 1 (ref. 6.3); newcomers keep m_s
                pidx = rows[i - 1]
                new_keep = sample_keep_mask(eval_logits, _rows(keep, pidx), counts[i], mask_temperature,
                                            _rows(seeds, pidx), i)
                keep = _put_rows(keep, pidx, new_keep)
            cond_a = _rows(lq_tokens, idx)
            logits = calls.refiner(cond_a, _rows(cond_flag, idx), _rows(tokens, idx), _rows(keep, idx))
            new_tokens = sample_tokens(logits, token_temperature, _rows(seeds, idx), i)
            del logits
            tokens = _put_rows(tokens, idx, new_tokens)
            if i < steps - 1:  # phi_e after the last step is not needed (ref. 8.21)
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
