"""Checkpoints of models whose networks are wrapped one by one (MMEngine's separate DDP wrapper) that load
anywhere.

``MMSeparateDistributedDataParallel`` replaces each trainable child (``generator``, ``discriminator``) by a DDP
wrapper, and MMEngine saves ``model.module.state_dict()``: a multi-GPU checkpoint then holds
``generator.module.*`` keys that a single-process model (test, inference, stage II) does not have, and a
single-process checkpoint could not be resumed under DDP. These hooks save every wrapped child under its plain
name and load plain (or older ``.module.``) keys into whichever form the child has now.
"""
from typing import Dict

import torch
from mmengine.model import is_model_wrapper


def _rename(state_dict: Dict, old: str, new: str) -> None:
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[new + key[len(old):]] = state_dict.pop(key)


def _save_plain(module: torch.nn.Module, state_dict: Dict, prefix: str, local_metadata) -> None:
    for name, child in module.named_children():
        if is_model_wrapper(child):
            _rename(state_dict, f'{prefix}{name}.module.', f'{prefix}{name}.')


def _load_either(module: torch.nn.Module, state_dict: Dict, prefix: str, *args) -> None:
    for name, child in module.named_children():
        plain, wrapped = f'{prefix}{name}.', f'{prefix}{name}.module.'
        if is_model_wrapper(child):
            if not any(k.startswith(wrapped) for k in state_dict):
                _rename(state_dict, plain, wrapped)
        else:
            _rename(state_dict, wrapped, plain)


def portable_wrapped_state(model: torch.nn.Module) -> None:
    """Register the save and load hooks on ``model`` (the module whose children get wrapped)."""
    model._register_state_dict_hook(_save_plain)
    model._register_load_state_dict_pre_hook(_load_either, with_module=True)
