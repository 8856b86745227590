"""Config helpers shared by the command-line tools and the inferencer."""

import copy
from typing import List, Optional

from mmengine.config import Config, ConfigDict

from ..errors import InvalidOptionError
from .config_paths import resolve_config_path

#: Models of this package whose loss / discriminator entries are only needed for training.
PLUGIN_MODELS = ('ITERModel', 'SwinVQGANModel')


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config and apply overrides.

    ``path`` may be a config file, ``mmagic::<path>`` from MMagic's model zoo or ``iter_mm::<path>`` from ours (also
    ``configs/...`` outside the repository, from the installed package). Also registers iter-mm's and MMagic's
    components and makes the config's ``default_scope`` (``mmagic`` unless it names another) the current default
    scope, so that ``MODELS.build(load_config(path).model)`` works with no other call first, and MMagic's own configs
    and ours run through the same tools.

    Args:
        path (str): the config.
        cfg_options (dict, optional): overrides merged into it (a key next to a nearly equal existing one warns).
            Default: None.

    Returns:
        Config: the loaded config.

    Raises:
        MissingDataError: the config file does not exist.
        InvalidOptionError: a ``cfg_options`` entry that would change nothing (a top-level folder variable).
    """
    from .quiet import quiet_imports
    from .setup_env import register_all_modules as register_iter_mm

    register_iter_mm(init_default_scope=False, deferred=True)  # (as ``import iter_mm`` did already)
    with quiet_imports():  # MMagic's model zoo imports diffusers, timm, ... with their deprecation warnings
        from mmagic.utils import register_all_modules

        register_all_modules(init_default_scope=False)

    path = resolve_config_path(path)  # iter_mm::/configs/... also from an installed package
    if '::' in path:
        from mmengine.hub import get_config

        cfg = get_config(path)
    else:
        cfg = Config.fromfile(path)
    if cfg_options:
        _check_top_level_variables(cfg, cfg_options)
        _warn_likely_typos(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    cfg.setdefault('default_scope', 'mmagic')
    from mmengine.registry import init_default_scope

    init_default_scope(cfg.default_scope)
    return cfg


def _check_top_level_variables(cfg: Config, cfg_options: dict) -> None:
    """Refuse overrides of the config's top-level folder variables (``data_root``, ``val_data_root``, ...).

    The loaders read such a variable when the file is parsed; overriding it afterwards changes nothing, so the run
    would silently train and validate on the config's own folders.
    """
    stale = [k for k in cfg_options if '.' not in k and k.endswith('data_root') and k in cfg]
    if stale:
        raise InvalidOptionError(
            f'{", ".join(stale)}: a top-level variable of the config, read by its data loaders when the file is '
            "parsed, so overriding it (cfg_options) changes nothing. Set the loaders' folders instead: "
            'train_dataloader.dataset.data_root=DIR val_dataloader.dataset.data_root=DIR '
            'test_dataloader.dataset.data_root=DIR (README: "Train on your own photos").',
            arguments=('cfg_options',),
        )


def _warn_likely_typos(cfg: Config, cfg_options: dict) -> None:
    """Warn for an override that adds a key next to an existing one of nearly the same name (``model.vqgan_ckp``):
    MMEngine would add it silently and the intended key keep its value. New keys are otherwise fine (options with
    defaults), so this only warns."""
    import difflib
    import warnings

    for key in cfg_options:
        *parents, leaf = key.split('.')
        node = dict(cfg.items())
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                break
        if not isinstance(node, dict) or leaf in node or leaf.isdigit():
            continue
        close = difflib.get_close_matches(leaf, [str(k) for k in node], n=1, cutoff=0.8)
        if close:
            hint = '.'.join(parents + close)
            warnings.warn(
                f'cfg_options {key}: the config has no such key, so it is added and {hint} keeps its '
                f'value; did you mean {hint}?',
                stacklevel=3,
            )


def enable_amp(cfg: Config, dtype: Optional[str] = None, device: Optional[str] = None) -> str:
    """Switch every optimizer wrapper of ``cfg`` (single or per-module dict) to mixed precision.

    On CUDA: MMEngine's ``AmpOptimWrapper`` (fp16 with dynamic loss scaling, or ``dtype``). Without a GPU:
    ``AutocastOptimWrapper`` with bf16 autocast (MMEngine's AMP wrapper refuses CPUs).

    Args:
        cfg (Config): a training config (changed in place).
        dtype (str, optional): the autocast dtype. Default: None (fp16 on CUDA, 'bfloat16' on CPU).
        device (str, optional): 'cuda' or 'cpu'. Default: None (CUDA when available).

    Returns:
        str: the wrapper type, 'AmpOptimWrapper' or 'AutocastOptimWrapper'.

    Raises:
        InvalidOptionError: a wrapper other than ``OptimWrapper``.
    """
    import torch

    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    wrapper = cfg.optim_wrapper
    targets = (
        [wrapper]
        if 'type' in wrapper or 'optimizer' in wrapper
        else [w for k, w in wrapper.items() if k != 'constructor' and isinstance(w, dict)]
    )
    new_type = 'AmpOptimWrapper' if device == 'cuda' else 'AutocastOptimWrapper'
    for w in targets:
        if w.get('type', 'OptimWrapper') in ('AmpOptimWrapper', 'AutocastOptimWrapper'):
            continue
        if w.get('type', 'OptimWrapper') != 'OptimWrapper':
            raise InvalidOptionError(
                f'mixed precision (amp) supports OptimWrapper only, got {w["type"]}', arguments=('amp',)
            )
        w.type = new_type
        if new_type == 'AmpOptimWrapper':
            w.loss_scale = 'dynamic'
            if dtype is not None:
                w.dtype = dtype
        else:
            w.dtype = dtype or 'bfloat16'
    return new_type


def training_only_keys(model_cfg: dict) -> List[str]:
    """Keys of a model config that only training needs: the discriminator and the losses.

    ``pixel_loss`` of MMagic's models stays (``BaseEditModel`` requires it; L1 has no weights); ITER's models
    also drop it, their stage-I file and their initialisation (``stage1_checkpoint``, its deprecated name
    ``vqgan_ckpt``, ``init_from``).

    Args:
        model_cfg (dict): a model config.

    Returns:
        list[str]: the keys set (not None) in ``model_cfg``.
    """
    plugin = model_cfg.get('type') in PLUGIN_MODELS
    keys = [
        k
        for k, v in model_cfg.items()
        if v is not None and (k == 'discriminator' or (k.endswith('_loss') and (plugin or k != 'pixel_loss')))
    ]
    if plugin:
        keys += [k for k in ('stage1_checkpoint', 'vqgan_ckpt', 'init_from') if model_cfg.get(k) is not None]
    return keys


def inference_model_cfg(model_cfg: dict) -> ConfigDict:
    """Copy of a model config without what only training needs (see :func:`training_only_keys`).

    Testing and inference then need no LPIPS/VGG weights (ITER) and no perceptual-loss VGG19 download
    (MMagic's GAN models such as Real-ESRGAN), nor a stage-I file.

    Args:
        model_cfg (dict): a model config (not changed).

    Returns:
        ConfigDict: the copy, those keys set to None.
    """
    cfg = ConfigDict(copy.deepcopy(dict(model_cfg)))
    for key in training_only_keys(cfg):
        cfg[key] = None
    return cfg
