"""Metrics: pyiqa wrappers, token and codebook diagnostics, a NIQE that survives flat outputs."""

from .codebook import CodebookUsage, codebook_stats  # noqa: F401
from .pyiqa_metric import MissingWeightsError, PyIQAMetric  # noqa: F401
from .token_metrics import EvaluatorPrecisionRecall, TokenAccuracy  # noqa: F401
from .tolerant_niqe import TolerantNIQE  # noqa: F401
