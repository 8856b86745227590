"""The one model loader of iter-mm: config + checkpoint -> a model ready for inference.

Every front end uses :func:`init_model` (``tools/infer.py``, ``ITERInferencer``, ``tools/compare_sr.py``,
``tools/benchmark_inference.py``), so each accepts the same files and refuses the wrong ones with the same error:

* config: a file, ``mmagic::<path>`` (MMagic's model zoo) or a loaded ``Config``; the model is built without its
  training-only parts (losses, discriminator, stage-I file: :func:`iter_mm.utils.config.inference_model_cfg`),
  so no LPIPS / VGG weights are needed.
* checkpoint: an iter-mm one (MMEngine ``state_dict`` with ``generator.*``, or a bare network state dict), the
  authors' released ``ITER_x2.pth`` / ``ITER_x4.pth`` (with their ``vqgan.*``, or with
  ``stage1_checkpoint=ITER_swinvqgan.pth``),
  the authors' ``ITER_swinvqgan.pth`` for a Swin-VQGAN config, or a full training checkpoint (which pickles its
  log state: ``allow_pickle=True``, only for files you trust).

Loading is strict (:func:`iter_mm.utils.checkpoint.load_state_dict_strict`, the one key comparison of iter-mm):
every tensor of the model must come from the file, with its shape, and nothing but the stripped training-only
parts may be left over. A Swin-VQGAN-only file for an ITER config, an x2 file for an x4
config, or a file of another model is refused with a :class:`CheckpointMismatchError` that says what the file is
and what the config needs (:mod:`iter_mm.errors`; also importable from here).
"""

from __future__ import annotations

import os
import os.path as osp
from typing import Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..errors import CheckpointMismatchError, InvalidOptionError, MissingDataError
from ..utils.checkpoint import (
    detect_kind,
    extract_state_dict,
    load_checkpoint_file,
    load_state_dict_strict,
    stage1_aliases,
    to_our_layout,
    unwrap_model_state,
)

__all__ = ['CheckpointMismatchError', 'checked_weights', 'init_model', 'load_model_weights']

GENERATOR = 'generator.'


def _is_iter(model: nn.Module) -> bool:
    net = getattr(model, 'generator', None)
    return net is not None and all(hasattr(net, n) for n in ('vqgan', 'lq_encoder', 'evaluator', 'refiner'))


def _is_swinvqgan(model: nn.Module) -> bool:
    net = getattr(model, 'generator', None)
    return net is not None and all(hasattr(net, n) for n in ('encoder', 'decoder', 'quantize'))


def _describe(model: nn.Module) -> str:
    if _is_iter(model):
        return f'an ITER x{int(model.generator.scale)} model'
    if _is_swinvqgan(model):
        return 'a Swin-VQGAN (stage-I) model'
    return f'a {type(model).__name__} model'


def _split(sd: Mapping[str, Tensor]) -> tuple[dict, dict]:
    """(network weights without ``generator.``, the other model-level entries such as ``generator_ema.*``)."""
    if any(k.startswith(GENERATOR) for k in sd):
        net = unwrap_model_state(sd)
        if len(net) != sum(k.startswith(GENERATOR) for k in sd):  # official VQGAN aliases, no wrapper prefix
            return dict(sd), {}
        return dict(net), {k: v for k, v in sd.items() if not k.startswith(GENERATOR)}
    return dict(sd), {}


def check_kind(model: nn.Module, kind, source: str) -> None:
    """Refuse a checkpoint of another kind than ``model`` (a Swin-VQGAN file for an ITER model, another scale).

    Args:
        model (nn.Module): the built ITER or Swin-VQGAN model.
        kind (CheckpointKind): what :func:`~iter_mm.utils.checkpoint.detect_kind` found in the file.
        source (str): the checkpoint's name in messages.

    Raises:
        CheckpointMismatchError: the checkpoint is not the model's (what it is, what is needed).
    """
    if _is_iter(model):
        scale = int(model.generator.scale)
        if kind.family == 'swinvqgan':
            raise CheckpointMismatchError(
                f'{source}: {kind.name} checkpoint (stage I only: no LQ encoder, phi_e or phi_r); the config '
                f"builds an ITER x{scale} model, which needs a full ITER checkpoint (the authors' ITER_x{scale}.pth "
                'or a stage II+III checkpoint). A Swin-VQGAN file is the stage-I checkpoint (stage1_checkpoint): '
                "with the authors' ITER files without vqgan.*, or model.stage1_checkpoint for training."
            )
        if kind.scale != scale:
            raise CheckpointMismatchError(
                f'{source}: {kind.name} checkpoint, but the config builds an ITER x{scale} model; use an '
                f'x{kind.scale} config (configs/iter/iter_x{kind.scale}_realsr.py) or an x{scale} checkpoint'
            )
    elif _is_swinvqgan(model) and kind.family != 'swinvqgan':
        raise CheckpointMismatchError(
            f'{source}: {kind.name} checkpoint; the config builds a Swin-VQGAN '
            '(stage-I) model: use an ITER config, or a Swin-VQGAN checkpoint'
        )


