"""Pre-generated paired GT/LQ datasets from a folder of HQ images, and the speed of the degradation pipelines.

:func:`generate_pairs` writes ``OUT/gt/NAME.png`` (HQ mod-cropped to a multiple of the scale) and
``OUT/lq/NAME.png`` (its degradation, exactly GT / scale), the layout ``configs/_base_/datasets/paired_folder.py``
reads. The degradation is the ``<degradation>_degradations`` list of ``configs/_base_/datasets/
<degradation>_x<scale>.py`` (bsrgan: ``bsrgan_x4.py`` with its scale set). Each image is seeded from (seed, file
name), so the output does not depend on the number of worker processes. ``tools/generate_lq.py`` and
``tools/benchmark_degradation.py`` are the command lines.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import os.path as osp
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np

from ..errors import InvalidInputError, InvalidOptionError, MissingDataError
from ..utils.image_files import folder_images

__all__ = [
    'CONFIGS',
    'build_degradations',
    'build_pipeline',
    'read_rgb',
    'write_png',
    'degrade_one',
    'hq_images',
    'PairReport',
    'generate_pairs',
    'benchmark_image',
    'degradation_throughput',
]

CONFIGS = {
    ('realesrgan', 4): 'realesrgan_x4.py',
    ('realesrgan', 2): 'realesrgan_x2.py',
    ('bsrgan', 4): 'bsrgan_x4.py',
    ('bsrgan', 2): 'bsrgan_x4.py',  # BSRGANDegradation's scale is set to 2
}

_pipeline = None  # per process: the SeededDegradations transform


def build_degradations(degradation: str, scale: int, config: Optional[str] = None) -> list:
    """Transform configs of the chosen pipeline, with the scale applied.

    Args:
        degradation (str): 'realesrgan' or 'bsrgan'.
        scale (int): 2 or 4.
        config (str, optional): Dataset config holding ``<degradation>_degradations``. Default: None (the shipped
            ``configs/_base_/datasets/<degradation>_x<scale>.py``).

    Returns:
        list[dict]: the transform configs.

    Raises:
        InvalidOptionError: an unknown pipeline or scale, or a config that does not define it for this scale.
        MissingDataError: the dataset config does not exist.
    """
    from mmengine.config import Config

    from ..utils.config_paths import resolve_config_path

    if (degradation, scale) not in CONFIGS:
        raise InvalidOptionError(f'no {degradation} pipeline for scale {scale}; known: {sorted(CONFIGS)}')
    try:
        path = resolve_config_path(config or f'configs/_base_/datasets/{CONFIGS[(degradation, scale)]}')
    except FileNotFoundError as err:
        raise MissingDataError(f'dataset config not found: {config or err}') from None
    var = f'{degradation}_degradations'
    cfg = Config.fromfile(path)
    if var not in cfg:
        raise InvalidOptionError(f'{path} defines no `{var}`')
    transforms = [t.to_dict() if hasattr(t, 'to_dict') else dict(t) for t in cfg[var]]
    for t in transforms:
        if t['type'] == 'BSRGANDegradation':
            t['scale'] = scale
    if degradation == 'realesrgan' and cfg.get('scale') != scale:
        raise InvalidOptionError(f'{path} is for scale {cfg.get("scale")}, not {scale}')
    return transforms


def build_pipeline(transform_cfgs: list, seed: int):
    """The ``SeededDegradations`` transform of ``transform_cfgs`` (cv2 single-threaded).

    Args:
        transform_cfgs (list[dict]): the degradation transforms (:func:`build_degradations`).
        seed (int): with each image's file name, fixes that image's random draws.

    Returns:
        SeededDegradations: the built transform.
    """
    cv2.setNumThreads(1)
    from mmengine.registry import init_default_scope

    from mmagic.registry import TRANSFORMS

    from . import transforms  # noqa: F401  (registers SeededDegradations and the degradations)

    init_default_scope('mmagic')
    return TRANSFORMS.build(dict(type='SeededDegradations', transforms=transform_cfgs, seed=seed))


def _init_worker(transform_cfgs: list, seed: int) -> None:
    global _pipeline
    _pipeline = build_pipeline(transform_cfgs, seed)


def read_rgb(path: str) -> np.ndarray:
    """An image file as 8-bit RGB, upright (EXIF orientation applied).

    Grey, palette, CMYK, RGBA and 16-bit files are converted (``iter_mm.utils.image_io``: the first frame, alpha
    ignored).

    Args:
        path (str): the image file.

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB.

    Raises:
        InvalidInputError: the file cannot be decoded.
    """
    from ..utils.image_io import ImageReadError, read_image

    try:
        rgb, _ = read_image(path)
    except ImageReadError as err:
        raise InvalidInputError(f'cannot decode image (corrupt or unsupported): {err}') from None
    return np.round(rgb * 255.0).astype(np.uint8)


def write_png(path: str, rgb: np.ndarray) -> None:
    """Write 8-bit RGB as PNG atomically (temporary file + rename), so an interrupted run leaves no partial file.

    Args:
        path (str): the output file.
        rgb (np.ndarray): (H, W, 3) uint8 RGB.
    """
    from ..utils.image_io import write_image

    write_image(path, rgb.astype(np.float32) / 255.0)


def degrade_one(gt: np.ndarray, name: str, transforms, scale: int) -> Tuple[np.ndarray, np.ndarray]:
    """The mod-cropped GT and its LQ for one image.

    Args:
        gt (np.ndarray): (H, W, 3) uint8 RGB.
        name (str): the image's file name (messages; with the pipeline's seed it fixes the draws).
        transforms (SeededDegradations): the degradation pipeline.
        scale (int): the downscaling factor.

    Returns:
        tuple[np.ndarray, np.ndarray]: GT (h, w, 3) with h, w multiples of ``scale``, and LQ (h/s, w/s, 3), both
        uint8 RGB.

    Raises:
        InvalidInputError: the image is smaller than ``scale``.
        RuntimeError: the pipeline's LQ is not GT / ``scale``.
    """
    h, w = gt.shape[0] - gt.shape[0] % scale, gt.shape[1] - gt.shape[1] % scale
    if h == 0 or w == 0:
        raise InvalidInputError(f'{name}: image {gt.shape[1]}x{gt.shape[0]} is smaller than the scale {scale}')
    gt = np.ascontiguousarray(gt[:h, :w])
    results = transforms(dict(gt=gt, gt_path=name, scale=scale))
    lq = np.clip(np.round(np.asarray(results['img'], dtype=np.float64)), 0, 255).astype(np.uint8)
    if lq.shape[:2] != (h // scale, w // scale):
        raise RuntimeError(f'{name}: LQ {lq.shape[:2]} is not GT {gt.shape[:2]} / {scale}')
    return gt, lq.reshape(h // scale, w // scale, -1)


def _process(job: Tuple[str, str, str, int, bool]) -> Tuple[str, str]:
    """Worker: returns (name, 'written' | 'completed' | 'skipped' | 'error: ...')."""
    src, gt_path, lq_path, scale, overwrite = job
    name = osp.basename(src)
    todo = [p for p in (gt_path, lq_path) if overwrite or not osp.exists(p)]
    if not todo:
        return name, 'skipped'
    try:
        gt, lq = degrade_one(read_rgb(src), name, _pipeline, scale)
        for path, img in ((gt_path, gt), (lq_path, lq)):
            if path in todo:
                write_png(path, img)
    except Exception as e:  # report per file, keep going
        return name, f'error: {type(e).__name__}: {e}'
    return name, 'written' if len(todo) == 2 else 'completed'


def hq_images(hq_dir: str) -> List[str]:
    """The image file names of ``hq_dir``, refused when two would give the same output name (their stem).

    Args:
        hq_dir (str): folder of HQ images.

    Returns:
        list[str]: the file names, sorted.

    Raises:
        MissingDataError: the folder is missing or holds no image.
        InvalidOptionError: two images share a stem.
    """
    files = folder_images(hq_dir, 'HQ folder')
    stems: Dict[str, str] = {}
    for f in files:
        stem = osp.splitext(f)[0]
        if stem in stems:
            raise InvalidOptionError(f'{stems[stem]} and {f} would both be written as {stem}.png')
        stems[stem] = f
    return files


@dataclass
class PairReport:
    """What :func:`generate_pairs` did: the state of each image ('written', 'completed' (a missing half),
    'skipped' (both existed) or 'error: ...') and the seconds it took."""

    status: Dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def errors(self) -> Dict[str, str]:
        """The images that failed: name -> error message."""
        return {n: s for n, s in self.status.items() if s.startswith('error')}

    @property
    def skipped(self) -> int:
        """How many images were skipped (both files existed)."""
        return sum(s == 'skipped' for s in self.status.values())

    @property
    def done(self) -> int:
        """How many images were written or completed."""
        return len(self.status) - len(self.errors) - self.skipped


def generate_pairs(
    hq_dir: str,
    out_dir: str,
    degradation: str = 'realesrgan',
    scale: int = 4,
    seed: int = 0,
    workers: int = 1,
    overwrite: bool = False,
    config: Optional[str] = None,
    progress: Optional[Callable[[int], Callable[[], None]]] = None,
) -> PairReport:
    """Write the GT/LQ pairs of every image of ``hq_dir`` into ``out_dir`` (see the module docstring).

    Existing files are left untouched unless ``overwrite``; an image whose two files exist is skipped without
    starting workers. Unreadable or too small images are reported in the result, the others written.

    Args:
        hq_dir (str): folder of HQ images.
        out_dir (str): output folder; pairs go to ``gt/`` and ``lq/`` as PNG.
        degradation (str): 'realesrgan' or 'bsrgan'. Default: 'realesrgan'.
        scale (int): 2 or 4. Default: 4.
        seed (int): base seed of the degradations. Default: 0.
        workers (int): processes. Default: 1.
        overwrite (bool): replace existing files. Default: False.
        config (str, optional): dataset config holding the pipeline (see :func:`build_degradations`).
            Default: None.
        progress (callable, optional): Called with the number of images to process; returns the function to
            call after each. Default: None.

    Returns:
        PairReport: the state of each image and the seconds taken.

    Raises:
        MissingDataError: ``hq_dir`` is missing or holds no image, or the dataset config is missing.
        InvalidOptionError: Two images share a stem, or the config does not fit.
    """
    files = hq_images(hq_dir)
    transforms = build_degradations(degradation, scale, config)
    gt_dir, lq_dir = osp.join(out_dir, 'gt'), osp.join(out_dir, 'lq')
    os.makedirs(gt_dir, exist_ok=True)
    os.makedirs(lq_dir, exist_ok=True)
    jobs = [
        (
            osp.join(hq_dir, f),
            osp.join(gt_dir, osp.splitext(f)[0] + '.png'),
            osp.join(lq_dir, osp.splitext(f)[0] + '.png'),
            scale,
            overwrite,
        )
        for f in files
    ]
    report = PairReport(
        {osp.basename(j[0]): 'skipped' for j in jobs if not overwrite and osp.exists(j[1]) and osp.exists(j[2])}
    )
    pending = [j for j in jobs if osp.basename(j[0]) not in report.status]
    start = time.time()
    if pending:
        step = progress(len(pending)) if progress else (lambda: None)
        workers = min(workers, len(pending))
        if workers <= 1:
            _init_worker(transforms, seed)
            results = map(_process, pending)
        else:
            ctx = mp.get_context('fork' if sys.platform.startswith('linux') else 'spawn')
            pool = ctx.Pool(workers, initializer=_init_worker, initargs=(transforms, seed))
            results = pool.imap_unordered(_process, pending, chunksize=1)
        for name, state in results:
            report.status[name] = state
            step()
        if workers > 1:
            pool.close()
            pool.join()
    report.seconds = time.time() - start
    return report


def benchmark_image(size: int, path: Optional[str] = None) -> np.ndarray:
    """A square test image: a centre crop of ``path`` or a synthetic textured image.

    Args:
        size (int): side in pixels.
        path (str, optional): an image file to crop. Default: None (synthetic).

    Returns:
        np.ndarray: (size, size, 3) uint8 RGB.

    Raises:
        MissingDataError: ``path`` does not exist.
        InvalidInputError: the image is smaller than ``size``.
    """
    if path:
        if not osp.isfile(path):
            raise MissingDataError(f'image not found: {path}')
        img = read_rgb(path)
        if min(img.shape[:2]) < size:
            raise InvalidInputError(f'{path} is smaller than {size}x{size}')
        y, x = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        return np.ascontiguousarray(img[y : y + size, x : x + size])
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = 0.5 + 0.25 * np.sin(12 * xx + 5 * yy)[..., None] * np.array([1.0, 0.7, 0.4])
    texture = cv2.GaussianBlur(rng.random((size, size, 3)), (0, 0), 1.5) - 0.5
    return np.clip((base + 0.6 * texture) * 255, 0, 255).astype(np.uint8)


def degradation_throughput(
    size: int = 256,
    images: int = 30,
    path: Optional[str] = None,
    pipelines: Tuple[Tuple[str, int], ...] = (('realesrgan', 4), ('realesrgan', 2), ('bsrgan', 4)),
) -> dict:
    """Images per second of each degradation pipeline in this process on GT patches of ``size``.

    One core when the caller limits BLAS and OpenMP threads; the patch is :func:`benchmark_image`, each image with its
    own seed.

    Args:
        size (int): patch side in pixels. Default: 256.
        images (int): timed images per pipeline. Default: 30.
        path (str, optional): image to crop the patch from. Default: None (synthetic).
        pipelines (tuple[tuple[str, int], ...]): (degradation, scale) pairs. Default: realesrgan x4, x2, bsrgan x4.

    Returns:
        dict: ``size``, ``images``, ``cores`` and per pipeline ``images_per_s_per_core`` and ``ms_per_image``.
    """
    gt = benchmark_image(size, path)
    report = dict(size=size, images=images, cores=1, pipelines={})
    for name, scale in pipelines:
        pipeline = build_pipeline(build_degradations(name, scale), seed=0)
        degrade_one(gt, 'warmup', pipeline, scale)
        start = time.perf_counter()
        for i in range(images):  # a different seed per image: the average over random draws
            degrade_one(gt, f'img_{i}', pipeline, scale)
        elapsed = time.perf_counter() - start
        report['pipelines'][f'{name}_x{scale}'] = dict(
            images_per_s_per_core=round(images / elapsed, 2), ms_per_image=round(1000 * elapsed / images, 1)
        )
    return report
