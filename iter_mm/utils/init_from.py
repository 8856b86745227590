"""Starting stages II+III from a released or earlier ITER checkpoint (``ITERModel(init_from=...)``).

The authors train their x4 model from ``ITER_x2.pth`` with ``strict_load: false``: every tensor of E_l, phi_e and
phi_r whose name and shape match is loaded, the rest (the x4 E_l's own layers) keeps its initialisation. The same
rule here, for the authors' files (converted in memory through :mod:`iter_mm.utils.checkpoint`'s mapping), their
converted forms and our own checkpoints, with two guards: what is not loaded is reported by module, and a file that
matches less than :data:`MIN_SHARE` of the trainable parameters is refused (it is not a checkpoint of this network).
The frozen VQGAN is not touched: it comes from the stage-I checkpoint.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from torch import nn

from ..errors import CheckpointMismatchError
from .checkpoint import Source, compare_keys, detect_kind, official_to_ours, read_weights

__all__ = ['MIN_SHARE', 'TRAINED_PARTS', 'InitReport', 'init_from_checkpoint']

#: least share of the trainable parameters of E_l, phi_e and phi_r (by count) a file must supply
MIN_SHARE = 0.5
#: the networks stages II+III train (``ITERNet`` children)
TRAINED_PARTS = ('lq_encoder', 'evaluator', 'refiner')


def _module(key: str, depth: int = 3) -> str:
    """Module of a state-dict key, at most ``depth`` levels deep (``lq_encoder.model.2``)."""
    return '.'.join(key.split('.')[:-1][:depth]) or key


def _by_module(keys, note: str = '') -> str:
    counts = Counter(_module(k) for k in keys)
    return ', '.join(f'{m} ({n} tensor{"s" * (n != 1)}{note})' for m, n in counts.items())


@dataclass(frozen=True)
class InitReport:
    """What :func:`init_from_checkpoint` loaded: tensors loaded, modules left initialised, share of parameters."""

    source: str
    kind: str
    loaded: tuple[str, ...]
    missing: tuple[str, ...]  # in the network, not in the file: kept initialised
    misshapen: tuple[str, ...]  # in both with other shapes: kept initialised
    unused: tuple[str, ...]  # in the file's E_l / phi_e / phi_r, not in the network
    share: float  # loaded share of the trainable parameters of E_l, phi_e, phi_r

    def summary(self) -> str:
        """One log line: what was loaded, and by module what was not.

        Returns:
            str: the line.
        """
        text = (
            f'init_from {self.source} ({self.kind}): loaded {len(self.loaded)} of '
            f'{len(self.loaded) + len(self.missing) + len(self.misshapen)} tensors of E_l / phi_e / phi_r '
            f'({self.share:.1%} of their trainable parameters)'
        )
        if self.missing or self.misshapen:
            parts = (_by_module(self.misshapen, ', other shape'), _by_module(self.missing, ', not in the file'))
            text += '; kept initialised: ' + ', '.join(p for p in parts if p)
        if self.unused:
            text += '; unused from the file: ' + _by_module(self.unused)
        return text


def init_from_checkpoint(net: nn.Module, src: Source, min_share: float = MIN_SHARE) -> InitReport:
    """Load into ``net`` (an ``ITERNet``) every E_l / phi_e / phi_r tensor of ``src`` whose name and shape match.

    Args:
        net (nn.Module): the ITER network (children ``lq_encoder``, ``evaluator``, ``refiner``; ``vqgan`` is left
            alone).
        src (str | dict): the authors' ``ITER_x2.pth`` / ``ITER_x4.pth`` (with or without ``vqgan.*``), a converted
            one, or an iter-mm ITER checkpoint (weights-only or a full training checkpoint, unpickled as MMEngine's
            ``load_from`` does: name files you trust).
        min_share (float): least loaded share of the trainable parameters. Default: :data:`MIN_SHARE`.

    Returns:
        InitReport: what was loaded and what was not (:meth:`InitReport.summary` is one log line).

    Raises:
        CheckpointMismatchError: ``src`` is no ITER checkpoint (a Swin-VQGAN file is named as such), or it matches
            less than ``min_share`` of the network.
    """
    source = str(src) if not isinstance(src, Mapping) else 'checkpoint'
    sd = read_weights(src, trusted=True)
    try:
        kind = detect_kind(sd)
    except ValueError as err:
        raise CheckpointMismatchError(f'init_from {source}: not an ITER checkpoint ({err})') from None
    if kind.family != 'iter':
        raise CheckpointMismatchError(
            f'init_from {source}: {kind.name} checkpoint, i.e. stage I only (no E_l, phi_e or phi_r), so it cannot '
            "initialise stages II+III. init_from takes a full ITER checkpoint (the authors' ITER_x2.pth / "
            'ITER_x4.pth, or a stage II+III checkpoint); a Swin-VQGAN file is the stage-I checkpoint '
            '(stage1_checkpoint).'
        )
    if kind.layout == 'official':
        sd = official_to_ours(sd)
    trained = lambda k: k.split('.', 1)[0] in TRAINED_PARTS  # noqa: E731
    own = {k: v for k, v in net.state_dict().items() if trained(k)}
    fit = compare_keys(own, {k: v for k, v in sd.items() if trained(k)})
    skipped = set(fit.missing) | set(fit.misshapen)
    loaded = tuple(k for k in own if k not in skipped)
    params = {k: p.numel() for k, p in net.named_parameters() if trained(k) and p.requires_grad}
    share = sum(params.get(k, 0) for k in loaded) / max(1, sum(params.values()))
    report = InitReport(source, kind.name, loaded, fit.missing, fit.misshapen, fit.unexpected, share)
    if share < min_share:
        raise CheckpointMismatchError(
            f'init_from {source}: {kind.name} checkpoint whose tensors match (by name and shape) only {share:.1%} of '
            f"the trainable parameters of this network's E_l, phi_e and phi_r; at least {min_share:.0%} are needed, "
            'so it is not a checkpoint of this network (another size or configuration). '
            + report.summary().split('; ', 1)[-1]
        )
    net.load_state_dict({k: sd[k] for k in loaded}, strict=False)
    return report
