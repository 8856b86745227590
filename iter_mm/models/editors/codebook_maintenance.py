"""Training-time care of a VQ codebook: initialisation from encoder outputs and dead-code restarts.

Used by :class:`SwinVQGANModel` (option ``codebook_maintenance``); none of it is part of the networks, which keep
their state-dict keys (the authors' checkpoints load strictly) and hold no extra buffers.

Why: with the released initialisation (codes uniform in +-1/K, docs/faithfulness.md#initialisation) and nearest-code
assignment, the
encoder's outputs lie far outside the tiny initial codebook, so only the few codes nearest to the data are ever
selected and updated; the others never receive a gradient and stay dead (the measured collapse of the small
configs: ~7 of 128 codes). Two classic remedies, both deterministic across processes:

* ``init``: at iteration ``init_iter`` the codebook is set from encoder outputs of the current batch, gathered
  from every process: ``'sample'`` = distinct random latents, ``'kmeans'`` = k-means (Lloyd) centres from k-means++
  seeds. Fewer latents than codes: latents are reused with small noise.
* restarts: usage is counted every iteration (summed over processes); every ``restart_interval`` iterations the
  codes used fewer than ``restart_min_count`` times in that window are moved onto random encoder outputs of the
  current batch (plus noise of ``restart_noise`` x their std) until ``restart_until`` (fraction of ``max_iters``
  or an iteration; None = always).

Every codebook rewrite is computed on rank 0 with a generator seeded by (seed, iteration) and broadcast, so all
processes hold identical weights. The bookkeeping (initialised flag, window counts, restart totals) is a plain
dict mirrored into MMEngine's message hub (``runtime_info``, resumed), which the Runner saves in every checkpoint
and restores on ``--resume``: an interrupted run continues with the same window counts.
"""

from typing import Dict, Optional

import torch
from mmengine import dist
from mmengine.logging import MessageHub
from torch import Tensor

from ...errors import InvalidOptionError

#: message-hub key of the bookkeeping dict
INFO_KEY = 'codebook_maintenance'


def flat_latents(z: Tensor) -> Tensor:
    """Channel-last rows of a latent map, the vectors the quantizer assigns (detached).

    Args:
        z (Tensor): (B, C, h, w).

    Returns:
        Tensor: (B * h * w, C).
    """
    return z.detach().permute(0, 2, 3, 1).reshape(-1, z.shape[1])


def sample_rows(latents: Tensor, k: int, generator: torch.Generator, noise: float = 0.0) -> Tensor:
    """k rows of ``latents``: distinct when N >= k, else reused; plus Gaussian noise of ``noise`` x the
    per-channel std (at least 0.01 x on reused rows, so that no two codes are equal).

    Args:
        latents (Tensor): (N, C).
        k (int): rows to draw.
        generator (torch.Generator): CPU generator of the draws.
        noise (float): noise scale in units of the per-channel std. Default: 0.0.

    Returns:
        Tensor: (k, C).
    """
    n = latents.shape[0]
    if n >= k:
        idx = torch.randperm(n, generator=generator)[:k]
    else:
        idx = torch.cat([torch.randperm(n, generator=generator), torch.randint(n, (k - n,), generator=generator)])
    rows = latents[idx].clone()
    std = latents.std(0, keepdim=True) if n > 1 else latents.abs().mean().expand(1, latents.shape[1])
    scale = torch.full((k, 1), float(noise))
    if n < k:
        scale[n:] = max(float(noise), 0.01)
    if scale.max() > 0:
        rows += torch.randn(rows.shape, generator=generator) * std * scale
    return rows