def _network_state(model: nn.Module, sd: Mapping[str, Tensor], stage1, allow_pickle: bool, source: str) -> dict:
    """State dict of the whole model (``generator.*`` + other entries) from any supported checkpoint layout."""
    net_sd, rest = _split(sd)
    try:
        kind = detect_kind(net_sd)
    except ValueError as err:
        raise CheckpointMismatchError(
            f'{source}: not an ITER or Swin-VQGAN checkpoint ({err}); the config builds {_describe(model)}'
        ) from None
    check_kind(model, kind, source)
    net_sd, _ = to_our_layout(net_sd, stage1, allow_pickle, source)
    full = {GENERATOR + k: v for k, v in net_sd.items()}
    own = model.state_dict()
    if _is_swinvqgan(model) and kind.layout == 'official':  # the EMA copy of the generator has the same weights
        full.update(
            {
                k: full[GENERATOR + k[len('generator_ema.') :]]
                for k in own
                if k.startswith('generator_ema.') and GENERATOR + k[len('generator_ema.') :] in full
            }
        )
    full.update(rest)
    return full


def load_model_weights(
    model: nn.Module,
    checkpoint: Union[str, Mapping],
    *,
    stage1_checkpoint=None,
    allow_pickle: bool = False,
    ignored: Sequence[str] = (),
    vqgan=None,
) -> None:
    """Strictly load ``checkpoint`` (a file or a loaded dict) into ``model`` (see the module docstring).

    Args:
        model (nn.Module): the built model.
        checkpoint (str | Mapping): checkpoint file or loaded checkpoint dict.
        stage1_checkpoint (str | Mapping, optional): the authors' ``ITER_swinvqgan.pth`` (path or dict) for their
            ITER files without ``vqgan.*``. Default: None.
        allow_pickle (bool): unpickle arbitrary objects (full MMEngine training checkpoints); only for trusted files.
            Default: False.
        ignored (Sequence[str]): top-level names whose entries the file may hold although the model lacks them (the
            training-only parts stripped from the config). Default: ().
        vqgan (str | Mapping, optional): deprecated name of ``stage1_checkpoint``. Default: None.

    Raises:
        CheckpointMismatchError: unreadable file, pickled objects without ``allow_pickle``, or a checkpoint that is
            not the model's.
    """
    stage1_checkpoint = stage1_aliases(stage1_checkpoint, vqgan=vqgan)
    source = str(checkpoint) if isinstance(checkpoint, (str, bytes, os.PathLike)) else 'checkpoint'
    if isinstance(checkpoint, Mapping):
        obj = checkpoint
    else:
        try:
            obj = load_checkpoint_file(checkpoint, allow_pickle=allow_pickle)
        except RuntimeError as err:  # unreadable, or pickled objects without allow_pickle
            raise CheckpointMismatchError(str(err), arguments=getattr(err, 'arguments', ())) from None
    try:
        sd, _ = extract_state_dict(obj)
    except ValueError as err:
        raise CheckpointMismatchError(f'{source}: {err}') from None
    if _is_iter(model) or _is_swinvqgan(model):
        sd = _network_state(model, sd, stage1_checkpoint, allow_pickle, source)
    elif stage1_checkpoint is not None:
        raise CheckpointMismatchError(f'stage1_checkpoint is only for ITER models, not {_describe(model)}')
    load_state_dict_strict(model, sd, source, target=f"the config's model ({_describe(model)})", ignored=ignored)


