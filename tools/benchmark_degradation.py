"""Throughput of the degradation pipelines: images/s on one core (one process, cv2 and BLAS
single-threaded) for GT patches of --size (default 256), printed as JSON.

    python tools/benchmark_degradation.py [--size 256] [--images 30] [--image PATH]

A data loader with N workers produces about N times the per-core rate.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from typing import Optional

for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_var, '1')

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from generate_lq import build_degradations, degrade_one, read_rgb  # noqa: E402

PIPELINES = [('realesrgan', 4), ('realesrgan', 2), ('bsrgan', 4)]


def benchmark_image(size: int, path: Optional[str] = None) -> np.ndarray:
    """(size, size, 3) uint8 RGB: a centre crop of ``path`` or a synthetic textured image."""
    if path:
        if not osp.isfile(path):
            raise FileNotFoundError(f'image not found: {path}')
        img = read_rgb(path)
        if min(img.shape[:2]) < size:
            raise ValueError(f'{path} is smaller than {size}x{size}')
        y, x = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        return np.ascontiguousarray(img[y:y + size, x:x + size])
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = 0.5 + 0.25 * np.sin(12 * xx + 5 * yy)[..., None] * np.array([1.0, 0.7, 0.4])
    texture = cv2.GaussianBlur(rng.random((size, size, 3)), (0, 0), 1.5) - 0.5
    return np.clip((base + 0.6 * texture) * 255, 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--images', type=int, default=30, help='timed images per pipeline')
    parser.add_argument('--image', help='use a centre crop of this image instead of a synthetic one')
    args = parser.parse_args()

    cv2.setNumThreads(1)
    import iter_mm  # noqa: F401
    from mmengine.registry import init_default_scope

    from mmagic.registry import TRANSFORMS
    init_default_scope('mmagic')
    gt = benchmark_image(args.size, args.image)
    report = dict(size=args.size, images=args.images, cores=1, pipelines={})
    for name, scale in PIPELINES:
        pipeline = TRANSFORMS.build(
            dict(type='SeededDegradations', transforms=build_degradations(name, scale), seed=0))
        degrade_one(gt, 'warmup', pipeline, scale)
        start = time.perf_counter()
        for i in range(args.images):  # a different seed per image: the average over random draws
            degrade_one(gt, f'img_{i}', pipeline, scale)
        elapsed = time.perf_counter() - start
        report['pipelines'][f'{name}_x{scale}'] = dict(
            images_per_s_per_core=round(args.images / elapsed, 2),
            ms_per_image=round(1000 * elapsed / args.images, 1))
    print(json.dumps(report, indent=2))


if __name__ == '__main__':
    main()
