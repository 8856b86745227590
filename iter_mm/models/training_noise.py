"""The random draws of one stage II/III training step, from one replaceable source (pure torch).

A step of :class:`~iter_mm.models.editors.iter_model.ITERModel` draws (paper Algorithm 1, the forward diffusion
and the image losses): a mask rate r and one uniform per token position for the training mask, and the Exp(1)
samples E of the two hard straight-through Gumbel decodes (E_l's logits first, then phi_r's; the Gumbel noise is
-log E, as ``F.gumbel_softmax``). All of them come from a :class:`TrainingNoise`: seed it with a
``torch.Generator``, or subclass it to feed recorded or chosen draws (:class:`ReplayNoise`).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from ..errors import InvalidInputError
from .masking import mask_schedule, top_k_mask

__all__ = ['TrainingNoise', 'ReplayNoise', 'mask_from_draws', 'sample_training_mask', 'straight_through_gumbel']

Device = Union[str, torch.device]


class TrainingNoise:
    """Source of every random draw of an ITER training step (mask rate, mask positions, Gumbel noise).

    Args:
        generator (torch.Generator, optional): generator of all draws. Default: None, torch's global RNG (seeded
            by MMEngine's ``randomness``, a different seed per rank under DDP): the mask draws then use the CPU
            generator and the Gumbel noise the generator of the logits' device, as ``torch.rand`` and
            ``F.gumbel_softmax`` do.
    """

    def __init__(self, generator: Optional[torch.Generator] = None) -> None:
        self.generator = generator

    @classmethod
    def seeded(cls, seed: int, device: Device = 'cpu') -> 'TrainingNoise':
        """A source with its own ``torch.Generator`` on ``device`` seeded with ``seed``.

        Args:
            seed (int): the generator's seed.
            device (str | torch.device): device of the generator. Default: 'cpu'.

        Returns:
            TrainingNoise: the seeded source.
        """
        return cls(torch.Generator(device).manual_seed(int(seed)))

    def _device(self) -> torch.device:
        return self.generator.device if self.generator is not None else torch.device('cpu')

    def mask_rate(self, batch: int) -> Tensor:
        """r ~ U[0, 1) per image (the masked fraction is cos(pi r / 2)).

        Args:
            batch (int): images B.

        Returns:
            Tensor: (B,) float64.
        """
        return torch.rand(batch, generator=self.generator, device=self._device(), dtype=torch.float64)

    def mask_uniforms(self, batch: int, num_tokens: int) -> Tensor:
        """One U[0, 1) number per token position (row-major h, w); the largest are masked.

        Args:
            batch (int): images B.
            num_tokens (int): token positions N = h * w.

        Returns:
            Tensor: (B, N) float32.
        """
        return torch.rand(batch, num_tokens, generator=self.generator, device=self._device())

    def gumbel_exponential(
        self, shape: Sequence[int], dtype: torch.dtype = torch.float32, device: Optional[Device] = None
    ) -> Tensor:
        """E ~ Exp(1) of a straight-through Gumbel decode (Gumbel noise -log E).

        Args:
            shape (Sequence[int]): shape of the logits, e.g. (B, n, h, w).
            dtype (torch.dtype): dtype of the samples. Default: torch.float32.
            device (str | torch.device, optional): device of the result. Default: None (the generator's device;
                the CPU without one).

        Returns:
            Tensor: ``shape``, ``dtype``, on ``device``.
        """
        device = torch.device(device) if device is not None else self._device()
        where = device if self.generator is None else self._device()
        e = torch.empty(tuple(shape), dtype=dtype, device=where).exponential_(generator=self.generator)
        return e.to(device)

    def training_mask(self, batch: int, h: int, w: int, device: Optional[Device] = None) -> Tensor:
        """The training mask of :func:`mask_from_draws` from :meth:`mask_rate` and :meth:`mask_uniforms`.

        Args:
            batch (int): images B.
            h (int): token grid height.
            w (int): token grid width.
            device (str | torch.device, optional): device of the mask. Default: None (the draws' device).

        Returns:
            Tensor: (B, h, w) float32 on ``device`` (default: the draws' device), 1 = masked (to predict).
        """
        rate = self.mask_rate(batch)
        mask = mask_from_draws(rate, self.mask_uniforms(batch, h * w), h, w)
        return mask.to(device if device is not None else rate.device)


class ReplayNoise(TrainingNoise):
    """Feeds given draws instead of random ones, each once, in the order a training step consumes them.

    Args:
        mask_rate (Tensor, optional): (B,) r values. Default: None (drawn by ``fallback``).
        mask_uniforms (Tensor, optional): (B, h * w) position scores. Default: None (drawn by ``fallback``).
        gumbel_exponential (Sequence[Tensor]): Exp(1) samples of the Gumbel decodes, E_l's then phi_r's,
            each shaped like the logits (B, n, h, w). Default: () (drawn by ``fallback``).
        fallback (TrainingNoise, optional): source of the draws not given. Default: None, a refusal.

    Raises:
        InvalidInputError: (when a draw is asked for) no draw of that kind is left and there is no ``fallback``, or
            the given draw's shape is not the one the step needs.
    """

    def __init__(
        self,
        mask_rate: Optional[Tensor] = None,
        mask_uniforms: Optional[Tensor] = None,
        gumbel_exponential: Sequence[Tensor] = (),
        fallback: Optional[TrainingNoise] = None,
    ) -> None:
        super().__init__()
        self.rates = [mask_rate] if mask_rate is not None else []
        self.uniforms = [mask_uniforms] if mask_uniforms is not None else []
        self.exponentials = list(gumbel_exponential)
        self.fallback = fallback

    @property
    def exhausted(self) -> bool:
        """Whether every given draw was used."""
        return not (self.rates or self.uniforms or self.exponentials)

    def _next(self, queue: list, what: str, shape: Sequence[int]) -> Optional[Tensor]:
        if not queue:
            if self.fallback is None:
                raise InvalidInputError(f'ReplayNoise: no {what} left to replay')
            return None
        value = queue.pop(0)
        if tuple(value.shape) != tuple(shape):
            raise InvalidInputError(f'ReplayNoise: {what} of shape {tuple(value.shape)}, the step needs {tuple(shape)}')
        return value

    def mask_rate(self, batch: int) -> Tensor:
        value = self._next(self.rates, 'mask rate', (batch,))
        return self.fallback.mask_rate(batch) if value is None else value

    def mask_uniforms(self, batch: int, num_tokens: int) -> Tensor:
        value = self._next(self.uniforms, 'mask uniforms', (batch, num_tokens))
        return self.fallback.mask_uniforms(batch, num_tokens) if value is None else value

    def gumbel_exponential(
        self, shape: Sequence[int], dtype: torch.dtype = torch.float32, device: Optional[Device] = None
    ) -> Tensor:
        value = self._next(self.exponentials, 'Gumbel Exp(1) sample', shape)
        if value is None:
            return self.fallback.gumbel_exponential(shape, dtype, device)
        return value.to(device=device if device is not None else value.device)


def mask_from_draws(rate: Tensor, uniforms: Tensor, h: int, w: int) -> Tensor:
    """Training mask (Algorithm 1): image b masks k_b = max(1, floor(cos(pi r_b / 2) h w)) positions, those of its
    k_b largest uniforms (uniform without replacement).

    Args:
        rate (Tensor): (B,) r in [0, 1).
        uniforms (Tensor): (B, h * w) one score per position, row-major.
        h (int): token grid height.
        w (int): token grid width.

    Returns:
        Tensor: (B, h, w) float32 on the device of ``uniforms``, 1 = masked (to predict).
    """
    n = h * w
    k = torch.floor(mask_schedule(rate, 'cosine') * n).long().clamp(min=1, max=n)
    return top_k_mask(uniforms, k.to(uniforms.device)).to(torch.float32).view(rate.shape[0], h, w)


def sample_training_mask(
    batch: int, h: int, w: int, generator: Optional[torch.Generator] = None, device: Optional[Device] = None
) -> Tensor:
    """Random training mask (Algorithm 1): :meth:`TrainingNoise.training_mask` of ``TrainingNoise(generator)``.

    Args:
        batch (int): images B.
        h (int): token grid height.
        w (int): token grid width.
        generator (torch.Generator, optional): generator of the draws. Default: None (torch's global RNG).
        device (str | torch.device, optional): device of the mask. Default: None (the draws' device).

    Returns:
        Tensor: (B, h, w) float32, 1 = masked (to predict).
    """
    return TrainingNoise(generator).training_mask(batch, h, w, device)


def straight_through_gumbel(logits: Tensor, exponential: Tensor, dim: int = 1, tau: float = 1.0) -> Tensor:
    """Hard straight-through Gumbel-softmax with given noise: ``F.gumbel_softmax(logits, tau, hard=True, dim)``
    whose Exp(1) draw is ``exponential`` (the same operations, so the same values).

    Args:
        logits (Tensor): (B, n, h, w) logits.
        exponential (Tensor): Exp(1) samples E shaped like ``logits``; the Gumbel noise is -log E.
        dim (int): the category dimension. Default: 1.
        tau (float): temperature. Default: 1.0.

    Returns:
        Tensor: one-hot values shaped like ``logits``, with the gradient of the soft sample.
    """
    gumbels = (logits + -exponential.log()) / tau
    y_soft = gumbels.softmax(dim)
    index = y_soft.max(dim, keepdim=True)[1]
    y_hard = torch.zeros_like(logits, memory_format=torch.legacy_contiguous_format).scatter_(dim, index, 1.0)
    return y_hard - y_soft.detach() + y_soft
