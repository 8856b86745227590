"""Local checkpoint loading that works with MMEngine 0.10 on torch >= 2.6.

torch 2.6 made ``torch.load(weights_only=True)`` the default. MMEngine 0.10.7 still calls ``torch.load`` without
the argument, so ``--resume`` and ``load_from`` fail on its own checkpoints (they pickle the message hub's
``HistoryBuffer`` and numpy scalars). This re-registers the loader of local paths with the behaviour MMEngine was
written for. Only load checkpoints you trust, as with any pickle (MMEngine's and torch's documented rule).
"""
import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location=None) -> dict:
    """Load a local checkpoint file (a full pickle: optimizer state, message hub, meta)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint not found: {filename}')
    return torch.load(filename, map_location=map_location, weights_only=False)
