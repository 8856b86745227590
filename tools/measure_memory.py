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
import resource
import subprocess
import sys
import time

if __package__ in (None, ''):  # run as a script from anywhere
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _maxrss() -> int:
    """Peak RSS of this process in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _rss() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def measure_one(size: int, scale: int, steps: int, dtype: str, threads: int) -> dict:
    import torch

    from iter_mm.models.archs import ITERNet
    from iter_mm.models.inference import restore_image
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = ITERNet(scale=scale).eval()
    lq = torch.rand(1, 3, size, size)
    built = _rss()
    built_peak = _maxrss()
    rises: dict = {}

    def hooks(name, module):
        state = {}

        def pre(_m, _a):
            state['before'] = _maxrss()
            state['rss'] = _rss()

        def post(_m, _a, _o):
            rise = _maxrss() - state['before']
            cur = rises.setdefault(name, dict(calls=0, max_rise_mb=0.0, rss_in_mb=0.0))
            cur['calls'] += 1
            cur['max_rise_mb'] = max(cur['max_rise_mb'], rise / 2 ** 20)
            cur['rss_in_mb'] = max(cur['rss_in_mb'], state['rss'] / 2 ** 20)
        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)

    for name in ('lq_encoder', 'evaluator', 'refiner'):
        hooks(name, getattr(net, name))
    hooks('decoder', net.vqgan.decoder)
    for k, blk in enumerate(net.vqgan.decoder.blocks):
        hooks(f'decoder.blocks.{k}.{type(blk).__name__}', blk)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = restore_image(net, lq, alpha=1.0, steps=steps, max_pixels=None, tile=None, dtype=dtype)
    wall = time.perf_counter() - t0
    peak = _maxrss()
    return dict(size=size, scale=scale, steps=steps, dtype=dtype, threads=torch.get_num_threads(),
                out_shape=list(out.shape), wall_s=round(wall, 1), rss_after_build_mb=round(built / 2 ** 20),
                peak_before_call_mb=round(built_peak / 2 ** 20), peak_rss_mb=round(peak / 2 ** 20),
                call_mb=round((peak - built) / 2 ** 20),
                call_kb_per_lq_pixel=round((peak - built) / size ** 2 / 1024, 1),
                parts={k: {kk: round(vv, 1) for kk, vv in v.items()} for k, v in rises.items()})


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
        print(json.dumps(measure_one(args.sizes[0], args.scale, args.steps, args.dtype, args.threads)))
        return 0
    rows = []
    for size in args.sizes:
        cmd = [sys.executable, os.path.abspath(__file__), '--one', '--sizes', str(size), '--scale', str(args.scale),
               '--steps', str(args.steps), '--dtype', args.dtype, '--threads', str(args.threads)]
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
        print(f"| {r['size']}x{r['size']} | {r['steps']} | {r['dtype']} | {r['peak_rss_mb'] / 1024:.2f} GiB | "
              f"{r['rss_after_build_mb'] / 1024:.2f} GiB | {r['call_mb'] / 1024:.2f} GiB | "
              f"{r['call_kb_per_lq_pixel']:.0f} KiB |")
    return 0


if __name__ == '__main__':
    sys.exit(main())
