"""ITER's sampling and restoration options: one typed object, its defaults written once (pure Python).

Everything that restores images reads its defaults from :class:`RestoreOptions`: ``restore_image`` and
``adaptive_refine``, ``ITERModel``'s ``test_cfg`` / ``val_cfg`` (the configs write only what differs), the
Inferencer's ``extra_parameters``, the command-line flags of ``tools/infer.py`` (:func:`add_restore_arguments`)
and the refinement visualisation hook.

Tiling rule (the same in every front end): an image with more than ``max_pixels`` LQ pixels (default 720 x 720,
the authors' threshold) is cut into the largest square tiles on the network's padding grid that fit the budget,
with ``tile_overlap`` LQ pixels of overlap, blended linearly; ``tile`` forces tiles of that side; whole images are
batched up to ``max_pixels`` per call; ``max_pixels=None`` (CLI: ``--max-pixels 0``) never tiles on its own.
On the CPU, a ``max_pixels`` left at its default (:data:`DEFAULT_MAX_PIXELS`, not set by the user, the config or
the command line) and no ``tile`` may be lowered so that one network call fits in half the host memory
(:func:`iter_mm.utils.tiling.memory_max_pixels`); any value the user sets is used as given.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from ..errors import InvalidOptionError

__all__ = [
    'RestoreOptions',
    'VALIDATION_OVERRIDES',
    'SCHEDULES',
    'DTYPE_NAMES',
    'add_restore_arguments',
    'given_options',
    'DefaultMaxPixels',
    'DEFAULT_MAX_PIXELS',
]

SCHEDULES = ('cosine', 'linear')
DTYPE_NAMES = ('fp32', 'float32', 'bf16', 'bfloat16', 'fp16', 'float16')


class DefaultMaxPixels(int):
    """The default ``max_pixels``: an int equal to it in every use, marked (``is_default``) as not chosen by the
    user, so that CPU restoration may lower it to fit the host memory. A value given anywhere (config, command
    line, keyword) is a plain int and is used as given."""

    __slots__ = ()
    is_default = True


#: 720 x 720 LQ pixels, the authors' tiling threshold (marked as the default, see :class:`DefaultMaxPixels`)
DEFAULT_MAX_PIXELS = DefaultMaxPixels(720 * 720)


def _opt(default, help: str, **extra):  # noqa: A002 - argparse's word
    return field(default=default, metadata=dict(help=help, **extra))


@dataclass(frozen=True)
class RestoreOptions:
    """Options of one restoration call (the defaults are those of the authors' inference script,
    docs/faithfulness.md#inference-defaults).

    Frozen; the help text of every field (``add_restore_arguments``) is its ``help`` metadata.

    Args:
        alpha (float): phi_e threshold in [0, 1]: tokens of S_l with P(good) >= alpha are kept at the start.
            Default: 0.7.
        steps (int): refinement steps T, >= 1. Default: 8.
        token_temperature (float): temperature of the token sampling, >= 0 (0: argmax). Default: 1.0.
        mask_temperature (float): temperature of the keep-mask sampling, >= 0 (0: deterministic). Default: 1.0.
        schedule (str): mask schedule, 'cosine' or 'linear'. Default: 'linear'.
        seed (int, optional): sampling seed, the same for every image (None: drawn). Default: 0.
        color_correction (bool): match the SR colour statistics to the LQ (Eq. 10). Default: False.
        tile (int, optional): LQ tile side, >= 1, for tiled inference (None: tiles only above ``max_pixels``).
            Default: None.
        tile_overlap (int): LQ overlap of neighbouring tiles, >= 0. Default: 16.
        max_pixels (int, optional): LQ pixels per network call, >= 1; larger images are tiled (None: no limit).
            Default: :data:`DEFAULT_MAX_PIXELS` (720 * 720; on the CPU it may be lowered to fit half the RAM).
        dtype (str | torch.dtype): autocast precision, one of :data:`DTYPE_NAMES` or a torch dtype.
            Default: 'fp32'.
        official_padding (bool): the authors' always-pad rule instead of minimal mirror padding.
            Default: False.
        cuda_graphs (bool): CUDA only: replay every network call as a CUDA graph, captured the first time an
            input size is seen and kept. Default: False.

    Raises:
        InvalidOptionError: a value out of its range (all problems named in one message).
    """

    alpha: float = _opt(0.7, 'phi_e threshold: tokens of S_l with P(good) >= alpha are kept at the start')
    steps: int = _opt(8, 'refinement steps T')
    token_temperature: float = _opt(1.0, 'temperature of the token sampling (0: argmax)')
    mask_temperature: float = _opt(1.0, 'temperature of the keep-mask sampling (0: deterministic)')
    schedule: str = _opt('linear', 'mask schedule', choices=SCHEDULES)
    seed: Optional[int] = _opt(0, 'sampling seed, the same for every image (None: drawn)')
    color_correction: bool = _opt(False, 'match SR colour statistics to the LQ (Eq. 10)')
    tile: Optional[int] = _opt(None, 'LQ tile side for tiled inference (None: only above max_pixels)')
    tile_overlap: int = _opt(16, 'LQ overlap of neighbouring tiles')
    max_pixels: Optional[int] = _opt(
        DEFAULT_MAX_PIXELS,
        'LQ pixels per network call; larger images are tiled '
        '(None / CLI 0: no limit; CPU default: lowered to fit half the RAM)',
    )
    dtype: str = _opt('fp32', 'autocast precision', choices=('fp32', 'bf16', 'fp16'))
    official_padding: bool = _opt(
        False,
        "the authors' always-pad rule instead of minimal mirror padding (docs/faithfulness.md#padding-and-tiling)",
    )
    cuda_graphs: bool = _opt(
        False,
        'CUDA only: replay every network call as a CUDA graph, captured the first time '
        'an input size is seen and kept (pays off over many same-size images)',
    )

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 <= float(self.alpha) <= 1.0:
            problems.append(f'alpha must lie in [0, 1], got {self.alpha}')
        if int(self.steps) < 1:
            problems.append(f'steps must be >= 1, got {self.steps}')
        if self.schedule not in SCHEDULES:
            problems.append(f'schedule must be one of {SCHEDULES}, got {self.schedule!r}')
        if self.token_temperature < 0 or self.mask_temperature < 0:
            problems.append('temperatures must be >= 0')
        if self.tile is not None and self.tile < 1:
            problems.append(f'need tile >= 1 (or None), got {self.tile}')
        if self.tile_overlap < 0:
            problems.append(f'tile_overlap must be >= 0, got {self.tile_overlap}')
        if self.max_pixels is not None and self.max_pixels < 1:
            problems.append(f'max_pixels must be >= 1 or None, got {self.max_pixels}')
        if isinstance(self.dtype, str) and self.dtype not in DTYPE_NAMES:  # torch dtypes are accepted as they are
            problems.append(f'unknown dtype {self.dtype!r}; expected one of fp32, bf16, fp16')
        if problems:
            raise InvalidOptionError('; '.join(problems))

    @classmethod
    def names(cls) -> tuple:
        """tuple[str]: the option names, in field order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def check_names(cls, options: Mapping[str, Any], where: str = 'options') -> None:
        """Refuse unknown option names.

        Args:
            options (Mapping[str, Any]): options by name.
            where (str): what holds them, for the message. Default: 'options'.

        Raises:
            InvalidOptionError: a name that is not an option (all named, with the valid ones).
        """
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            raise InvalidOptionError(f'{where}: unknown sampling option(s) {unknown}; valid: {sorted(cls.names())}')

    @classmethod
    def validation(cls, **overrides) -> 'RestoreOptions':
        """Defaults of training-time validation (the authors' TokenRefine defaults,
        docs/faithfulness.md#optimisation-and-validation).

        Args:
            **overrides: options that replace those defaults.

        Returns:
            RestoreOptions: the defaults with :data:`VALIDATION_OVERRIDES`, then ``overrides``.
        """
        return cls().replace(**{**VALIDATION_OVERRIDES, **overrides})

    def replace(self, **overrides) -> 'RestoreOptions':
        """A copy with ``overrides``.

        Args:
            **overrides: new values by option name.

        Returns:
            RestoreOptions: the copy (validated again).

        Raises:
            InvalidOptionError: an unknown name (also a TypeError) or a value out of range.
        """
        self.check_names(overrides)
        return dataclasses.replace(self, **overrides)

    def as_dict(self) -> dict:
        """dict: every option by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def sampling(self) -> dict:
        """The options of :func:`~iter_mm.models.sampling.adaptive_refine`.

        Returns:
            dict: alpha, steps, token_temperature, mask_temperature, schedule and cuda_graphs.
        """
        return dict(
            alpha=self.alpha,
            steps=self.steps,
            token_temperature=self.token_temperature,
            mask_temperature=self.mask_temperature,
            schedule=self.schedule,
            cuda_graphs=self.cuda_graphs,
        )


#: what training-time validation changes (alpha 0.5, cosine schedule: the authors' validation,
# docs/faithfulness.md#optimisation-and-validation)
VALIDATION_OVERRIDES = dict(alpha=0.5, schedule='cosine')
#: the defaults as an instance (read-only)
DEFAULTS = RestoreOptions()


def add_restore_arguments(parser, exclude=()) -> None:
    """Add one flag per option (``--alpha``, ``--tile-overlap``, ...) to an argparse parser, in one group.

    Every default is None ("not given": the config's ``test_cfg``, itself over :class:`RestoreOptions`' defaults);
    boolean options are ``store_true`` flags.

    Args:
        parser (argparse.ArgumentParser): the parser to extend.
        exclude (Sequence[str]): option names that get no flag. Default: ().
    """
    group = parser.add_argument_group(
        "sampling and tiling (not given: the config's model.test_cfg, whose "
        'defaults are iter_mm.models.options.RestoreOptions)'
    )
    for f in dataclasses.fields(RestoreOptions):
        if f.name in exclude:
            continue
        flag = '--' + f.name.replace('_', '-')
        text = f'{f.metadata["help"]} (default {f.default})'
        if f.type in (bool, 'bool'):
            group.add_argument(flag, action='store_true', default=None, help=text)
            continue
        kind = {'float': float, 'int': int, 'Optional[int]': int, 'str': str}.get(str(f.type), str)
        group.add_argument(flag, type=kind, default=None, choices=f.metadata.get('choices'), help=text)


def given_options(namespace) -> dict:
    """The options given on a command line; ``--max-pixels 0`` means no limit.

    Args:
        namespace (argparse.Namespace): parsed arguments of a parser extended by :func:`add_restore_arguments`.

    Returns:
        dict: the options whose value is not None, by name (``max_pixels`` 0 becomes None).
    """
    out = {}
    for name in RestoreOptions.names():
        value = getattr(namespace, name, None)
        if value is not None:
            out[name] = value
    if out.get('max_pixels') == 0:
        out['max_pixels'] = None
    return out