def init_model(
    config,
    checkpoint: Optional[Union[str, Mapping]] = None,
    *,
    device: Union[str, torch.device] = 'cpu',
    stage1_checkpoint=None,
    allow_pickle: bool = False,
    cfg_options: Optional[dict] = None,
    random_weights: bool = False,
    vqgan=None,
) -> nn.Module:
    """Build the model of ``config`` for inference and load ``checkpoint`` strictly.

    Args:
        config (str | Config): config file, ``mmagic::<path>``, or a loaded ``Config`` (with ``model``).
        checkpoint (str | Mapping, optional): see the module docstring. ``None`` is refused unless
            ``random_weights`` (demos, timing). Default: None.
        device (str | torch.device): where the model goes. Default: 'cpu'.
        stage1_checkpoint (str | Mapping, optional): the authors' ``ITER_swinvqgan.pth`` for their ITER files without
            ``vqgan.*``. Default: None.
        allow_pickle (bool): allow full training checkpoints with pickled objects (trusted files only).
            Default: False.
        cfg_options (dict, optional): overrides merged into the config (``load_config``). Default: None.
        random_weights (bool): keep the constructor's (random) weights when ``checkpoint`` is None, without warnings.
            Default: False.
        vqgan (str | Mapping, optional): deprecated name of ``stage1_checkpoint``. Default: None.

    Returns:
        nn.Module: the model on ``device`` in eval mode, with its config as ``model.cfg``.

    Raises:
        InvalidOptionError: no checkpoint without ``random_weights``.
        MissingDataError: a config or checkpoint file does not exist.
        CheckpointMismatchError: the checkpoint is not the model's (message: what it is, what is needed).
    """
    from mmagic.registry import MODELS

    from ..utils.config import inference_model_cfg, load_config, training_only_keys
    from ..utils.quiet import quiet_mmengine

    if isinstance(config, (str, os.PathLike)):
        cfg = load_config(str(config), cfg_options)
    else:
        cfg = config
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        from mmengine.registry import init_default_scope

        init_default_scope(cfg.get('default_scope', None) or 'mmagic')
    stage1_checkpoint = stage1_aliases(stage1_checkpoint, vqgan=vqgan)
    if checkpoint is None and not random_weights:
        raise InvalidOptionError(
            "no checkpoint given: pass the model's checkpoint, or random_weights=True for a demo with random weights"
        )
    if isinstance(checkpoint, (str, os.PathLike)) and not osp.isfile(checkpoint):
        raise MissingDataError(f'checkpoint file not found: {checkpoint}')
    ignored = training_only_keys(cfg.model)
    with quiet_mmengine():
        model = MODELS.build(inference_model_cfg(cfg.model))
    if checkpoint is not None:
        load_model_weights(
            model, checkpoint, stage1_checkpoint=stage1_checkpoint, allow_pickle=allow_pickle, ignored=ignored
        )
    else:
        try:
            with quiet_mmengine():
                model.init_weights()
        except (FileNotFoundError, OSError):  # a 'Pretrained' init_cfg pointing nowhere: constructor weights
            pass
        if hasattr(model, 'warn_random_vqgan'):
            model.warn_random_vqgan = False  # random weights were asked for
    model.cfg = cfg
    return model.to(device).eval()


def checked_weights(model_cfg: dict, checkpoint: str, ignored: Sequence[str] = ()) -> dict:
    """The state dict of ``model_cfg``'s model with ``checkpoint`` loaded as :func:`init_model` loads it.

    Every tensor of the model comes from the file, nothing else is left but the ``ignored`` training-only parts; for a
    Runner that then tests it. Full training checkpoints are unpickled, as MMEngine's ``load_from`` would: name files
    you trust.

    Args:
        model_cfg (dict): the model's config.
        checkpoint (str): checkpoint file.
        ignored (Sequence[str]): training-only top-level names the file may hold. Default: ().

    Returns:
        dict: the model's state dict.

    Raises:
        CheckpointMismatchError: the file is not the model's (what it is, what the config needs).
    """
    from mmagic.registry import MODELS

    from ..utils.quiet import quiet_mmengine

    with quiet_mmengine():
        model = MODELS.build(model_cfg)
    load_model_weights(model, checkpoint, allow_pickle=True, ignored=ignored)
    return model.state_dict()
