"""MMEngine's Runner with iter-mm's checkpoint reading: ``load_from`` and ``resume`` on torch >= 2.6.

torch 2.6 made ``torch.load(weights_only=True)`` the default. MMEngine 0.10.7 still calls ``torch.load`` without
the argument, so its Runner fails to ``resume`` or ``load_from`` its own checkpoints (they pickle the message hub's
``HistoryBuffer`` and numpy scalars). :class:`ITERRunner` reads local checkpoint files through iter-mm's loader
(:func:`~iter_mm.utils.checkpoint.load_checkpoint_file`, pickles allowed: checkpoints named in ``load_from`` /
``resume`` are trusted, MMEngine's and torch's documented rule) and leaves everything else to MMEngine. Nothing
of MMEngine is changed: the tools build this Runner explicitly (``ITERRunner.from_cfg(cfg)``), and a config may
name it (``runner_type = 'ITERRunner'``) for MMagic's own ``tools/train.py``.
"""

from __future__ import annotations

from typing import Callable, Union

from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from mmagic.registry import RUNNERS

from ..utils.checkpoint import load_checkpoint_file

__all__ = ['ITERRunner']


@RUNNERS.register_module()
class ITERRunner(Runner):
    """MMEngine's :class:`~mmengine.runner.Runner`, reading local checkpoints with iter-mm's loader (see the module
    docstring); URLs and other schemes go through MMEngine's loaders unchanged.

    Takes the arguments of :class:`~mmengine.runner.Runner`; build it with ``ITERRunner.from_cfg(cfg)``.
    """

    def load_checkpoint(
        self,
        filename: str,
        map_location: Union[str, Callable] = 'cpu',
        strict: bool = False,
        revise_keys: list = [(r'^module.', '')],
    ) -> dict:  # noqa: B006 (MMEngine's signature)
        """Load ``filename`` into the model, as MMEngine's method does (``after_load_checkpoint`` hooks, key
        revision, non-strict by default); a local file is read to CPU by iter-mm's loader.

        Args:
            filename (str): local path, or a URL / other scheme (``://``) for MMEngine's loaders.
            map_location (str | Callable): used for URLs only; a local file's tensors are left to the model's and
                optimizer's own devices. Default: 'cpu'.
            strict (bool): require the checkpoint's keys to match the model's exactly. Default: False.
            revise_keys (list): (pattern, replacement) pairs applied to the checkpoint's keys.
                Default: [(r'^module.', '')].

        Returns:
            dict: the loaded checkpoint.

        Raises:
            MissingDataError: the local file does not exist.
            CheckpointReadError: the local file is not a readable checkpoint.
            InvalidInputError: the local file holds no dict.
        """
        if '://' in str(filename):
            return super().load_checkpoint(filename, map_location, strict, revise_keys)
        checkpoint = load_checkpoint_file(filename, allow_pickle=True)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        checkpoint = _load_checkpoint_to_model(model, checkpoint, strict, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint
