"""The demo's comparison table (``tools/demo.py``): per-model means of the SR comparison's CSV and the colour error.

The colour error of a folder of predictions against its GT folder is the mean over images of the mean absolute
per-channel error of the image means (0-255): a colour cast shows here when PSNR barely moves.
"""

from __future__ import annotations

import csv
import os
import os.path as osp
from typing import Dict, List

import cv2
import numpy as np

__all__ = ['colour_error', 'mean_rows', 'summary_table']

#: the columns of the demo's table, in order (``real NIQE``: only with real low-quality photos)
COLUMNS = ('psnr@Y', 'ssim@Y', 'niqe_mmagic@Y', 'colour_error')


def colour_error(images: str, gt_dir: str) -> float:
    """Mean over the GT folder's images of mean_c |mean(pred_c) - mean(gt_c)| on 0-255.

    Both images are cut to the smaller size; images without a readable pair are left out.

    Args:
        images (str): folder of predictions, named as their GT.
        gt_dir (str): folder of GT images.

    Returns:
        float: the error, NaN when no image pairs up.
    """
    errors = []
    for name in sorted(os.listdir(gt_dir)):
        pred = cv2.imread(osp.join(images, name), cv2.IMREAD_COLOR)
        gt = cv2.imread(osp.join(gt_dir, name), cv2.IMREAD_COLOR)
        if pred is None or gt is None:
            continue
        h, w = min(pred.shape[0], gt.shape[0]), min(pred.shape[1], gt.shape[1])
        diff = pred[:h, :w].astype(np.float64).mean((0, 1)) - gt[:h, :w].astype(np.float64).mean((0, 1))
        errors.append(float(np.abs(diff).mean()))
    return float(np.mean(errors)) if errors else float('nan')


def mean_rows(results_csv: str) -> Dict[str, Dict[str, float]]:
    """Per ``model`` column value, the mean of every numeric column of a results CSV.

    Args:
        results_csv (str): a CSV with a ``model`` column (e.g. ``results.csv`` of the SR comparison).

    Returns:
        dict[str, dict[str, float]]: model -> column -> mean.
    """
    table: Dict[str, Dict[str, List[float]]] = {}
    with open(results_csv) as f:
        for row in csv.DictReader(f):
            cols = table.setdefault(row['model'], {})
            for key, value in row.items():
                try:
                    cols.setdefault(key, []).append(float(value))
                except (TypeError, ValueError):
                    pass
    return {m: {k: float(np.mean(v)) for k, v in cols.items()} for m, cols in table.items()}


def summary_table(means: Dict[str, Dict[str, float]]) -> str:
    """Markdown table of ``means`` over :data:`COLUMNS` (+ ``real NIQE`` if any).

    Args:
        means (dict[str, dict[str, float]]): model -> column -> value (:func:`mean_rows`).

    Returns:
        str: the table; missing values are NaN.
    """
    cols = list(COLUMNS) + (['real NIQE'] if any('real NIQE' in m for m in means.values()) else [])
    lines = ['| method | ' + ' | '.join(cols) + ' |', '|---' * (len(cols) + 1) + '|']
    for model, values in means.items():
        lines.append(f'| {model} | ' + ' | '.join(f'{values.get(c, float("nan")):.4f}' for c in cols) + ' |')
    return '\n'.join(lines)
