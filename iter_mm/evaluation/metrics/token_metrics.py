"""Token diagnostics of ITER as MMagic metrics (read the fields ITERModel writes into ``output``).

* :class:`TokenAccuracy`: how often E_l's tokens S_l (``lq_tokens``) and the final refined tokens
  (``pred_tokens``) equal the HQ tokens S_h (``gt_tokens``) -- the accuracy behind the paper's L_dist (Eq. 2).
* :class:`EvaluatorPrecisionRecall`: phi_e as a detector of good tokens. Predicted good: ``good_prob >= alpha``
  (the keep-mask m_s of the adaptive start, docs/faithfulness.md#adaptive-start); truly good:
  ``lq_tokens == gt_tokens`` (the label of phi_e's loss, Eq. 9).

Both count tokens over the whole evaluation set (micro average): every token weighs the same, whatever the
image size. A ratio with an empty denominator (e.g. no token predicted good) is reported as NaN.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from mmagic.evaluation.metrics.base_sample_wise_metric import BaseSampleWiseMetric
from mmagic.registry import METRICS

from ...errors import InvalidOptionError
from ...models.options import DEFAULTS

__all__ = ['TokenAccuracy', 'EvaluatorPrecisionRecall', 'token_field']


def token_field(sample, key: str, metric: str) -> Tensor:
    """Read ``output.<key>`` of a data sample as a token or probability map.

    Args:
        sample (dict | DataSample): One data sample written by ``ITERModel`` in val/test.
        key (str): Field of ``output``, e.g. 'lq_tokens'.
        metric (str): Name of the asking metric, for the error message.

    Returns:
        Tensor: The field as a CPU tensor of shape (h, w). A missing field raises ``KeyError``.
    """
    sample = sample.to_dict() if hasattr(sample, 'to_dict') else sample
    output = sample.get('output', sample)
    output = output.to_dict() if hasattr(output, 'to_dict') else output
    if key not in output or output[key] is None:
        hint = ' (written only when the batch has a GT image)' if key == 'gt_tokens' else ''
        raise KeyError(
            f"{metric} needs 'output.{key}' in every data sample{hint}; it is written by "
            f'ITERModel in val/test. Found: {sorted(output)}'
        )
    value = output[key]
    value = torch.as_tensor(np.asarray(value) if not isinstance(value, Tensor) else value).detach().cpu()
    if value.ndim == 3 and value.shape[0] == 1:
        value = value[0]
    if value.ndim != 2:
        raise ValueError(f"{metric}: 'output.{key}' must be a (h, w) map, got shape {tuple(value.shape)}")
    return value


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float('nan')


class _TokenMetric(BaseSampleWiseMetric):
    """MMagic's sample-wise metric plumbing (its Evaluator calls ``prepare`` / ``evaluate()``), without
    image keys; MMEngine's plain Evaluator works too."""

    default_prefix: Optional[str] = ''  # no prefix unless asked (and no MMEngine warning about it)

    def __init__(self, collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        self.metric = type(self).__name__
        super().__init__(collect_device=collect_device, prefix=prefix)

    def evaluate(self, size: Optional[int] = None) -> dict:
        """``size``: from MMEngine's evaluator, else from ``prepare`` (MMagic's), else the result count."""
        if size is None:
            size = getattr(self, 'size', None) or len(self.results)
        return super(BaseSampleWiseMetric, self).evaluate(size)


@METRICS.register_module()
class TokenAccuracy(_TokenMetric):
    """Fraction of tokens equal to S_h, for S_l (E_l, key ``<prefix>/TokenAcc_lq``) and for the final
    tokens (``TokenAcc_pred``).

    Args:
        keys (Sequence[str]): Token fields of the model output to score. Default: ('lq_tokens', 'pred_tokens').
        gt_key (str): Field holding the GT tokens S_h. Default: 'gt_tokens'.
        collect_device (str): Device used to collect results across processes. Default: 'cpu'.
        prefix (str, optional): Prefix of the metric names. Default: None.
    """

    def __init__(
        self,
        keys: Sequence[str] = ('lq_tokens', 'pred_tokens'),
        gt_key: str = 'gt_tokens',
        collect_device: str = 'cpu',
        prefix: Optional[str] = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not keys:
            raise InvalidOptionError('TokenAccuracy: keys must name at least one token field')
        self.keys, self.gt_key = tuple(keys), gt_key

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Per sample: number of tokens and of matches for each key."""
        for sample in data_samples:
            gt = token_field(sample, self.gt_key, type(self).__name__)
            result = {'n': gt.numel()}
            for key in self.keys:
                tokens = token_field(sample, key, type(self).__name__)
                if tokens.shape != gt.shape:
                    raise ValueError(f'TokenAccuracy: {key} {tuple(tokens.shape)} vs {self.gt_key} {tuple(gt.shape)}')
                result[key] = int((tokens == gt).sum())
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Micro-averaged accuracy per key."""
        n = sum(r['n'] for r in results)
        return {f'TokenAcc_{key.replace("_tokens", "")}': _ratio(sum(r[key] for r in results), n) for key in self.keys}


@METRICS.register_module()
class EvaluatorPrecisionRecall(_TokenMetric):
    """Precision / recall / F1 of phi_e's good-token decision ``good_prob >= alpha`` against the truth
    ``lq_tokens == gt_tokens``, plus the true and predicted good-token rates.

    Args:
        alpha (float | Sequence[float]): Threshold(s) on phi_e's P(good); with several, the keys get an ``@alpha``
            suffix. Default: 0.7 (``RestoreOptions``' alpha, the authors' inference script; the paper and
            training-time validation use 0.5).
        collect_device (str): Device used to collect results across processes. Default: 'cpu'.
        prefix (str, optional): Prefix of the metric names. Default: None.
    """

    def __init__(
        self,
        alpha: Union[float, Sequence[float]] = DEFAULTS.alpha,
        collect_device: str = 'cpu',
        prefix: Optional[str] = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.alphas = [float(alpha)] if np.isscalar(alpha) else [float(a) for a in alpha]
        if not self.alphas or not all(0.0 <= a <= 1.0 for a in self.alphas):
            raise InvalidOptionError(f'EvaluatorPrecisionRecall: alpha must lie in [0, 1], got {alpha}')

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Per sample and threshold: true positives, predicted positives, actual positives, token count."""
        name = type(self).__name__
        for sample in data_samples:
            lq, gt = token_field(sample, 'lq_tokens', name), token_field(sample, 'gt_tokens', name)
            prob = token_field(sample, 'good_prob', name).float()
            if not lq.shape == gt.shape == prob.shape:
                raise ValueError(
                    f'{name}: lq_tokens {tuple(lq.shape)}, gt_tokens {tuple(gt.shape)} and '
                    f'good_prob {tuple(prob.shape)} must have one shape'
                )
            truth = lq == gt
            result = {'n': truth.numel(), 'pos': int(truth.sum())}
            for a in self.alphas:
                pred = prob >= a
                result[a] = (int((pred & truth).sum()), int(pred.sum()))
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """precision = TP / predicted good, recall = TP / truly good, F1 their harmonic mean."""
        n, pos = sum(r['n'] for r in results), sum(r['pos'] for r in results)
        out = {'GoodRate': _ratio(pos, n)}
        for a in self.alphas:
            tp, pred = sum(r[a][0] for r in results), sum(r[a][1] for r in results)
            p, r = _ratio(tp, pred), _ratio(tp, pos)
            f1 = 2 * p * r / (p + r) if p + r > 0 else float('nan')
            sfx = f'@{a:g}' if len(self.alphas) > 1 else ''
            out.update(
                {
                    f'EvalPrecision{sfx}': p,
                    f'EvalRecall{sfx}': r,
                    f'EvalF1{sfx}': f1,
                    f'PredGoodRate{sfx}': _ratio(pred, n),
                }
            )
        return out
