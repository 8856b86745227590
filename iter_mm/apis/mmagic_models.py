"""Any MMagic super-resolution model as a plain function, and where MMagic's model-zoo configs live.

:func:`sr_function` turns a built model into ``lq -> sr`` (ITER through ``restore``, every other MMagic model
through its test path: preprocessor, forward, destruct, channel order); :func:`build_sr_function` builds it from a
config through the one loader; :func:`resolve_config` finds a config in the current folder, among iter-mm's
configs or in MMagic's model zoo (``mmagic/.mim/configs``).
"""

from __future__ import annotations

import os.path as osp
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InvalidOptionError, ITERError, MissingDataError

__all__ = ['zoo_root', 'zoo_config_candidates', 'resolve_config', 'zoo_generator', 'sr_function', 'build_sr_function']

SRFunction = Callable[[Tensor], Tensor]


def _mmagic_dir() -> str:
    import mmagic

    return osp.dirname(mmagic.__file__)


def zoo_root() -> str:
    """The folder of MMagic's model-zoo configs (``mmagic/.mim/configs`` of the installed package).

    Returns:
        str: the folder path.
    """
    return osp.join(_mmagic_dir(), '.mim', 'configs')


def zoo_config_candidates(rel: str) -> List[str]:
    """Where MMagic looks for a config ``rel`` that starts with ``configs/``.

    Args:
        rel (str): config path starting with ``configs/``.

    Returns:
        list[str]: a source checkout's ``configs/`` next to the package, and the installed package's ``.mim/``.
    """
    return [osp.join(_mmagic_dir(), '..', rel), osp.join(_mmagic_dir(), '.mim', rel)]


def resolve_config(path: str) -> str:
    """Find a config: a file, a ``<scope>::<path>`` name, one of iter-mm's ``configs/...``, or a model-zoo path.

    Args:
        path (str): a config file, a ``<scope>::<path>`` name (returned as is), one of iter-mm's ``configs/...``
            from any folder, or a path relative to MMagic's model-zoo configs.

    Returns:
        str: the config's path (or the scoped name).

    Raises:
        MissingDataError: None of these, naming the zoo folder looked in.
    """
    if osp.isfile(path) or '::' in path:
        return path
    from ..utils.config_paths import resolve_config_path

    try:
        return resolve_config_path(path)
    except FileNotFoundError:
        pass
    root = zoo_root()
    if osp.isfile(osp.join(root, path)):
        return osp.join(root, path)
    raise MissingDataError(f"config '{path}' is neither a file nor a config of MMagic's model zoo (looked in {root})")


def zoo_generator(rel: str, **overrides) -> torch.nn.Module:
    """The generator of the zoo config ``rel`` (random weights), with ``overrides`` of its arguments.

    Args:
        rel (str): config path relative to :func:`zoo_root`.
        **overrides: arguments of the generator that replace the config's.

    Returns:
        torch.nn.Module: the built generator.

    Raises:
        MissingDataError: no such config in the zoo.
    """
    from mmengine.config import Config

    from mmagic.registry import MODELS

    path = osp.join(zoo_root(), rel)
    if not osp.isfile(path):
        raise MissingDataError(f'MMagic config {rel} not found under {zoo_root()}')
    gen = dict(Config.fromfile(path).model.generator)
    gen.update(overrides)
    return MODELS.build(gen)


