"""MMagic's NIQE that survives an image whose NIQE cannot be computed.

NIQE fits a Gaussian to the natural-scene statistics of sharp 96x96 blocks; on a flat output (a model early in
training, a short smoke run) there are none and the fit's SVD fails (``numpy.linalg.LinAlgError``), which in
MMagic's metric ends the run in validation after the checkpoint is saved. Here such an image counts as NaN, with a
warning naming the count, and the mean is over the others (NaN when none is left). Same key (``NIQE``), same
numbers otherwise.
"""

import warnings
from typing import List

import numpy as np

from mmagic.evaluation.metrics import NIQE
from mmagic.registry import METRICS


@METRICS.register_module()
class TolerantNIQE(NIQE):
    """:class:`mmagic.evaluation.metrics.NIQE` with NaN for an image it cannot score.

    Args:
        *args, **kwargs: Those of MMagic's ``NIQE`` (e.g. ``key``, ``crop_border``, ``convert_to``).
    """

    def process_image(self, gt, pred, mask) -> float:
        try:
            return super().process_image(gt, pred, mask)
        except np.linalg.LinAlgError:
            return float('nan')

    def compute_metrics(self, results: List[dict]) -> dict:
        values = np.array([r[self.metric] for r in results], dtype=np.float64)
        failed = int(np.isnan(values).sum())
        if failed:
            rest = 'the mean is over the others' if failed < len(values) else 'the result is NaN'
            warnings.warn(
                f'{self.metric}: {failed} of {len(values)} image(s) could not be scored (no natural-scene '
                f'statistics: a flat output?); {rest}'
            )
        mean = float(np.nanmean(values)) if failed < len(values) else float('nan')
        return {self.metric: mean * self.scaling}
