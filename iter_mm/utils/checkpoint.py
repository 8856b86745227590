"""The one mapping between iter-mm state dicts and the authors' released checkpoints
(docs/faithfulness.md#checkpoint-layout).

Our parameter names equal the official ones except for the top-level prefixes in ``PREFIX_MAP``; the official
``generator.*`` entries are aliases of the decoder (dropped on load, re-emitted on export). Buffers
(``relative_position_index``, ``attn_mask``) are ordinary entries on both sides. Export follows the key order of
the authors' manifests (shipped in ``iter_mm/mappings``).
"""

from __future__ import annotations

import json
import re
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Union

import torch
from torch import Tensor, nn

from ..errors import CheckpointMismatchError, InvalidInputError, InvalidOptionError, MissingDataError

StateDict = dict[str, Tensor]
Source = Union[str, Path, Mapping]

# --- the declarative mapping ------------------------------------------------------------------------------
PREFIX_MAP: tuple[tuple[str, str], ...] = (  # (official prefix, our prefix)
    ('token_refine_net.token_crit_net.', 'evaluator.'),
    ('token_refine_net.token_refine_net.', 'refiner.'),
)
DECODER_ALIAS = ('generator.', 'decoder.')  # official alias prefix -> the decoder it repeats (inside the VQGAN)
VQGAN_PREFIX = 'vqgan.'  # where an ITER checkpoint holds the Swin-VQGAN
# official state-dict order by top-level group (docs/faithfulness.md#checkpoint-layout)
OFFICIAL_ORDER = {
    'swinvqgan': ('encoder.', 'decoder.', 'generator.', 'quantize.'),
    'iter': (
        'vqgan.encoder.',
        'vqgan.decoder.',
        'vqgan.generator.',
        'vqgan.quantize.',
        'token_refine_net.token_crit_net.',
        'token_refine_net.token_refine_net.',
        'lq_encoder.',
    ),
}
OUR_ORDER = {
    'swinvqgan': ('encoder.', 'decoder.', 'quantize.'),
    'iter': ('vqgan.', 'lq_encoder.', 'evaluator.', 'refiner.'),
}
MANIFESTS = {
    'swinvqgan': 'official_swinvqgan.json',
    'iter_x4': 'official_iter_x4.json',
    'iter_x2': 'official_iter_x2.json',
}
_MAPPINGS_DIR = Path(__file__).resolve().parent.parent / 'mappings'


@dataclass(frozen=True)
class CheckpointKind:
    """What a state dict holds: ``family`` 'swinvqgan' | 'iter'; ``layout`` 'official' | 'ours'."""

    family: str
    layout: str
    scale: int | None = None  # ITER only
    has_vqgan: bool = True  # ITER only: whether vqgan.* is present

    @property
    def name(self) -> str:
        """Readable name for messages, e.g. 'official ITER x4 (without vqgan.*)'."""
        who = 'official' if self.layout == 'official' else 'iter-mm'
        if self.family == 'swinvqgan':
            return f'{who} Swin-VQGAN' + (' (with generator.* aliases)' if self.layout == 'official' else '')
        return f'{who} ITER x{self.scale} ({"with" if self.has_vqgan else "without"} vqgan.*)'


# --- reading files ------------------------------------------------------------------------------------------
#: how the library's functions take the stage-I (Swin-VQGAN) file and allow pickled checkpoints (named in errors)
STAGE1_OPTION = "stage1_checkpoint='ITER_swinvqgan.pth'"
PICKLE_OPTION = "allow_pickle=True (init_model's argument, or the Inferencer's extra_parameters)"
_ANSI = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')
_PICKLE_REFUSAL = re.compile(r'Unsupported (global|class)')  # torch's weights-only refusal of a pickled object


def _load_error_reason(err: Exception, limit: int = 240) -> str:
    """The gist of a torch.load error: no ANSI codes, the weights-only unpickler's own reason rather than torch's
    advice, its first sentence, cut at a word boundary."""
    text = _ANSI.sub('', str(err))
    inner = re.search(r'WeightsUnpickler error:\s*(.+?)(?:\n\s*\n|$)', text, re.S)
    text = ' '.join((inner.group(1) if inner else text).split())
    text = re.split(r'(?<=[.!?])\s', text, maxsplit=1)[0].rstrip('.')
    if len(text) > limit:
        text = text[:limit].rsplit(' ', 1)[0] + ' ...'
    return f'{type(err).__name__}: {text}' if text else type(err).__name__


