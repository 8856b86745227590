"""Compare super-resolution models on one folder of images: metrics, seconds per image, peak memory, crops.

:class:`SRComparison` runs functions ``lq -> sr`` (:func:`iter_mm.apis.mmagic_models.build_sr_function`) on the
images of a folder and writes ``results.csv`` (one row per model and image), ``summary.md`` (mean of each metric,
seconds per image, peak memory per model), ``crops/<image>.png`` (side-by-side crops: LQ, each model, GT) and
optionally ``images/<model>/<image>.png``. Outputs are rounded to 8 bit (as saved images) before the metrics.
``tools/compare_sr.py`` is its command line.
"""

from __future__ import annotations

import ast
import csv
import os
import os.path as osp
import re
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InvalidInputError, InvalidOptionError, MissingDataError, OutputExistsError
from ..utils.image_files import folder_images
from .benchmark import rss_bytes

__all__ = [
    'ModelSpec',
    'parse_model',
    'parse_literal',
    'parse_restore_opts',
    'read_image',
    'center_crop',
    'SRComparison',
    'PeakMemory',
    'build_metrics',
    'score',
    'match_gt',
    'write_summary',
    'to_uint8',
    'side_by_side',
    'OUT_FILES',
]

#: what a comparison writes into its output folder
OUT_FILES = ('results.csv', 'summary.md', 'crops', 'images')


@dataclass
class ModelSpec:
    """A model to compare: its name, config ('bicubic', a file or a zoo name), checkpoint, config overrides."""

    name: str
    config: str
    checkpoint: Optional[str] = None
    cfg_options: Dict[str, object] = field(default_factory=dict)


def parse_model(text: str) -> ModelSpec:
    """'NAME=CONFIG[:CHECKPOINT]' -> :class:`ModelSpec` ('none' as checkpoint = random weights).

    CONFIG may carry a scope prefix (``mmagic::x.py``, ``iter::x.py``), whose '::' is not a separator; the
    checkpoint starts after the first ':' that follows the config's '.py' (else after the first ':'), so a
    checkpoint path may itself contain ':'.

    Args:
        text (str): the model's description.

    Returns:
        ModelSpec: name, config and checkpoint (None for none given or 'none').

    Raises:
        InvalidOptionError: text of another form.
    """
    bad = InvalidOptionError(f"a model is NAME=CONFIG[:CHECKPOINT], got '{text}'")
    if '=' not in text:
        raise bad
    name, rest = text.split('=', 1)
    scope, body = re.match(r'([A-Za-z_]\w*::)?(.*)$', rest, re.S).groups()
    cut = body.find('.py:')
    config, ckpt = (body[: cut + 3], body[cut + 4 :]) if cut >= 0 else body.partition(':')[::2]
    config = (scope or '') + config
    if not name or not config or config.endswith('::'):
        raise bad
    return ModelSpec(name, config, None if ckpt in (None, '', 'none') else ckpt)


def parse_literal(value: str):
    """A Python literal ('0.5', 'None', '[1, 2]'), else the text itself.

    Args:
        value (str): the text.

    Returns:
        Any: the literal's value, or ``value``.
    """
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def parse_restore_opts(items: Sequence[str]) -> Dict[str, object]:
    """'KEY=VALUE' texts -> ``RestoreOptions`` overrides, checked by its rules before any model is built.

    Args:
        items (Sequence[str]): 'KEY=VALUE' texts; values are read as Python literals (:func:`parse_literal`).

    Returns:
        dict: option name -> value.

    Raises:
        InvalidOptionError: Not KEY=VALUE, an unknown name or a value ``RestoreOptions`` refuses.
    """
    from ..models.options import RestoreOptions

    opts = {}
    for kv in items:
        if '=' not in kv:
            raise InvalidOptionError(f"expected KEY=VALUE, got '{kv}'")
        opts[kv.split('=', 1)[0]] = parse_literal(kv.split('=', 1)[1])
    try:
        RestoreOptions.check_names(opts, 'restore options')
        RestoreOptions(**opts)
    except (TypeError, ValueError) as err:
        raise InvalidOptionError(str(err)) from None
    return opts


