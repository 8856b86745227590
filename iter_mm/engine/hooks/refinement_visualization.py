"""Visualise ITER's iterative refinement (decoded tokens and keep-masks of every step) during val/test.

The pictures are the images being validated / tested: the hook calls the model's own ``restore`` with the
options of the loop it runs in (``val_cfg`` in validation, ``test_cfg`` in test; the hook's ``sampling``
overrides on top) and shows the intermediate steps that restoration returns.
"""

import logging
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmagic.registry import HOOKS

from ...errors import InvalidOptionError
from ...models.options import RestoreOptions


def refinement_mosaic(step_images: torch.Tensor, step_keep: torch.Tensor) -> torch.Tensor:
    """Two-row mosaic for one image: decoded steps on top, keep-masks (white = kept) below.

    Args:
        step_images (torch.Tensor): Decoded image of each step in [0, 1], shape (T, 3, H, W).
        step_keep (torch.Tensor): Binary keep-mask of each step on the token grid, shape (T, h, w).

    Returns:
        torch.Tensor: The mosaic as uint8 RGB, shape (2 H, T W, 3).
    """
    t, _, h, w = step_images.shape
    masks = F.interpolate(step_keep[:, None].float(), size=(h, w), mode='nearest').expand(-1, 3, -1, -1)
    rows = [torch.cat(list(step_images.float()), dim=2), torch.cat(list(masks), dim=2)]
    mosaic = torch.cat(rows, dim=1).clamp(0, 1)
    return (mosaic * 255).round().to(torch.uint8).permute(1, 2, 0).cpu()


@HOOKS.register_module()
class RefinementVisualizationHook(Hook):
    """Add a mosaic of the refinement steps of the first inputs of a val/test batch to the runner's visualizer.

    Every ``interval`` val/test iterations, the first ``max_images`` inputs are restored with intermediates and shown
    through the visualizer's backends (local files, TensorBoard, ...).

    Args:
        interval (int): Batches between two visualisations. Default: 1.
        max_images (int): Inputs of a batch to show. Default: 1.
        on_val (bool): Whether to visualise in validation. Default: True.
        on_test (bool): Whether to visualise in test. Default: True.
        sampling (dict, optional): Overrides of the loop's options (fields of ``RestoreOptions``: alpha, steps,
            ...). Default: None, so the mosaic shows the restoration being evaluated.

    Raises:
        InvalidOptionError: ``interval`` or ``max_images`` < 1, or an unknown name in ``sampling``.
    """

    priority = 'LOW'

    def __init__(
        self,
        interval: int = 1,
        max_images: int = 1,
        on_val: bool = True,
        on_test: bool = True,
        sampling: Optional[dict] = None,
    ) -> None:
        if interval < 1 or max_images < 1:
            raise InvalidOptionError('interval and max_images must be >= 1')
        self.interval, self.max_images = interval, max_images
        self.on_val, self.on_test = on_val, on_test
        RestoreOptions.check_names(sampling or {}, 'RefinementVisualizationHook.sampling')
        self.sampling = dict(sampling or {})
        self._warned = False

    def _visualize(self, runner, batch_idx: int, data_batch: dict, mode: str) -> None:
        if batch_idx % self.interval:
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not callable(getattr(model, 'restore', None)) or not hasattr(getattr(model, 'generator', None), 'refiner'):
            return  # not an ITER model
        data = model.data_preprocessor(data_batch, False)
        lq = data['inputs'][: self.max_images]
        try:
            with torch.no_grad():
                res = model.restore(
                    lq, loop='val' if mode == 'val' else 'test', return_intermediates=True, **self.sampling
                )
        except ValueError as err:  # tiled images have no single chain of steps
            if not self._warned:
                print_log(
                    f'RefinementVisualizationHook: {err}; no mosaic for such images',
                    logger='current',
                    level=logging.WARNING,
                )
                self._warned = True
            return
        for i in range(lq.shape[0]):
            runner.visualizer.add_image(
                f'{mode}_refinement_{batch_idx}_{i}',
                refinement_mosaic(res.step_images[i], res.step_keep[i]).numpy(),
                step=runner.iter,
            )

    def after_val_iter(
        self, runner, batch_idx: int, data_batch: Optional[dict] = None, outputs: Optional[Sequence] = None
    ) -> None:
        """Visualise the batch's refinement (``val_cfg``) when ``on_val`` and the iteration is due.

        Args:
            runner (Runner): the runner.
            batch_idx (int): index of the batch.
            data_batch (dict, optional): the batch. Default: None (nothing shown).
            outputs (Sequence, optional): the predictions (unused). Default: None.
        """
        if self.on_val and data_batch is not None:
            self._visualize(runner, batch_idx, data_batch, 'val')

    def after_test_iter(
        self, runner, batch_idx: int, data_batch: Optional[dict] = None, outputs: Optional[Sequence] = None
    ) -> None:
        """Visualise the batch's refinement (``test_cfg``) when ``on_test`` and the iteration is due.

        Args:
            runner (Runner): the runner.
            batch_idx (int): index of the batch.
            data_batch (dict, optional): the batch. Default: None (nothing shown).
            outputs (Sequence, optional): the predictions (unused). Default: None.
        """
        if self.on_test and data_batch is not None:
            self._visualize(runner, batch_idx, data_batch, 'test')
