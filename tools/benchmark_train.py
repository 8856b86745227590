#!/usr/bin/env python
"""Seconds per training iteration of ITER's stage I (Swin-VQGAN: G + D step) and stages II+III (E_l, phi_e, phi_r).

    python tools/benchmark_train.py [--stages 1 23 authors23] [--gt-size 320] [--batch 4] [--iters 3] [--warmup 1]
        [--threads N] [--device cpu|cuda] [--amp] [--perceptual none|l1] [--interleave] [--out result.json]
        [--stage1-config CFG] [--iter-config CFG] [--stage1-options K=V ...] [--iter-options K=V ...]

Each iteration is the model's own ``train_step`` with MMEngine's optimizer wrapper, built from the real configs
(default ``configs/iter/swinvqgan_df2k-ost.py`` and ``configs/iter/iter_x4_realsr.py``), random weights, one fixed
random batch. ``--perceptual none`` (default) drops the LPIPS-VGG loss (it needs pretrained weights), ``l1`` puts
an L1 loss of its weight in its place. ``--amp``: fp16 ``AmpOptimWrapper`` on CUDA, bf16 autocast on CPU, as
``tools/train.py --amp``. ``authors23`` times the authors' stage II+III call pattern on our networks. Medians over
``--iters`` iterations after ``--warmup``, a per-part breakdown (networks, losses, backward / step / zero_grad)
and ``cpu_median_s`` (process CPU time). Prints ONE JSON object (``iter_mm.evaluation.train_benchmark``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
from typing import Optional, Sequence

import torch
from mmengine.config import DictAction

if __package__ in (None, ''):  # run as a script from anywhere
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from iter_mm.evaluation.train_benchmark import STAGES, TrainBenchSettings  # noqa: E402

DEFAULTS = TrainBenchSettings()


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument(
        '--stages',
        nargs='+',
        default=DEFAULTS.stages,
        choices=STAGES,
        help="'1': Swin-VQGAN G + D step; '23': ITERModel (E_l, phi_e, phi_r); 'authors23': the "
        "authors' stage II+III calls on our networks (comparison)",
    )
    p.add_argument('--stage1-config', default=DEFAULTS.stage1_config)
    p.add_argument('--iter-config', default=DEFAULTS.iter_config)
    p.add_argument(
        '--stage1-options',
        nargs='+',
        action=DictAction,
        default={},
        help='KEY=VALUE overrides of the stage-I config (as --cfg-options)',
    )
    p.add_argument(
        '--iter-options',
        nargs='+',
        action=DictAction,
        default={},
        help='KEY=VALUE overrides of the ITER config (stages 23 and authors23)',
    )
    p.add_argument('--gt-size', type=int, default=DEFAULTS.gt_size, help='GT crop side (the authors: 320)')
    p.add_argument('--batch', type=int, default=DEFAULTS.batch, help='images per iteration (the authors: 4 per GPU)')
    p.add_argument('--iters', type=int, default=DEFAULTS.iters, help='timed iterations (median reported)')
    p.add_argument('--warmup', type=int, default=DEFAULTS.warmup, help='untimed iterations first')
    p.add_argument('--threads', type=int, default=0, help='torch CPU threads (0 = leave as is)')
    p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    p.add_argument('--amp', action='store_true', help='CUDA: fp16 AmpOptimWrapper; CPU: bf16 autocast')
    p.add_argument(
        '--perceptual',
        default='none',
        choices=('none', 'l1'),
        help='replacement of the LPIPS-VGG loss (needs pretrained weights): none, or L1 of its weight',
    )
    p.add_argument(
        '--interleave',
        action='store_true',
        help='build every stage first and alternate their iterations (fairer ratios on a busy machine)',
    )
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', help='also write the JSON here')
    args = p.parse_args(argv)
    if args.gt_size < 8 or args.batch < 1 or args.iters < 1 or args.warmup < 0:
        p.error('need --gt-size >= 8, --batch >= 1, --iters >= 1, --warmup >= 0')
    if args.device == 'cuda' and not torch.cuda.is_available():
        p.error('--device cuda: no CUDA device visible')
    args.stages = list(dict.fromkeys(args.stages))
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    stdout = sys.stdout

    def log(msg: str) -> None:
        print(f'[benchmark_train] {msg}', file=sys.stderr, flush=True)

    names = {f.name for f in dataclasses.fields(TrainBenchSettings)}
    settings = TrainBenchSettings(**{k: v for k, v in vars(args).items() if k in names})
    # library logs (MMEngine's logger writes to stdout) must not mix with the one JSON object
    with contextlib.redirect_stdout(sys.stderr):
        from iter_mm.errors import ITERError
        from iter_mm.evaluation.train_benchmark import benchmark_train

        try:
            result = benchmark_train(settings, log)
        except ITERError as err:
            raise SystemExit(f'error: {err}') from None
    text = json.dumps(result, indent=1)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')
    print(text, file=stdout)
    return 0


if __name__ == '__main__':
    sys.exit(main())