def read_image(path: str) -> Tensor:
    """Any image file -> RGB tensor, upright, first frame, alpha ignored.

    Read by ``iter_mm.utils.image_io``: grey replicated, 16 bit scaled, palette and CMYK converted.

    Args:
        path (str): the image file.

    Returns:
        Tensor: (3, H, W) float RGB in [0, 1].

    Raises:
        InvalidInputError: unreadable (ImageReadError), or smaller than 2 pixels a side.
    """
    from ..utils.image_io import read_image as read_rgb

    img, _ = read_rgb(path)
    if min(img.shape[:2]) < 2:
        raise InvalidInputError(f'{path}: image of {img.shape[1]}x{img.shape[0]} pixels is too small to upscale')
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def center_crop(img: Tensor, size: int, scale: int = 1, like: Optional[Tensor] = None) -> Tensor:
    """Centre crop to at most ``size`` px a side.

    With ``like`` (the LQ), the region is ``scale`` x the LQ's crop, so that LQ and GT crops stay aligned.

    Args:
        img (Tensor): (..., H, W).
        size (int): largest side of the crop (of ``like``'s crop when given).
        scale (int): factor between ``img`` and ``like``. Default: 1.
        like (Tensor, optional): the LQ image whose centre crop ``img``'s crop matches. Default: None.

    Returns:
        Tensor: (..., h, w), a view of ``img``.
    """
    h, w = (like if like is not None else img).shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return img[..., top * scale : (top + size) * scale, left * scale : (left + size) * scale]