def sr_function(model: torch.nn.Module, restore_opts: Optional[Dict[str, object]] = None) -> SRFunction:
    """A built model as ``fn(lq) -> sr``: (1, 3, h, w) RGB in [0, 1] -> (1, 3, h*s, w*s) RGB in [0, 1].

    ITER runs through ``model.restore(lq, **restore_opts)``; any other MMagic model through its test path
    (``test_step``: its preprocessor, forward and destruct), told that the input is RGB. ``fn.model`` is the model.

    Args:
        model (torch.nn.Module): a built ITER or MMagic SR model.
        restore_opts (dict, optional): ``RestoreOptions`` overrides for ITER; unused for other models.
            Default: None.

    Returns:
        Callable[[Tensor], Tensor]: the SR function, with attribute ``model``.
    """
    if hasattr(model, 'restore'):  # ITER: the documented inference API

        def restore(lq: Tensor) -> Tensor:
            return model.restore(lq, **(restore_opts or {}))

        restore.model = model
        return restore
    from mmagic.structures import DataSample

    from ..utils.quiet import quiet_mmengine

    def run(lq: Tensor) -> Tensor:  # MMagic's test path: preprocessor -> forward(predict) -> destruct
        data = dict(inputs=[lq[0] * 255.0], data_samples=[DataSample(metainfo=dict(img_channel_order='rgb'))])
        with quiet_mmengine():
            out = model.test_step(data)[0].output.pred_img
        out = out.data if hasattr(out, 'data') else out
        # MMagic's preprocessor destructs predictions to BGR when it knows the input order (given above as RGB)
        return (torch.as_tensor(out).float().flip(0)[None] / 255.0).clamp(0, 1)

    run.model = model
    return run


def build_sr_function(
    name: str,
    config: str,
    checkpoint: Optional[str],
    scale: int,
    device: str = 'cpu',
    random_weights: bool = False,
    restore_opts: Optional[Dict[str, object]] = None,
    cfg_options: Optional[dict] = None,
    allow_pickle: bool = False,
) -> SRFunction:
    """:func:`sr_function` of the model of ``config`` with ``checkpoint`` ('bicubic': bicubic upscaling).

    Models load through the one loader (``iter_mm.apis.init_model``: strict; ``allow_pickle`` for trusted full
    training checkpoints); nothing may download while they are built.

    Args:
        name (str): The model's name in messages.
        config (str): 'bicubic' or a config (see :func:`resolve_config`).
        checkpoint (str, optional): Its weights; None needs ``random_weights``.
        scale (int): The upscaling factor the model must have.
        device (str): Where it runs. Default: 'cpu'.
        random_weights (bool): Allow no checkpoint (a demo, not a result). Default: False.
        restore_opts (dict, optional): ``RestoreOptions`` overrides for ITER. Default: None.
        cfg_options (dict, optional): Overrides of config keys. Default: None.
        allow_pickle (bool): Allow pickled objects in the checkpoint. Default: False.

    Returns:
        Callable[[Tensor], Tensor]: (1, 3, h, w) RGB in [0, 1] -> (1, 3, h*s, w*s) RGB in [0, 1].

    Raises:
        InvalidOptionError: No checkpoint without ``random_weights``, a checkpoint for bicubic, another scale.
        MissingDataError, CheckpointMismatchError: From the loader, prefixed with the model's name.
    """
    if config == 'bicubic':
        if checkpoint:
            raise InvalidOptionError(f"model '{name}': bicubic takes no checkpoint")
        return lambda lq: F.interpolate(lq, scale_factor=scale, mode='bicubic', align_corners=False).clamp(0, 1)
    from ..evaluation.metrics.pyiqa_metric import offline_weights
    from .model_loader import init_model

    if checkpoint is None and not random_weights:
        raise InvalidOptionError(
            f"model '{name}' has no checkpoint: give NAME=CONFIG:CHECKPOINT, or allow "
            'random weights (a demo, not a result)'
        )
    with offline_weights(f"model '{name}'"):  # nothing may download
        try:
            model = init_model(
                resolve_config(config),
                checkpoint,
                device=device,
                cfg_options=cfg_options or None,
                random_weights=random_weights,
                allow_pickle=allow_pickle,
            )
        except (ValueError, RuntimeError) as err:  # the loader's refusal, naming the model (arguments kept)
            kind = type(err) if isinstance(err, ITERError) else InvalidOptionError
            raise kind(f"model '{name}': {err}", arguments=getattr(err, 'arguments', ())) from None
    scale_of = getattr(getattr(model, 'generator', None), 'scale', scale)
    if int(scale_of) != scale:
        raise InvalidOptionError(f"model '{name}' upscales x{scale_of}, not x{scale}")
    return sr_function(model, restore_opts)
