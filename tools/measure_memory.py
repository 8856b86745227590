#!/usr/bin/env python
"""Peak host memory (RSS) of one CPU restoration with the paper-scale ITER model (random weights).

    python tools/measure_memory.py [--sizes 64 128 192] [--scale 4] [--steps 1] [--dtype fp32|bf16]
        [--threads 2] [--out JSON]

Each size runs in a fresh subprocess (``ru_maxrss`` only grows): it builds ``ITERNet(scale)`` (released widths,
random weights, so ``--alpha 1`` makes every step run), records the RSS after the build (weights, libraries), then
restores one random (1, 3, s, s) LQ image through ``restore_image`` without tiling (``max_pixels=None``).
Forward hooks on E_l, phi_e, phi_r and the VQGAN decoder (and on each decoder block) record by how much each
call raised the peak, which tells where the peak is. Prints one JSON line per size and a table:
peak RSS, peak minus the RSS after the build, and that difference per LQ pixel (the figure used by
``iter_mm.utils.tiling.memory_max_pixels``). No MMagic / MMEngine needed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

if __package__ in (None, ''):  # run as a script from anywhere
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--sizes', type=int, nargs='+', default=[64, 128, 192])
    p.add_argument('--scale', type=int, default=4, choices=(2, 4))
    p.add_argument('--steps', type=int, default=1)
    p.add_argument('--dtype', default='fp32', choices=('fp32', 'bf16'))
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--out', help='also write the JSON lines here')
    p.add_argument('--one', action='store_true', help=argparse.SUPPRESS)  # the child process
    args = p.parse_args(argv)
    if args.one:
        from iter_mm.evaluation.inference_benchmark import measure_restore_memory

        print(json.dumps(measure_restore_memory(args.sizes[0], args.scale, args.steps, args.dtype, args.threads)))
        return 0
    rows = []
    for size in args.sizes:
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            '--one',
            '--sizes',
            str(size),
            '--scale',
            str(args.scale),
            '--steps',
            str(args.steps),
            '--dtype',
            args.dtype,
            '--threads',
            str(args.threads),
        ]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            print(res.stderr, file=sys.stderr)
            return res.returncode
        row = json.loads(res.stdout.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(''.join(json.dumps(r) + '\n' for r in rows))
    print('| LQ size | steps | dtype | peak RSS | after build | call | per LQ pixel |')
    print('|---|---|---|---|---|---|---|')
    for r in rows:
        print(
            f'| {r["size"]}x{r["size"]} | {r["steps"]} | {r["dtype"]} | {r["peak_rss_mb"] / 1024:.2f} GiB | '
            f'{r["rss_after_build_mb"] / 1024:.2f} GiB | {r["call_mb"] / 1024:.2f} GiB | '
            f'{r["call_kb_per_lq_pixel"]:.0f} KiB |'
        )
    return 0


if __name__ == '__main__':
    sys.exit(main())