class SRComparison:
    """The images of one folder (and their GT), compared across models into one output folder.

    Args:
        input_dir (str): Folder of LQ images.
        out_dir (str): Output folder (new or empty of earlier results unless ``overwrite``).
        scale (int): Upscaling factor. Default: 4.
        gt_dir (str, optional): Folder of GT images with the same file stems. Default: None.
        overwrite (bool): Replace earlier results in ``out_dir``. Default: False.
        max_input_size (int): Centre-crop inputs to at most this many LQ pixels a side (0: whole). Default: 0.
        crop_images (list[str], optional): Images for side-by-side crops (None: the first 2). Default: None.
        crop_size (int): Side of the crops in output pixels. Default: 128.
        crop_boxes (dict, optional): Image name -> (x, y) top-left corner of its crop (default: centre).
        save_images (bool): Also write every output image. Default: False.

    Raises:
        OutputExistsError: ``out_dir`` holds results and ``overwrite`` is False.
        MissingDataError: A folder is missing or holds no image.
        InvalidOptionError: A crop image is not in ``input_dir``.
    """

    def __init__(
        self,
        input_dir: str,
        out_dir: str,
        scale: int = 4,
        gt_dir: Optional[str] = None,
        overwrite: bool = False,
        max_input_size: int = 0,
        crop_images: Optional[List[str]] = None,
        crop_size: int = 128,
        crop_boxes: Optional[Dict[str, Tuple[int, int]]] = None,
        save_images: bool = False,
    ) -> None:
        if osp.isdir(out_dir) and any(osp.exists(osp.join(out_dir, f)) for f in OUT_FILES) and not overwrite:
            raise OutputExistsError(f'{out_dir} already holds results ({", ".join(OUT_FILES)})')
        if gt_dir and not osp.isdir(gt_dir):
            raise MissingDataError(f'GT folder {gt_dir} does not exist')
        self.files = folder_images(input_dir, 'input folder')
        self.gt_files = {osp.splitext(f)[0]: f for f in folder_images(gt_dir, 'GT folder')} if gt_dir else {}
        for c in crop_images or []:
            if c not in self.files:
                raise InvalidOptionError(f"crop image '{c}' is not in {input_dir}")
        self.input_dir, self.out_dir, self.scale, self.gt_dir = input_dir, out_dir, scale, gt_dir
        self.max_input_size, self.crop_images, self.crop_size = max_input_size, crop_images, crop_size
        self.crop_boxes, self.save_images = crop_boxes or {}, save_images

    def load(self) -> List[Tuple[str, Tensor, Optional[Tensor]]]:
        """Every readable image with its GT; unreadable ones are skipped with a warning.

        Returns:
            list[tuple[str, Tensor, Tensor | None]]: (name, LQ (3, h, w), GT (3, H, W) or None), in [0, 1].

        Raises:
            MissingDataError: No image is readable.
        """
        images = []
        for f in self.files:
            try:
                lq = read_image(osp.join(self.input_dir, f))
            except ValueError as err:
                warnings.warn(f'skipping {f}: {err}')
                continue
            full_lq, gt, stem = lq, None, osp.splitext(f)[0]
            if self.max_input_size:
                lq = center_crop(lq, self.max_input_size)
            if self.gt_dir:
                if stem not in self.gt_files:
                    warnings.warn(f'no GT for {f} in {self.gt_dir}; full-reference metrics are NaN for it')
                else:
                    gt = read_image(osp.join(self.gt_dir, self.gt_files[stem]))
                    if self.max_input_size:
                        gt = center_crop(gt, self.max_input_size, self.scale, like=full_lq)
            images.append((f, lq, gt))
        if not images:
            raise MissingDataError(f'no readable image in {self.input_dir}')
        return images

    def run(
        self,
        models: Dict[str, Callable[[Tensor], Tensor]],
        metrics: dict,
        device: str = 'cpu',
        note: str = '',
        progress: Optional[Callable[[], None]] = None,
    ) -> str:
        """Run every model on every image, write the outputs, return the summary (Markdown).

        Args:
            models (dict): Name -> function (1, 3, h, w) -> (1, 3, h*s, w*s), in [0, 1].
            metrics (dict): Column name -> metric (:func:`build_metrics`).
            device (str): Where the inputs go. Default: 'cpu'.
            note (str): Added to the summary's description of the run. Default: ''.
            progress (callable, optional): Called after each model and image. Default: None.

        Returns:
            str: the text of ``summary.md`` (written with ``results.csv`` and ``crops/`` in ``out_dir``).

        Raises:
            MissingDataError: No image is readable.
            InvalidOptionError: a model does not upscale by ``scale``.
        """
        images = self.load()
        os.makedirs(osp.join(self.out_dir, 'crops'), exist_ok=True)
        crop_images = [f for f, _, _ in images][:2] if self.crop_images is None else self.crop_images
        crops: Dict[str, List[Tuple[str, Tensor]]] = {c: [] for c in crop_images}
        rows: List[dict] = []
        with torch.no_grad():
            for mname, fn in models.items():
                self._warm_up(mname, fn, images[0][1], device)
                for f, lq, gt in images:
                    row, sr = self._one(mname, fn, f, lq, gt, metrics, device)
                    rows.append(row)
                    if f in crops:
                        crops[f].append((mname, sr))
                    if progress is not None:
                        progress()
        for f, lq, gt in images:
            if crops.get(f):
                self._write_crop(f, lq, gt, crops[f])
        cols = ['model', 'image', 'width', 'height'] + list(metrics) + ['seconds', 'peak_mib']
        with open(osp.join(self.out_dir, 'results.csv'), 'w', newline='') as fh:
            writer = csv.DictWriter(fh, fieldnames=cols)
            writer.writeheader()
            writer.writerows(rows)
        meta = (
            f'{len(images)} images from `{self.input_dir}`'
            + (f', GT `{self.gt_dir}`' if self.gt_dir else '')
            + f', x{self.scale}, device {device}, {torch.get_num_threads()} threads'
            + (f', inputs centre-cropped to {self.max_input_size} px' if self.max_input_size else '')
            + note
            + '.'
        )
        path = osp.join(self.out_dir, 'summary.md')
        write_summary(path, rows, list(models), list(metrics), meta)
        with open(path) as f:
            return f.read()

    def _warm_up(self, name: str, fn: Callable[[Tensor], Tensor], lq: Tensor, device: str) -> None:
        """One call on a 32-px crop (allocator, kernels) that also checks the output size."""
        probe = center_crop(lq, 32)[None].to(device)
        out = fn(probe)
        if tuple(out.shape[-2:]) != (probe.shape[-2] * self.scale, probe.shape[-1] * self.scale):
            raise InvalidOptionError(
                f"model '{name}' turned {tuple(probe.shape[-2:])} into {tuple(out.shape[-2:])}, not x{self.scale}"
            )

    def _one(
        self, mname: str, fn, f: str, lq: Tensor, gt: Optional[Tensor], metrics: dict, device: str
    ) -> Tuple[dict, Tensor]:
        x = lq[None].to(device)
        with PeakMemory(device) as mem:
            t0 = time.perf_counter()
            sr = fn(x)
            if x.is_cuda:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
        sr = (sr[0].float().cpu().clamp(0, 1) * 255.0).round() / 255.0  # as a saved 8-bit image
        row = {
            'model': mname,
            'image': f,
            'seconds': seconds,
            'peak_mib': mem.peak_mib,
            'width': sr.shape[-1],
            'height': sr.shape[-2],
        }
        sr_m, gt_m = match_gt(sr, gt, self.scale, f) if gt is not None else (sr, None)
        for k, metric in metrics.items():
            row[k] = score(metric, sr_m, gt_m) if (gt_m is not None or not metric.full_ref) else float('nan')
        if self.save_images:
            from ..utils.image_io import write_image

            write_image(
                osp.join(self.out_dir, 'images', mname, osp.splitext(f)[0] + '.png'), sr.permute(1, 2, 0).numpy()
            )
        return row, sr

    def _write_crop(self, f: str, lq: Tensor, gt: Optional[Tensor], outputs: List[Tuple[str, Tensor]]) -> None:
        import cv2

        h, w = outputs[0][1].shape[-2:]
        size = min(self.crop_size, h, w)
        x0, y0 = self.crop_boxes.get(f, ((w - size) // 2, (h - size) // 2))
        x0, y0 = min(max(0, x0), w - size), min(max(0, y0), h - size)
        up = F.interpolate(lq[None], size=(lq.shape[-2] * self.scale, lq.shape[-1] * self.scale), mode='nearest')[0]
        panels = [('LQ', up)] + outputs + ([('GT', gt)] if gt is not None else [])
        tiles = [
            (label, to_uint8(img[:, y0 : y0 + size, x0 : x0 + size]))
            for label, img in panels
            if img.shape[-2] >= y0 + size and img.shape[-1] >= x0 + size
        ]
        cv2.imwrite(osp.join(self.out_dir, 'crops', osp.splitext(f)[0] + '.png'), side_by_side(tiles))


def to_uint8(img: Tensor) -> np.ndarray:
    """An RGB tensor as a cv2 image.

    Args:
        img (Tensor): (3, H, W) RGB in [0, 1].

    Returns:
        np.ndarray: (H, W, 3) uint8 BGR.
    """
    return (img.clamp(0, 1) * 255.0).round().byte().permute(1, 2, 0).numpy()[..., ::-1].copy()


def side_by_side(panels: List[Tuple[str, np.ndarray]], label_h: int = 18) -> np.ndarray:
    """Crops of equal size, each under a label bar, in one row with 4 px gaps.

    Args:
        panels (list[tuple[str, np.ndarray]]): (label, (H, W, 3) uint8 BGR crop).
        label_h (int): height of the label bars in pixels. Default: 18.

    Returns:
        np.ndarray: (H + label_h, total width, 3) uint8 BGR.
    """
    import cv2

    tiles = []
    for label, img in panels:
        bar = np.full((label_h, img.shape[1], 3), 255, np.uint8)
        cv2.putText(
            bar,
            label[: max(1, img.shape[1] // 7)],
            (2, label_h - 5),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
        tiles += [np.concatenate([bar, img], 0), np.full((label_h + img.shape[0], 4, 3), 255, np.uint8)]
    return np.concatenate(tiles[:-1], 1)


class PeakMemory:
    """Peak memory of a block in MiB (``peak_mib`` after the block).

    CUDA's allocator peak on GPU; on CPU the peak rise of the process RSS (sampled every 2 ms) over its value at
    entry.

    Args:
        device (str): the device whose memory is measured.
    """

    def __init__(self, device: str) -> None:
        self.cuda = torch.device(device).type == 'cuda'
        self.peak_mib = 0.0

    def __enter__(self) -> 'PeakMemory':
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        else:
            self._base = self._peak = rss_bytes()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self._peak = max(self._peak, rss_bytes())

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.peak_mib = (torch.cuda.max_memory_allocated() - self._base) / 2**20
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mib = (max(self._peak, rss_bytes()) - self._base) / 2**20


def build_metrics(names: Sequence[str], crop_border: int, weight_files: Dict[str, str], has_gt: bool):
    """The metric columns of a comparison (inputs in [0, 1], so input_range=1).

    Args:
        names (Sequence[str]): pyiqa metric names or 'niqe_mmagic', optionally with '@Y' / '@gray' (the metric on
            the BT.601 luma / grey image).
        crop_border (int): pixels cut from each border before scoring.
        weight_files (dict[str, str]): metric -> local weight file (nothing may download).
        has_gt (bool): whether GT images exist (full-reference metrics need them).

    Returns:
        dict[str, PyIQAMetric]: column name -> metric.

    Raises:
        InvalidOptionError: an unknown metric, or a full-reference one without GT.
    """
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    from iter_mm.evaluation.metrics.pyiqa_metric import PyIQAMetric

    metrics = {}
    for name in names:
        base, _, convert = name.partition('@')  # 'niqe@Y': the metric on the BT.601 luma
        impl = 'mmagic' if base == 'niqe_mmagic' else 'pyiqa'
        base = 'niqe' if impl == 'mmagic' else base
        if base not in DEFAULT_CONFIGS:
            raise InvalidOptionError(
                f"unknown metric '{name}' (pyiqa names or 'niqe_mmagic', optionally '@Y' / '@gray')",
                arguments=('metrics',),
            )
        if DEFAULT_CONFIGS[base]['metric_mode'] == 'FR' and not has_gt:
            raise InvalidOptionError(
                f"metric '{name}' is full-reference: it needs ground-truth images (gt)", arguments=('gt',)
            )
        metrics[name] = PyIQAMetric(
            base,
            niqe_impl=impl,
            weight_files=weight_files,
            crop_border=crop_border,
            input_range=1.0,
            metric_key=name,
            convert_to=convert or None,
            channel_order='rgb',
        )
    return metrics


def score(metric, pred: Tensor, gt: Optional[Tensor]) -> float:
    """The metric of one image (NaN with a warning where it cannot be computed).

    Args:
        metric (PyIQAMetric): a metric of :func:`build_metrics`.
        pred (Tensor): (3, H, W) in [0, 1].
        gt (Tensor, optional): (3, H, W) in [0, 1].

    Returns:
        float: the score, or NaN.
    """
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
    """Crop SR and GT to their common top-left region when they differ by less than one LQ pixel.

    Args:
        sr (Tensor): (3, H, W).
        gt (Tensor): (3, H', W').
        scale (int): the upscaling factor.
        name (str): the image's name in messages.

    Returns:
        tuple[Tensor, Tensor]: SR and GT, both (3, min(H, H'), min(W, W')).

    Raises:
        ValueError: the sizes differ by ``scale`` pixels or more.
    """
    (h1, w1), (h2, w2) = sr.shape[-2:], gt.shape[-2:]
    if abs(h1 - h2) >= scale or abs(w1 - w2) >= scale:
        raise ValueError(f'{name}: output {w1}x{h1} and GT {w2}x{h2} do not match at scale {scale}')
    h, w = min(h1, h2), min(w1, w2)
    return sr[..., :h, :w], gt[..., :h, :w]


def _fmt(v: float) -> str:
    return 'nan' if v != v else f'{v:.4f}'


def write_summary(path: str, rows: List[dict], models: List[str], metrics: List[str], meta: str) -> None:
    """Write the comparison's Markdown summary: per model the mean of each metric, seconds per image and peak memory.

    Args:
        path (str): the file to write.
        rows (list[dict]): one row per model and image (the CSV rows).
        models (list[str]): model names, in table order.
        metrics (list[str]): metric columns.
        meta (str): the description of the run, above the table.
    """
    lines = [
        f'# SR comparison\n\n{meta}\n',
        '| model | ' + ' | '.join(metrics) + ' | s / image | peak MiB | images |',
        '|---' * (len(metrics) + 4) + '|',
    ]
    for m in models:
        mine = [r for r in rows if r['model'] == m]
        means = [np.nanmean([r[k] for r in mine]) if any(r[k] == r[k] for r in mine) else float('nan') for k in metrics]
        sec = float(np.mean([r['seconds'] for r in mine])) if mine else float('nan')
        mem = float(np.max([r['peak_mib'] for r in mine])) if mine else float('nan')
        lines.append(f'| {m} | ' + ' | '.join(_fmt(v) for v in means) + f' | {sec:.3f} | {mem:.0f} | {len(mine)} |')
    lines.append(
        '\nMetric columns are means over images (NaN where a metric could not be computed); '
        's / image is the model call alone (after one warm-up call); peak MiB is the largest over '
        'images (CUDA allocator peak on GPU, RSS rise on CPU).'
    )
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