class CheckpointReadError(InvalidInputError, RuntimeError):
    """A file that is not a readable checkpoint, or holds pickled objects where only weights may be read (also a
    RuntimeError, as before :mod:`iter_mm.errors`)."""


def load_checkpoint_file(path: str | Path, allow_pickle: bool = False) -> dict:
    """torch.load a checkpoint to CPU with clear errors. Only tensors/containers unless ``allow_pickle``.

    Args:
        path (str | Path): the checkpoint file.
        allow_pickle (bool): unpickle arbitrary objects (trusted files only). Default: False.

    Returns:
        dict: the loaded checkpoint.

    Raises:
        MissingDataError: the file does not exist.
        CheckpointReadError: not a readable checkpoint; or pickled objects without ``allow_pickle``, which only then
            is suggested.
        InvalidInputError: the file holds something other than a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f'checkpoint file not found: {path}')
    try:
        obj = torch.load(path, map_location='cpu', weights_only=not allow_pickle)
    except Exception as err:
        reason = _load_error_reason(err)
        if not allow_pickle and _PICKLE_REFUSAL.search(str(err)):
            raise CheckpointReadError(
                f'cannot read checkpoint {path} weights-only: it holds pickled Python objects ({reason}), as full '
                'training checkpoints do. Load its weights-only export instead (weights.pth, '
                'iter_mm.engine.stages.export_weights), or, only if you trust the file, pass '
                f'{PICKLE_OPTION}',
                arguments=('allow_pickle',),
            ) from err
        if path.stat().st_size == 0:
            reason = 'the file is empty'
        raise CheckpointReadError(
            f'cannot read checkpoint {path}: not a readable PyTorch checkpoint (truncated, '
            f'corrupt or another kind of file): {reason}'
        ) from err
    if not isinstance(obj, Mapping):
        raise InvalidInputError(f'checkpoint {path} holds a {type(obj).__name__}, not a dict of weights')
    return obj


def extract_state_dict(obj: Mapping) -> tuple[StateDict, str]:
    """Pick the weights of a checkpoint dict and strip a leading ``module.``.

    The entry used is ``params_ema``, else ``params``, else ``state_dict``, else the dict itself.

    Args:
        obj (Mapping): a loaded checkpoint.

    Returns:
        tuple[OrderedDict, str]: (state dict, name of the entry used).

    Raises:
        ValueError: the entry is empty or holds non-tensors.
    """
    for key in ('params_ema', 'params', 'state_dict'):
        if key in obj and isinstance(obj[key], Mapping):
            sd, used = obj[key], key
            break
    else:
        sd, used = obj, '<root>'
    bad = [k for k, v in sd.items() if not isinstance(v, Tensor)]
    if not sd or bad:
        raise ValueError(
            f'checkpoint entry {used!r} is not a state dict of tensors'
            + (f' (non-tensor keys: {bad[:5]})' if bad else ' (empty)')
        )
    return OrderedDict((k.removeprefix('module.'), v) for k, v in sd.items()), used


def unwrap_model_state(sd: Mapping[str, Tensor], prefix: str = 'generator.') -> StateDict:
    """Network weights of an MMEngine model state dict (``generator.`` + our key); other states dict unchanged.

    The official Swin-VQGAN's ``generator.blocks.*`` aliases are not mistaken for the wrapper prefix.

    Args:
        sd (Mapping[str, Tensor]): a state dict.
        prefix (str): the wrapper prefix to remove. Default: 'generator.'.

    Returns:
        OrderedDict: the network's state dict.
    """
    top = {k.split('.', 1)[0] for k in sd}
    if top & {'encoder', 'decoder', 'quantize', 'vqgan', 'token_refine_net', 'evaluator', 'refiner', 'lq_encoder'}:
        return OrderedDict(sd)
    inner = OrderedDict((k[len(prefix) :], v) for k, v in sd.items() if k.startswith(prefix))
    return inner if inner else OrderedDict(sd)


# --- kinds --------------------------------------------------------------------------------------------------
def _lq_scale(keys: Sequence[str]) -> int | None:
    """Scale from the LQ encoder depth (number of stride-2 stages ``lq_encoder.model.N.1.conv...``)."""
    stages = {m.group(1) for k in keys if (m := re.match(r'lq_encoder\.model\.(\d+)\.1\.conv\.', k))}
    return 8 // 2 ** len(stages) if any(k.startswith('lq_encoder.') for k in keys) else None


def detect_kind(sd: Mapping[str, Tensor]) -> CheckpointKind:
    """Tell official/ours Swin-VQGAN or ITER (x2/x4, with or without vqgan.*) apart by their keys.

    Args:
        sd (Mapping[str, Tensor]): network weights (no wrapper prefix).

    Returns:
        CheckpointKind: family, layout, scale and whether vqgan.* is present.

    Raises:
        ValueError: mixed layouts, an ITER file without ``lq_encoder.*``, only ``vqgan.*``, or unknown keys.
    """
    keys = list(sd)
    top = {k.split('.', 1)[0] for k in keys}
    if 'token_refine_net' in top or 'evaluator' in top or 'refiner' in top:
        layout = 'official' if 'token_refine_net' in top else 'ours'
        if layout == 'official' and top & {'evaluator', 'refiner'}:
            raise ValueError('checkpoint mixes official (token_refine_net.*) and iter-mm (evaluator./refiner.) keys')
        scale = _lq_scale(keys)
        if scale is None:
            raise ValueError(f'{layout} ITER checkpoint without lq_encoder.* weights: cannot tell x2 from x4')
        return CheckpointKind('iter', layout, scale, 'vqgan' in top)
    if {'encoder', 'decoder', 'quantize'} <= top:
        return CheckpointKind('swinvqgan', 'official' if 'generator' in top else 'ours')
    if top == {'vqgan'}:
        raise ValueError('checkpoint holds only vqgan.* weights; use a Swin-VQGAN checkpoint without the prefix')
    raise ValueError(f'unrecognised checkpoint: no Swin-VQGAN or ITER keys (first keys: {keys[:5]})')


# --- manifests ----------------------------------------------------------------------------------------------
@cache
def load_manifest(name: str) -> tuple[tuple[str, tuple[int, ...], str, str], ...]:
    """Entries of an official checkpoint, in its state-dict order.

    Args:
        name (str): 'swinvqgan', 'iter_x4' or 'iter_x2'.

    Returns:
        tuple: (key, shape, dtype, kind) per entry.

    Raises:
        KeyError: an unknown manifest name.
    """
    if name not in MANIFESTS:
        raise KeyError(f'unknown manifest {name!r}; choose from {sorted(MANIFESTS)}')
    data = json.loads((_MAPPINGS_DIR / MANIFESTS[name]).read_text())
    return tuple((k, tuple(s), d, kind) for k, s, d, kind in data['entries'])


def manifest_name(kind: CheckpointKind) -> str:
    """The manifest of a checkpoint kind.

    Args:
        kind (CheckpointKind): what :func:`detect_kind` found.

    Returns:
        str: 'swinvqgan', 'iter_x4' or 'iter_x2'.
    """
    return 'swinvqgan' if kind.family == 'swinvqgan' else f'iter_x{kind.scale}'


# --- conversion ---------------------------------------------------------------------------------------------
def _rename(key: str, pairs: Sequence[tuple[str, str]]) -> str:
    for old, new in pairs:
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def _group_sort(sd: Mapping[str, Tensor], order: Sequence[str]) -> StateDict:
    """Stable sort of entries by top-level group (``order`` prefixes); unknown keys keep their place at the end."""
    rank = lambda k: next((i for i, p in enumerate(order) if k.startswith(p)), len(order))
    return OrderedDict(sorted(sd.items(), key=lambda kv: rank(kv[0])))


def _drop_alias(sd: Mapping[str, Tensor], root: str) -> StateDict:
    """Drop ``{root}generator.*`` after checking it repeats ``{root}decoder.*``; a differing alias wins, as it
    does when the official VQModel loads the file (generator is visited after decoder)."""
    alias, target = root + DECODER_ALIAS[0], root + DECODER_ALIAS[1]
    out = OrderedDict((k, v) for k, v in sd.items() if not k.startswith(alias))
    for k, v in sd.items():
        if k.startswith(alias):
            dk = target + k[len(alias) :]
            if dk not in out:
                raise ValueError(f'checkpoint has alias {k} but no decoder entry {dk}')
            if v.shape != out[dk].shape or not torch.equal(v, out[dk]):
                warnings.warn(f'{k} differs from {dk}; using the {alias}* value as the official loader does')
                out[dk] = v
    return out


def official_to_ours(sd: Mapping[str, Tensor], vqgan_sd: Mapping[str, Tensor] | None = None) -> StateDict:
    """Official state dict -> ours.

    Args:
        sd (Mapping[str, Tensor]): official Swin-VQGAN or ITER state dict (``module.`` already stripped).
        vqgan_sd (Mapping[str, Tensor], optional): separate Swin-VQGAN state dict (ITER only), merged under
            ``vqgan.`` and replacing any vqgan.* entries of ``sd``. Default: None.

    Returns:
        OrderedDict: our state dict, in our group order.

    Raises:
        ValueError: ``sd`` is not official, or ``vqgan_sd`` is not a Swin-VQGAN or given for a Swin-VQGAN.
    """
    kind = detect_kind(sd)
    if kind.layout != 'official':
        raise ValueError(f'expected an official checkpoint, got {kind.name}')
    if kind.family == 'swinvqgan':
        if vqgan_sd is not None:
            raise ValueError('a separate Swin-VQGAN can only be merged into an ITER checkpoint')
        return _group_sort(_drop_alias(sd, ''), OUR_ORDER['swinvqgan'])
    out = OrderedDict((_rename(k, PREFIX_MAP), v) for k, v in _drop_alias(sd, VQGAN_PREFIX).items())
    if vqgan_sd is not None:
        vkind = detect_kind(vqgan_sd)
        if vkind.family != 'swinvqgan':
            raise ValueError(f'the separate VQGAN checkpoint must be a Swin-VQGAN, got {vkind.name}')
        vq = _drop_alias(vqgan_sd, '') if vkind.layout == 'official' else vqgan_sd
        out = OrderedDict((k, v) for k, v in out.items() if not k.startswith(VQGAN_PREFIX))
        out.update((VQGAN_PREFIX + k, v) for k, v in vq.items())
    return _group_sort(out, OUR_ORDER['iter'])


def ours_to_official(sd: Mapping[str, Tensor], manifest_order: bool = True) -> StateDict:
    """Our state dict (SwinVQGAN or ITERNet) -> official, with the decoder re-emitted as ``generator.*``.

    Keys follow the official group order, our module order inside each group (which equals the authors'); with
    ``manifest_order`` and a released configuration the manifest's order is imposed (a no-op when all is well).

    Args:
        sd (Mapping[str, Tensor]): our state dict.
        manifest_order (bool): impose the manifest's order when the keys match it. Default: True.

    Returns:
        OrderedDict: the official state dict.

    Raises:
        ValueError: ``sd`` is not in our layout.
    """
    kind = detect_kind(sd)
    if kind.layout != 'ours':
        raise ValueError(f'expected an iter-mm state dict, got {kind.name}')
    root = '' if kind.family == 'swinvqgan' else VQGAN_PREFIX
    out = OrderedDict((_rename(k, [(o, f) for f, o in PREFIX_MAP]), v) for k, v in sd.items())
    dec = root + DECODER_ALIAS[1]
    out.update((root + DECODER_ALIAS[0] + k[len(dec) :], v) for k, v in list(out.items()) if k.startswith(dec))
    out = _group_sort(out, OFFICIAL_ORDER[kind.family])
    if not manifest_order:
        return out
    order = [e[0] for e in load_manifest(manifest_name(kind))]
    if not kind.has_vqgan:
        order = [k for k in order if not k.startswith(VQGAN_PREFIX)]
    if set(order) == set(out):
        out = OrderedDict((k, out[k]) for k in order)
    return out


def check_against_manifest(official_sd: Mapping[str, Tensor], name: str) -> list[str]:
    """Problems of an official state dict vs a manifest: missing/unexpected keys, shape or dtype mismatches.

    Args:
        official_sd (Mapping[str, Tensor]): an official state dict (without ``vqgan.*`` the manifest's are left out).
        name (str): the manifest (:func:`load_manifest`).

    Returns:
        list[str]: one line per problem; empty when it matches.
    """
    man = {k: (s, d) for k, s, d, _ in load_manifest(name)}
    if not any(k.startswith(VQGAN_PREFIX) for k in official_sd):
        man = {k: v for k, v in man.items() if not k.startswith(VQGAN_PREFIX)}
    problems = [f'missing {k}' for k in man if k not in official_sd]
    problems += [f'unexpected {k}' for k in official_sd if k not in man]
    for k, v in official_sd.items():
        if k in man and (tuple(v.shape) != man[k][0] or str(v.dtype).replace('torch.', '') != man[k][1]):
            problems.append(f'{k}: {tuple(v.shape)} {v.dtype} vs manifest {man[k][0]} {man[k][1]}')
    return problems


# --- strict loading -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyComparison:
    """How a state dict fits a module: the module's keys it lacks, its keys the module lacks, other shapes."""

    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    shapes: tuple[str, ...]  # 'key: checkpoint (shape) vs model (shape)'
    misshapen: tuple[str, ...] = ()  # the keys of ``shapes``

    @property
    def fits(self) -> bool:
        """Whether nothing is missing, unexpected or of another shape."""
        return not (self.missing or self.unexpected or self.shapes)

    def summary(self, first: int = 5) -> str:
        """``'N missing: [...]; M unexpected: [...]; K shape mismatches: [...]'`` (the first few of each).

        Args:
            first (int): keys listed per kind. Default: 5.

        Returns:
            str: the summary; empty when it fits.
        """
        return '; '.join(
            f'{len(keys)} {what}: {list(keys[:first])}'
            for what, keys in (
                ('missing', self.missing),
                ('unexpected', self.unexpected),
                ('shape mismatches', self.shapes),
            )
            if keys
        )


def compare_keys(own: Mapping[str, Tensor], sd: Mapping[str, Tensor], ignored: Sequence[str] = ()) -> KeyComparison:
    """Compare a module's state dict ``own`` with ``sd``.

    Entries of ``sd`` under a top-level name in ``ignored`` (training-only parts the module was built without) are not
    unexpected.

    Args:
        own (Mapping[str, Tensor]): the module's state dict.
        sd (Mapping[str, Tensor]): the state dict to load.
        ignored (Sequence[str]): top-level names allowed in ``sd`` only. Default: ().

    Returns:
        KeyComparison: missing, unexpected and misshapen keys.
    """
    missing = tuple(k for k in own if k not in sd)
    unexpected = tuple(k for k in sd if k not in own and k.split('.', 1)[0] not in ignored)
    misshapen = tuple(k for k, v in own.items() if k in sd and tuple(sd[k].shape) != tuple(v.shape))
    shapes = tuple(f'{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}' for k in misshapen)
    return KeyComparison(missing, unexpected, shapes, misshapen)


def load_state_dict_strict(
    module: nn.Module,
    sd: Mapping[str, Tensor],
    source: str = 'checkpoint',
    target: str | None = None,
    ignored: Sequence[str] = (),
) -> None:
    """The one strict load of iter-mm: every tensor of ``module`` from ``sd`` with its shape.

    Nothing else may be in ``sd`` but the ``ignored`` top-level parts.

    Args:
        module (nn.Module): the module to load into.
        sd (Mapping[str, Tensor]): the weights.
        source (str): the weights' name in messages. Default: 'checkpoint'.
        target (str, optional): the module's name in messages. Default: None (the module's class).
        ignored (Sequence[str]): top-level names allowed in ``sd`` only. Default: ().

    Raises:
        CheckpointMismatchError: listing the first missing / unexpected / misshapen keys, naming ``source``, what
            kind of checkpoint it is and ``target``.
    """
    own = module.state_dict()
    fit = compare_keys(own, sd, ignored)
    if not fit.fits:
        try:
            seen = detect_kind(unwrap_model_state(sd)).name
        except ValueError as err:
            seen = f'unrecognised ({err})'
        raise CheckpointMismatchError(
            f'cannot load {source} (kind seen: {seen}) strictly into {target or type(module).__name__}: {fit.summary()}'
        )
    module.load_state_dict({k: v for k, v in sd.items() if k in own}, strict=True)


# --- reading weights ----------------------------------------------------------------------------------------
def _source_name(src: Source) -> str:
    return str(src) if isinstance(src, (str, Path)) else 'checkpoint'


def model_weights(obj: Mapping) -> StateDict:
    """Network weights of a loaded checkpoint of any supported layout (:func:`extract_state_dict`).

    The EMA copy (``generator_ema.*``) is preferred over ``generator.*``; MMEngine's wrapper prefix is removed.

    Args:
        obj (Mapping): a loaded checkpoint.

    Returns:
        OrderedDict: the network's state dict.
    """
    sd, _ = extract_state_dict(obj)
    ema = OrderedDict(
        (k[len('generator_ema.') :].removeprefix('module.'), v) for k, v in sd.items() if k.startswith('generator_ema.')
    )
    return unwrap_model_state(ema if ema else sd)


def read_weights(src: Source, allow_pickle: bool = False, trusted: bool = False) -> StateDict:
    """:func:`model_weights` of a file or a loaded dict.

    Args:
        src (str | Path | Mapping): checkpoint file or loaded checkpoint.
        allow_pickle (bool): unpickle any object (full training checkpoints; trusted files only). Default: False.
        trusted (bool): a file refused weights-only is unpickled, as MMEngine's ``load_from`` does (the files a
            training config names). Default: False.

    Returns:
        OrderedDict: the network's state dict.

    Raises:
        MissingDataError, CheckpointReadError: see :func:`load_checkpoint_file`.
    """
    if isinstance(src, Mapping):
        return model_weights(src)
    try:
        obj = load_checkpoint_file(src, allow_pickle)
    except RuntimeError:
        if not trusted or allow_pickle:
            raise
        obj = load_checkpoint_file(src, allow_pickle=True)
    return model_weights(obj)


def stage1_aliases(stage1_checkpoint, **old):
    """The stage-I checkpoint given under its one name or a deprecated one (``vqgan_ckpt=``, ``vqgan=``).

    An old name gives a :class:`DeprecationWarning`.

    Args:
        stage1_checkpoint (Any): the value under the one name, or None.
        **old: deprecated names and their values (None: not given).

    Returns:
        Any: the stage-I checkpoint, or None.

    Raises:
        InvalidOptionError: two names give different values.
    """

    for name, value in old.items():
        if value is None:
            continue
        warnings.warn(
            f'{name} is deprecated; the stage-I checkpoint is named stage1_checkpoint', DeprecationWarning, stacklevel=3
        )
        if stage1_checkpoint is not None and str(stage1_checkpoint) != str(value):
            raise InvalidOptionError(
                f'stage1_checkpoint={stage1_checkpoint!r} and its deprecated name {name}={value!r} name different files'
            )
        stage1_checkpoint = value
    return stage1_checkpoint


def stage1_weights(src: Source, allow_pickle: bool = False, trusted: bool = False) -> StateDict:
    """Swin-VQGAN weights (our layout) from any file that holds stage I.

    That is ours or the authors' ``ITER_swinvqgan.pth``, a converted one, a stage-I training checkpoint (EMA copy
    preferred), or a full ITER checkpoint with ``vqgan.*`` (either layout).

    Args:
        src (str | Path | Mapping): checkpoint file or loaded checkpoint.
        allow_pickle (bool): see :func:`read_weights`. Default: False.
        trusted (bool): see :func:`read_weights`. Default: False.

    Returns:
        OrderedDict: Swin-VQGAN state dict in our layout.

    Raises:
        CheckpointMismatchError: not a stage-I checkpoint, or an ITER file without ``vqgan.*``.
    """
    sd = read_weights(src, allow_pickle, trusted)
    try:
        kind = detect_kind(sd)
    except ValueError as err:
        raise CheckpointMismatchError(f'{_source_name(src)} is not a stage-I checkpoint: {err}') from None
    if kind.family == 'iter':
        if not kind.has_vqgan:
            raise CheckpointMismatchError(
                f'{_source_name(src)} is an {kind.name} checkpoint: it holds no Swin-VQGAN weights, so it cannot be '
                "the stage-I checkpoint (a Swin-VQGAN file, ours or the authors' ITER_swinvqgan.pth, or a full ITER "
                'file with vqgan.*)'
            )
        sd = OrderedDict((k[len(VQGAN_PREFIX) :], v) for k, v in sd.items() if k.startswith(VQGAN_PREFIX))
        kind = detect_kind(sd)
    return _drop_alias(sd, '') if kind.layout == 'official' else OrderedDict(sd)


def convert_official(
    src: Source, stage1_checkpoint: Source | None = None, allow_pickle: bool = False, *, vqgan: Source | None = None
) -> StateDict:
    """Official checkpoint (path or dict) -> our state dict; the result always holds the VQGAN weights.

    Args:
        src (str | Path | Mapping): the authors' checkpoint.
        stage1_checkpoint (str | Path | Mapping, optional): ``ITER_swinvqgan.pth``, needed by an ITER checkpoint
            without vqgan.* (and refused for one with them). Default: None.
        allow_pickle (bool): see :func:`read_weights`. Default: False.
        vqgan (str | Path | Mapping, optional): deprecated name of ``stage1_checkpoint``. Default: None.

    Returns:
        OrderedDict: our state dict.

    Raises:
        CheckpointMismatchError: a missing or superfluous stage-I checkpoint, or keys that do not convert.
    """
    stage1_checkpoint = stage1_aliases(stage1_checkpoint, vqgan=vqgan)
    sd = read_weights(src, allow_pickle)
    kind = detect_kind(sd)
    if kind.family == 'iter' and not kind.has_vqgan and stage1_checkpoint is None:
        raise CheckpointMismatchError(
            f"{kind.name}: the VQGAN weights are not in this checkpoint; pass the authors' "
            f'Swin-VQGAN checkpoint as {STAGE1_OPTION}',
            arguments=('stage1_checkpoint',),
        )
    if kind.family == 'iter' and kind.has_vqgan and stage1_checkpoint is not None:  # would silently replace them
        raise CheckpointMismatchError(
            f'{kind.name}: this checkpoint holds its own VQGAN weights (vqgan.*); '
            "stage1_checkpoint is only for the authors' ITER files without them: leave "
            'it out'
        )
    vsd = None if stage1_checkpoint is None else stage1_weights(stage1_checkpoint, allow_pickle)
    try:
        return official_to_ours(sd, vsd)
    except ValueError as err:
        raise CheckpointMismatchError(str(err)) from None


def to_our_layout(
    sd: Mapping[str, Tensor],
    stage1_checkpoint: Source | None = None,
    allow_pickle: bool = False,
    source: str = 'checkpoint',
) -> tuple[StateDict, CheckpointKind]:
    """Network weights of either layout -> our layout, and the kind seen.

    The authors' files are converted through :func:`convert_official`; a separate stage-I file is refused for any other
    file (it would be ignored).

    Args:
        sd (Mapping[str, Tensor]): network weights.
        stage1_checkpoint (str | Path | Mapping, optional): the authors' ``ITER_swinvqgan.pth``. Default: None.
        allow_pickle (bool): see :func:`read_weights`. Default: False.
        source (str): the weights' name in messages. Default: 'checkpoint'.

    Returns:
        tuple[OrderedDict, CheckpointKind]: (our state dict, the kind seen).

    Raises:
        CheckpointMismatchError: not an ITER or Swin-VQGAN checkpoint, or a stage-I file it cannot use.
    """
    try:
        kind = detect_kind(sd)
    except ValueError as err:
        raise CheckpointMismatchError(f'{source}: not an ITER or Swin-VQGAN checkpoint ({err})') from None
    if kind.layout == 'official':
        try:
            return convert_official(sd, stage1_checkpoint, allow_pickle), kind
        except CheckpointMismatchError as err:
            raise CheckpointMismatchError(f'{source}: {err}', arguments=err.arguments) from None
    if stage1_checkpoint is not None:
        raise CheckpointMismatchError(
            f'{source}: {kind.name} checkpoint; a separate stage1_checkpoint is only for '
            "the authors' ITER files without vqgan.*"
        )
    return OrderedDict(sd), kind


def load_official(module: nn.Module, src: Source, stage1_checkpoint: Source | None = None) -> CheckpointKind:
    """Strictly load an official or iter-mm checkpoint into our SwinVQGAN / ITERNet.

    Args:
        module (nn.Module): a ``SwinVQGAN`` or ``ITERNet``.
        src (str | Path | Mapping): checkpoint file or loaded checkpoint.
        stage1_checkpoint (str | Path | Mapping, optional): the authors' ``ITER_swinvqgan.pth``. Default: None.

    Returns:
        CheckpointKind: the kind seen.

    Raises:
        CheckpointMismatchError: the weights do not fit ``module``.
    """
    sd, kind = to_our_layout(read_weights(src), stage1_checkpoint, source=_source_name(src))
    load_state_dict_strict(module, sd, source=kind.name)
    return kind


# --- converting files ---------------------------------------------------------------------------------------
def convert_file(
    src: str | Path,
    dst: str | Path,
    stage1_checkpoint: str | Path | None = None,
    reverse: bool = False,
    overwrite: bool = False,
    allow_pickle: bool = False,
) -> tuple[str, list[str]]:
    """Convert the authors' checkpoint ``src`` to an iter-mm one, or, with ``reverse``, ours to theirs.

    Ours is ``{'meta', 'state_dict': {'generator.' + key}}``; theirs ``{'params': ...}`` in the authors' key order,
    with the decoder aliases.

    Args:
        src (str | Path): the checkpoint to convert.
        dst (str | Path): the file to write (through a temporary file).
        stage1_checkpoint (str, optional): the authors' ``ITER_swinvqgan.pth`` for their ITER files without
            ``vqgan.*``. Default: None.
        reverse (bool): convert ours to the authors' layout. Default: False.
        overwrite (bool): replace an existing ``dst``. Default: False.
        allow_pickle (bool): unpickle arbitrary objects of ``src`` (trusted training checkpoints). Default: False.

    Returns:
        tuple[str, list[str]]: (one-line summary, notes such as differences from the released configuration).

    Raises:
        OutputExistsError: ``dst`` exists and ``overwrite`` is False.
        InvalidOptionError: ``dst`` is ``src``, or ``stage1_checkpoint`` with ``reverse``.
        CheckpointMismatchError: ``src`` is already in the target layout.
    """
    from ..errors import OutputExistsError

    src, dst = Path(src), Path(dst)
    if dst.exists() and not overwrite:
        raise OutputExistsError(f'{dst} exists; it is only overwritten when asked to')
    if dst.exists() and dst.resolve() == src.resolve():
        raise InvalidOptionError('the output must differ from the source checkpoint')
    sd = read_weights(src, allow_pickle)
    kind = detect_kind(sd)
    notes = []
    if reverse:
        if stage1_checkpoint is not None:
            raise InvalidOptionError('stage1_checkpoint only applies to official -> iter-mm conversion')
        if kind.layout != 'ours':
            raise CheckpointMismatchError(f'{src} is already an official checkpoint ({kind.name}); nothing to reverse')
        out = ours_to_official(sd)
        notes += _manifest_notes(out, kind)
        _save({'params': out}, dst)
        return f'{kind.name} -> official ({len(out)} entries incl. generator aliases): {dst}', notes
    if kind.layout != 'official':
        raise CheckpointMismatchError(
            f'{src} is already an iter-mm checkpoint ({kind.name}); reverse the conversion to export it'
        )
    notes += _manifest_notes(sd, kind)
    if stage1_checkpoint is not None and kind.family == 'iter' and kind.has_vqgan:
        notes.append(f'replacing the vqgan.* weights of {src} by those of {stage1_checkpoint}')
        sd = OrderedDict((k, v) for k, v in sd.items() if not k.startswith(VQGAN_PREFIX))
    ours = convert_official(sd, stage1_checkpoint, allow_pickle)
    meta = dict(
        converted_from=src.name,
        source_kind=kind.name,
        converter='iter_mm.utils.checkpoint.convert_file',
        vqgan_from=Path(stage1_checkpoint).name if stage1_checkpoint else None,
    )
    _save({'meta': meta, 'state_dict': {'generator.' + k: v for k, v in ours.items()}}, dst)
    return f'{kind.name} -> iter-mm ({len(ours)} entries under generator.*): {dst}', notes


def _manifest_notes(official_sd: Mapping[str, Tensor], kind: CheckpointKind) -> list[str]:
    problems = check_against_manifest(official_sd, manifest_name(kind))
    return (
        [
            f'{len(problems)} differences from the released {kind.name} configuration (expected for custom '
            f'configs), e.g. {problems[:3]}'
        ]
        if problems
        else []
    )


def _save(obj: dict, dst: Path) -> None:
    """torch.save through a temporary file: an interrupted write leaves no half file under ``dst``."""
    import os

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + '.partial')
    torch.save(obj, tmp)
    os.replace(tmp, dst)