def kmeans_pp_seeds(latents: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """k-means++ seeding: each next centre is a latent drawn with probability proportional to its squared
    distance to the nearest centre so far. N <= k latents: :func:`sample_rows` (all, reused with noise if N < k).

    Args:
        latents (Tensor): (N, C).
        k (int): centres.
        generator (torch.Generator): CPU generator of the draws.

    Returns:
        Tensor: (k, C).
    """
    n = latents.shape[0]
    if n <= k:
        return sample_rows(latents, k, generator)
    first = int(torch.randint(n, (1,), generator=generator))
    chosen = [first]
    d2 = (latents - latents[first]).pow(2).sum(1)
    for _ in range(k - 1):
        total = d2.sum()
        if total <= 0:  # every latent is already a centre: fill with distinct random rows
            rest = torch.randperm(n, generator=generator)
            rest = rest[~torch.isin(rest, torch.tensor(chosen))][: k - len(chosen)]
            chosen += rest.tolist()
            break
        nxt = int(torch.multinomial(d2 / total, 1, generator=generator))
        chosen.append(nxt)
        d2 = torch.minimum(d2, (latents - latents[nxt]).pow(2).sum(1))
    return latents[torch.tensor(chosen)].clone()


def kmeans(latents: Tensor, k: int, iters: int, generator: torch.Generator) -> Tensor:
    """Lloyd's k-means from k-means++ seeds; empty clusters keep their seed.

    Args:
        latents (Tensor): (N, C).
        k (int): centres.
        iters (int): Lloyd iterations (negative: 0).
        generator (torch.Generator): CPU generator of the seeding.

    Returns:
        Tensor: (k, C) centres.
    """
    centres = kmeans_pp_seeds(latents, k, generator)
    for _ in range(max(int(iters), 0)):
        assign = torch.cdist(latents, centres).argmin(1)
        sums = torch.zeros_like(centres).index_add_(0, assign, latents)
        counts = torch.bincount(assign, minlength=k).to(latents.dtype)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return centres


def gather_latents(z: Tensor) -> Tensor:
    """Flat latents of every process, concatenated in rank order (identical shapes per process).

    Args:
        z (Tensor): (B, C, h, w) this process's latents.

    Returns:
        Tensor: (world_size * B * h * w, C) float32.
    """
    rows = flat_latents(z).float()
    if dist.get_world_size() > 1:
        rows = torch.cat(dist.all_gather(rows.contiguous()))
    return rows


class CodebookMaintenance:
    """Codebook initialisation and dead-code restarts for a ``VectorQuantizer``-like ``quantize.embedding``.

    Args:
        init (str, optional): None (keep the network's initialisation), 'sample' or 'kmeans'. Default: None.
        init_iter (int): training iteration at which the codebook is initialised. Default: 0.
        kmeans_iters (int): Lloyd iterations of ``init='kmeans'``. Default: 10.
        restart_interval (int): window length (iterations) of the dead-code check; 0 = no restarts. Default: 0.
        restart_min_count (int): codes used fewer times than this in a window are dead. Default: 1.
        restart_until (int | float, optional): restarts happen only before this iteration: an int, a float in
            (0, 1] = that fraction of ``max_iters`` (read from the message hub), or None = until the end.
            Default: None.
        restart_noise (float): noise added to restarted codes, in units of the latents' per-channel std.
            Default: 0.01.
        seed (int): base seed of the (rank-0) sampling; the iteration is added. Default: 0.

    Raises:
        InvalidOptionError: an unknown ``init``, ``restart_interval`` < 0 or ``restart_min_count`` < 1.
    """

    def __init__(
        self,
        init: Optional[str] = None,
        init_iter: int = 0,
        kmeans_iters: int = 10,
        restart_interval: int = 0,
        restart_min_count: int = 1,
        restart_until=None,
        restart_noise: float = 0.01,
        seed: int = 0,
    ) -> None:
        if init not in (None, 'sample', 'kmeans'):
            raise InvalidOptionError(f"codebook_maintenance.init must be None, 'sample' or 'kmeans', got {init!r}")
        if restart_interval < 0 or restart_min_count < 1:
            raise InvalidOptionError('codebook_maintenance: restart_interval >= 0 and restart_min_count >= 1 needed')
        self.init, self.init_iter, self.kmeans_iters = init, int(init_iter), int(kmeans_iters)
        self.restart_interval, self.restart_min_count = int(restart_interval), int(restart_min_count)
        self.restart_until, self.restart_noise, self.seed = restart_until, float(restart_noise), int(seed)
        self.state: Optional[dict] = None
        self._counts: Optional[Tensor] = None
        self._local_iter = 0

    # ------------------------------------------------------------------ bookkeeping
    @staticmethod
    def _hub() -> MessageHub:
        return MessageHub.get_current_instance()

    def current_iter(self) -> int:
        """The Runner's iteration (message hub 'iter', set before each train iteration), else a local count.

        Returns:
            int: the iteration.
        """
        it = self._hub().get_info('iter')
        return self._local_iter if it is None else int(it)

    def _load_state(self, codebook_size: int) -> None:
        saved = self._hub().get_info(INFO_KEY)
        if saved is not None and len(saved.get('counts', ())) == codebook_size:  # resumed run
            self.state = dict(saved)
        else:
            self.state = dict(
                initialised=False, counts=[0] * codebook_size, window_start=0, restarts_total=0, last_restarts=0
            )
        self._counts = torch.tensor(self.state['counts'], dtype=torch.long)

    def _publish(self) -> None:
        self.state['counts'] = self._counts.tolist()
        self._hub().update_info(INFO_KEY, self.state, resumed=True)

    def _restart_end(self) -> Optional[int]:
        until = self.restart_until
        if until is None:
            return None
        if isinstance(until, float) and 0 < until <= 1:
            max_iters = self._hub().get_info('max_iters')
            return None if max_iters is None else int(until * max_iters)
        return int(until)

    # ------------------------------------------------------------------ steps
    @torch.no_grad()
    def before_step(self, vqgan, inputs: Tensor) -> Dict[str, float]:
        """Initialise the codebook when due (call before the generator forward).

        Args:
            vqgan (nn.Module): the unwrapped SwinVQGAN.
            inputs (Tensor): the batch it reconstructs, (B, 3, H, W) in [0, 1].

        Returns:
            dict[str, float]: ``codebook_init=1.0`` at the initialisation, else empty.
        """
        embedding = vqgan.quantize.embedding.weight
        if self.state is None:
            self._load_state(embedding.shape[0])
        it = self.current_iter()
        if self.init is None or self.state['initialised'] or it < self.init_iter:
            return {}
        latents = gather_latents(vqgan.encode(inputs))
        new = None
        if dist.get_rank() == 0:
            g = torch.Generator().manual_seed(self.seed + it)
            k = embedding.shape[0]
            lat = latents.cpu()
            new = kmeans(lat, k, self.kmeans_iters, g) if self.init == 'kmeans' else sample_rows(lat, k, g)
            new = new.to(embedding)
        else:
            new = torch.empty_like(embedding)
        dist.broadcast(new, src=0)
        embedding.data.copy_(new)
        self.state.update(initialised=True, window_start=it)
        self._counts.zero_()
        self._publish()
        return dict(codebook_init=1.0)

    @torch.no_grad()
    def after_step(self, vqgan, inputs: Tensor, indices: Tensor) -> Dict[str, float]:
        """Count the batch's codes (all processes) and restart dead codes at the end of a window.

        Args:
            vqgan (nn.Module): the unwrapped SwinVQGAN.
            inputs (Tensor): the batch it reconstructed, (B, 3, H, W) in [0, 1].
            indices (Tensor): (B, h, w) codes chosen in this iteration's forward.

        Returns:
            dict[str, float]: log values ``vq_window_usage`` (share of codes used so far in the window),
            ``vq_restarts`` (codes restarted, only at a check) and ``vq_restarts_total``.
        """
        embedding = vqgan.quantize.embedding.weight
        if self.state is None:
            self._load_state(embedding.shape[0])
        k = embedding.shape[0]
        counts = torch.bincount(indices.flatten(), minlength=k).to(embedding.device)
        if dist.get_world_size() > 1:
            dist.all_reduce(counts)  # every process holds the same window counts
        self._counts += counts.cpu()
        it = self.current_iter()
        self._local_iter = it + 1
        logs = dict(vq_window_usage=float((self._counts > 0).float().mean()))
        end = self._restart_end()
        due = (
            self.restart_interval > 0
            and it + 1 - self.state['window_start'] >= self.restart_interval
            and (end is None or it < end)
        )
        if due:
            logs['vq_restarts'] = float(self._restart(vqgan, inputs, it))
            self.state['window_start'] = it + 1
            self._counts.zero_()
        logs['vq_restarts_total'] = float(self.state['restarts_total'])
        self._publish()
        return logs

    def _restart(self, vqgan, inputs: Tensor, it: int) -> int:
        embedding = vqgan.quantize.embedding.weight
        dead = self._counts < self.restart_min_count
        n_dead = int(dead.sum())
        self.state['last_restarts'] = n_dead
        if n_dead == 0:
            return 0
        latents = gather_latents(vqgan.encode(inputs))
        new = embedding.detach().clone()
        if dist.get_rank() == 0:
            g = torch.Generator().manual_seed(self.seed + 1_000_003 + it)
            rows = sample_rows(latents.cpu(), n_dead, g, noise=self.restart_noise)
            new[dead.to(new.device)] = rows.to(new)
        dist.broadcast(new, src=0)
        embedding.data.copy_(new)
        self.state['restarts_total'] += n_dead
        return n_dead
