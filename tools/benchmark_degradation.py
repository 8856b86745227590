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

for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_var, '1')

if __package__ in (None, ''):  # run as a script from anywhere
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--images', type=int, default=30, help='timed images per pipeline')
    parser.add_argument('--image', help='use a centre crop of this image instead of a synthetic one')
    args = parser.parse_args()
    from iter_mm.datasets.lq_pairs import degradation_throughput
    from iter_mm.errors import ITERError

    try:
        print(json.dumps(degradation_throughput(args.size, args.images, args.image), indent=2))
    except ITERError as err:
        raise SystemExit(f'error: {err}') from None


if __name__ == '__main__':
    main()
