"""Codebook diagnostics over an evaluation set: share of codes used and code perplexity."""

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from mmagic.evaluation.metrics.base_sample_wise_metric import BaseSampleWiseMetric
from mmagic.registry import METRICS

from ...errors import InvalidOptionError


def codebook_stats(counts: np.ndarray) -> Dict[str, float]:
    """Usage share and perplexity of a histogram of code indices.

    Args:
        counts (np.ndarray): Number of occurrences of each code, shape (K,).

    Returns:
        dict: ``usage`` = #{k : n_k > 0} / K and ``perplexity`` = exp(-sum_k p_k log p_k) with p = n / sum(n)
        (1 when a single code is used, K when all are used equally).
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise ValueError('codebook_stats: no tokens were counted')
    p = counts[counts > 0] / total
    return dict(usage=float((counts > 0).sum() / counts.size), perplexity=float(np.exp(-(p * np.log(p)).sum())))


@METRICS.register_module()
class CodebookUsage(BaseSampleWiseMetric):
    """Share of codebook entries used and their perplexity over the whole evaluation set.

    Reads the token map ``output.<pred_key>`` ((h, w) or (1, h, w) int) written by ``SwinVQGANModel`` /
    ``ITERModel``; the histogram is summed over all images (and processes) before the statistics.
    Reports ``CodebookUsage`` (in [1/K, 1]) and ``CodebookPerplexity`` (in [1, K]).

    Args:
        codebook_size (int): K, the number of codes. Default: 512.
        pred_key (str): Field of the model output holding the token map. Default: 'pred_tokens'.
        collect_device (str): Device used to collect results across processes. Default: 'cpu'.
        prefix (str, optional): Prefix of the metric names. Default: None.
    """

    metric = 'CodebookUsage'

    def __init__(
        self,
        codebook_size: int = 512,
        pred_key: str = 'pred_tokens',
        collect_device: str = 'cpu',
        prefix: Optional[str] = None,
    ) -> None:
        super().__init__(pred_key=pred_key, collect_device=collect_device, prefix=prefix)
        if codebook_size < 1:
            raise InvalidOptionError(f'codebook_size must be >= 1, got {codebook_size}')
        self.codebook_size = codebook_size

    def process(self, data_batch: Sequence[dict], data_samples: Sequence[dict]) -> None:
        """Histogram of the codes of each sample's token map."""
        for data in data_samples:
            output = data.get('output', {})
            if self.pred_key not in output:
                raise KeyError(
                    f'CodebookUsage: the model output has no `{self.pred_key}` token map (fields: {sorted(output)})'
                )
            tokens = output[self.pred_key]
            tokens = (
                tokens.detach().cpu().long().flatten()
                if isinstance(tokens, torch.Tensor)
                else torch.as_tensor(np.asarray(tokens)).long().flatten()
            )
            if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.codebook_size):
                raise ValueError(
                    f'CodebookUsage: token values must lie in [0, {self.codebook_size}), got '
                    f'[{int(tokens.min())}, {int(tokens.max())}] (codebook_size set right?)'
                )
            counts = torch.bincount(tokens, minlength=self.codebook_size).numpy()
            self.results.append(dict(counts=counts))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        stats = codebook_stats(np.sum([r['counts'] for r in results], axis=0))
        return dict(CodebookUsage=stats['usage'], CodebookPerplexity=stats['perplexity'])
