"""Helpers of ``tools/compare_sr.py``: peak memory of a call, metric scoring, side-by-side crops, the summary.

Kept apart from the command-line tool (arguments, model building, the loop) so that each stays readable.
"""
from __future__ import annotations

import os
import threading
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from ..errors import InvalidOptionError

__all__ = ['PeakMemory', 'build_metrics', 'score', 'match_gt', 'write_summary', 'to_uint8', 'side_by_side']


def to_uint8(img: Tensor) -> np.ndarray:
    """(3, H, W) RGB in [0, 1] -> (H, W, 3) uint8 BGR for cv2."""
    return (img.clamp(0, 1) * 255.).round().byte().permute(1, 2, 0).numpy()[..., ::-1].copy()


def side_by_side(panels: List[Tuple[str, np.ndarray]], label_h: int = 18) -> np.ndarray:
    """Crops (H, W, 3) uint8 BGR of equal size, each under a label bar, in one row with 4 px gaps."""
    import cv2
    tiles = []
    for label, img in panels:
        bar = np.full((label_h, img.shape[1], 3), 255, np.uint8)
        cv2.putText(bar, label[:max(1, img.shape[1] // 7)], (2, label_h - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 0, 0), 1, cv2.LINE_AA)
        tiles += [np.concatenate([bar, img], 0), np.full((label_h + img.shape[0], 4, 3), 255, np.uint8)]
    return np.concatenate(tiles[:-1], 1)


class PeakMemory:
    """Peak memory of a block in MiB: CUDA's allocator peak on GPU; on CPU the peak rise of the process RSS
    (sampled every 2 ms) over its value at entry."""

    def __init__(self, device: str) -> None:
        self.cuda = torch.device(device).type == 'cuda'
        self.peak_mib = 0.

    def _rss(self) -> int:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')

    def __enter__(self) -> 'PeakMemory':
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        else:
            self._base = self._peak = self._rss()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self._peak = max(self._peak, self._rss())

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.peak_mib = (torch.cuda.max_memory_allocated() - self._base) / 2**20
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mib = (max(self._peak, self._rss()) - self._base) / 2**20


def build_metrics(names: Sequence[str], crop_border: int, weight_files: Dict[str, str], has_gt: bool):
    """{column name: PyIQAMetric} (inputs in [0, 1], so input_range=1)."""
    from iter_mm.evaluation.metrics.pyiqa_metric import PyIQAMetric
    from pyiqa.default_model_configs import DEFAULT_CONFIGS
    metrics = {}
    for name in names:
        base, _, convert = name.partition('@')  # 'niqe@Y': the metric on the BT.601 luma
        impl = 'mmagic' if base == 'niqe_mmagic' else 'pyiqa'
        base = 'niqe' if impl == 'mmagic' else base
        if base not in DEFAULT_CONFIGS:
            raise InvalidOptionError(f"unknown metric '{name}' (pyiqa names or 'niqe_mmagic', optionally '@Y' / "
                                     "'@gray')", arguments=('metrics',))
        if DEFAULT_CONFIGS[base]['metric_mode'] == 'FR' and not has_gt:
            raise InvalidOptionError(f"metric '{name}' is full-reference: it needs ground-truth images (gt)",
                                     arguments=('gt',))
        metrics[name] = PyIQAMetric(base, niqe_impl=impl, weight_files=weight_files, crop_border=crop_border,
                                    input_range=1., metric_key=name, convert_to=convert or None,
                                    channel_order='rgb')
    return metrics


def score(metric, pred: Tensor, gt: Optional[Tensor]) -> float:
    sample = {'output': {'pred_img': pred}}
    if gt is not None:
        sample['gt_img'] = gt
    try:
        metric.process(None, [sample])
    except (ValueError, RuntimeError) as err:
        warnings.warn(f'{metric.metric}: {err}')
        return float('nan')
    return float(metric.results.pop()[metric.metric])


def match_gt(sr: Tensor, gt: Tensor, scale: int, name: str) -> Tuple[Tensor, Tensor]:
    """Crop SR and GT to their common top-left region when they differ by less than one LQ pixel."""
    (h1, w1), (h2, w2) = sr.shape[-2:], gt.shape[-2:]
    if abs(h1 - h2) >= scale or abs(w1 - w2) >= scale:
        raise ValueError(f'{name}: output {w1}x{h1} and GT {w2}x{h2} do not match at scale {scale}')
    h, w = min(h1, h2), min(w1, w2)
    return sr[..., :h, :w], gt[..., :h, :w]


def _fmt(v: float) -> str:
    return 'nan' if v != v else f'{v:.4f}'


def write_summary(path: str, rows: List[dict], models: List[str], metrics: List[str], meta: str) -> None:
    lines = [f'# SR comparison\n\n{meta}\n', '| model | ' + ' | '.join(metrics) + ' | s / image | peak MiB | images |',
             '|---' * (len(metrics) + 4) + '|']
    for m in models:
        mine = [r for r in rows if r['model'] == m]
        means = [np.nanmean([r[k] for r in mine]) if any(r[k] == r[k] for r in mine) else float('nan')
                 for k in metrics]
        sec = float(np.mean([r['seconds'] for r in mine])) if mine else float('nan')
        mem = float(np.max([r['peak_mib'] for r in mine])) if mine else float('nan')
        lines.append(f'| {m} | ' + ' | '.join(_fmt(v) for v in means) + f' | {sec:.3f} | {mem:.0f} | {len(mine)} |')
    lines.append('\nMetric columns are means over images (NaN where a metric could not be computed); '
                 's / image is the model call alone (after one warm-up call); peak MiB is the largest over '
                 'images (CUDA allocator peak on GPU, RSS rise on CPU).')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
