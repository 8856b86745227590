"""Checkpoints of models whose networks are wrapped one by one (MMEngine's separate DDP wrapper) that load
anywhere.

``MMSeparateDistributedDataParallel`` replaces each trainable child (``generator``, ``discriminator``) by a DDP
wrapper, and MMEngine saves ``model.module.state_dict()``: a multi-GPU checkpoint would then hold
``generator.module.*`` keys that a single-process model (test, inference, stage II) does not have. These hooks save
every wrapped child under its plain name, and load plain (or older ``.module.``) keys into whichever form the child
has now, through either loader:

* MMEngine's ``load_state_dict`` (``--resume``, ``load_from``) unwraps each wrapper as it recurses, so the inner
  network reads the plain keys: the model's hook turns ``.module.`` keys into plain ones;
* ``torch.nn.Module.load_state_dict`` visits the wrapper itself, whose child is ``module``: a hook on the wrapper,
  added by the model's hook on first use, turns the plain keys back into ``.module.`` ones.
"""

from typing import Dict

import torch
from mmengine.model import is_model_wrapper


def _rename(state_dict: Dict, old: str, new: str) -> None:
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[new + key[len(old) :]] = state_dict.pop(key)


def _save_plain(module: torch.nn.Module, state_dict: Dict, prefix: str, local_metadata) -> None:
    for name, child in module.named_children():
        if is_model_wrapper(child):
            _rename(state_dict, f'{prefix}{name}.module.', f'{prefix}{name}.')


def _load_into_wrapper(wrapper: torch.nn.Module, state_dict: Dict, prefix: str, *args) -> None:
    """Pre-hook of a wrapper, run only by torch's loader: plain ``<prefix>*`` keys -> ``<prefix>module.*``."""
    wrapped = f'{prefix}module.'
    for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(wrapped)]:
        state_dict[wrapped + key[len(prefix) :]] = state_dict.pop(key)


def _load_plain(module: torch.nn.Module, state_dict: Dict, prefix: str, *args) -> None:
    """Pre-hook of the model: every child's keys in plain form; wrappers get :func:`_load_into_wrapper` once."""
    for name, child in module.named_children():
        _rename(state_dict, f'{prefix}{name}.module.', f'{prefix}{name}.')
        if is_model_wrapper(child) and not getattr(child, '_iter_mm_plain_keys', False):
            child._register_load_state_dict_pre_hook(_load_into_wrapper, with_module=True)
            child._iter_mm_plain_keys = True


def portable_wrapped_state(model: torch.nn.Module) -> None:
    """Register the save and load hooks on ``model``.

    Args:
        model (torch.nn.Module): the module whose children get wrapped (e.g. a GAN model with ``generator`` and
            ``discriminator``).
    """
    model._register_state_dict_hook(_save_plain)
    model._register_load_state_dict_pre_hook(_load_plain, with_module=True)
