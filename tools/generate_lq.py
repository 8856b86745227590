"""Pre-generate a paired GT/LQ dataset from a folder of HQ images.

    python tools/generate_lq.py HQ_DIR OUT_DIR [--degradation realesrgan|bsrgan] [--scale 4]
                                [--seed 0] [--workers N] [--overwrite] [--config DATASET_CFG]

Writes OUT_DIR/gt/NAME.png (HQ mod-cropped to a multiple of the scale) and OUT_DIR/lq/NAME.png
(its degradation, exactly GT / scale), the layout configs/_base_/datasets/paired_folder.py reads.
The degradation is the `<degradation>_degradations` list of configs/_base_/datasets/
<degradation>_x<scale>.py (bsrgan: bsrgan_x4.py with its scale set). Each image is seeded from
(seed, file name), so the output does not depend on --workers. Existing files are left untouched
unless --overwrite (``iter_mm.datasets.lq_pairs``).
"""

import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

if __package__ in (None, ''):  # run as a script from anywhere
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('hq_dir', help='folder of HQ images (not recursive)')
    parser.add_argument('out_dir', help='output folder; gets gt/ and lq/')
    parser.add_argument('--degradation', choices=['realesrgan', 'bsrgan'], default='realesrgan')
    parser.add_argument('--scale', type=int, default=4, choices=[2, 4])
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--workers',
        type=int,
        default=max(1, (os.cpu_count() or 1) - 1),
        help='worker processes (0 or 1: run in this process)',
    )
    parser.add_argument('--overwrite', action='store_true', help='replace existing output files')
    parser.add_argument(
        '--config',
        help='dataset config holding `<degradation>_degradations` '
        '(default: configs/_base_/datasets/<degradation>_x<scale>.py)',
    )
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if not osp.isdir(args.hq_dir):  # at once, before the degradation stack loads (the library checks it too)
        print(f'generate_lq.py: error: HQ folder {args.hq_dir} does not exist', file=sys.stderr)
        return 2
    from tqdm import tqdm

    from iter_mm.datasets.lq_pairs import generate_pairs
    from iter_mm.errors import ITERError

    bars = []

    def progress(total: int):
        bars.append(tqdm(total=total, desc=f'{args.degradation} x{args.scale}', unit='img'))
        return lambda: bars[0].update(1)

    try:
        report = generate_pairs(
            args.hq_dir,
            args.out_dir,
            args.degradation,
            args.scale,
            args.seed,
            args.workers,
            args.overwrite,
            args.config,
            progress,
        )
    except ITERError as e:
        print(f'generate_lq.py: error: {e}', file=sys.stderr)
        return 2
    finally:
        for bar in bars:
            bar.close()
    print(
        f'{report.done} pair(s) written to {args.out_dir} in {report.seconds:.1f} s '
        f'({args.workers} worker(s), seed {args.seed})'
    )
    if report.skipped:
        print(f'{report.skipped} pair(s) already existed and were left untouched (use --overwrite to replace)')
    for name, state in sorted(report.errors.items()):
        print(f'  {name}: {state}', file=sys.stderr)
    return 1 if report.errors else 0


if __name__ == '__main__':
    sys.exit(main())
