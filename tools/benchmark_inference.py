#!/usr/bin/env python
"""Time ITER (paper scale, random weights) against MMagic's real-world x4/x2 SwinIR and RRDBNet networks.

    python tools/benchmark_inference.py [--size 128] [--scale 4] [--batch 1] [--steps 8] [--alpha 0.7]
        [--device cpu|cuda] [--dtype fp32|bf16|fp16] [--cuda-graphs] [--repeats 3] [--warmup 1] [--threads N]
        [--models iter iter-ref swinir rrdbnet] [--interleave] [--no-flops] [--out JSON]
    python tools/benchmark_inference.py --agreement [--config CFG --checkpoint CKPT --lq-dir DIR]
        [--sampling NAME=VALUE ...] [--out JSON]

One process, one fixed random batch of ``--batch`` LQ images of one size; ITER in ``--dtype``, SwinIR and
RRDBNet in ``--baseline-dtype``. Each model: ``--warmup`` untimed calls, then ``--repeats`` timed calls (CUDA
synchronised); the median is reported per call (``median_s``) and as ``images_per_s``. ``--interleave``
alternates the models' timed calls. ``iter-ref`` is ITER on the reference kernels (plain PyTorch ops);
``--cuda-graphs`` replays ITER's network calls as CUDA graphs (captured during the warm-up calls). For ITER the
JSON also holds the per-call breakdown (E_l, phi_e, phi_r, VQGAN decoder), the FLOPs of one call of each, the
GFLOP/s achieved and the matmul peak of the part's dominant size (``iter_mm.evaluation.inference_benchmark``).
No weights are loaded: timings only (with ``--alpha`` above phi_e's typical P(good) every step runs: the worst
case). bf16/fp16 run under autocast. Prints ONE JSON object. With PyTorch only (no MMagic / MMEngine / MMCV)
``--models iter [iter-ref]`` runs the paper-scale ``ITERNet``.

``--agreement`` restores every image of ``--lq-dir`` with a trained model in fp32 (default kernels), fp32
reference kernels and bf16 autocast, and reports the share of identical tokens and the PSNR of bf16 against
fp32, and whether the fp32 kernels match the reference (JSON to stdout and ``--out``).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import sys
from typing import Optional, Sequence

import torch

if __package__ in (None, ''):  # run as a script from anywhere
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from iter_mm.errors import ITERError  # noqa: E402
from iter_mm.evaluation.inference_benchmark import (
    InferenceBenchSettings,
    agreement,
    benchmark_inference,  # noqa
    mmagic_available,
)
from iter_mm.models.options import DEFAULTS as RESTORE_DEFAULTS  # noqa: E402

DEMO = dict(
    config='configs/iter/iter_x4_demo.py',
    checkpoint='work_dirs/demo/iter_x4_demo/weights.pth',
    lq_dir='work_dirs/demo/heldout_x4/lq',
)  # what tools/demo.py writes


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--size', type=int, default=128, help='LQ side in pixels')
    p.add_argument('--scale', type=int, default=4, choices=(2, 4))
    p.add_argument('--batch', type=int, default=1, help='images of one size per call (ITER: one batched restore)')
    p.add_argument('--steps', type=int, default=RESTORE_DEFAULTS.steps)
    p.add_argument('--alpha', type=float, default=RESTORE_DEFAULTS.alpha)
    p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    p.add_argument('--dtype', default='fp32', choices=('fp32', 'bf16', 'fp16'), help='ITER precision')
    p.add_argument(
        '--cuda-graphs',
        action='store_true',
        help='ITER on CUDA: replay the network calls as CUDA graphs (RestoreOptions.cuda_graphs; the '
        'warm-up calls capture them; the per-part breakdown comes from eager runs)',
    )
    p.add_argument(
        '--baseline-dtype',
        default='fp32',
        choices=('fp32', 'bf16', 'fp16'),
        help="SwinIR's and RRDBNet's precision (default fp32: ITER bf16 is compared with their fp32)",
    )
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--threads', type=int, default=0, help='torch CPU threads (0 = leave as is)')
    p.add_argument(
        '--models', nargs='+', default=['iter', 'swinir', 'rrdbnet'], choices=('iter', 'iter-ref', 'swinir', 'rrdbnet')
    )
    p.add_argument('--iter-config', help='ITER model config (default: ITERModel with the paper-scale ITERNet)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--no-flops', action='store_true', help='skip the FLOP count and the matmul peaks')
    p.add_argument(
        '--profile',
        type=int,
        default=0,
        metavar='N',
        help='ITER: one more call under torch.profiler; the N ops with the most self time (device time '
        'on CUDA) and the op/launch counts go to the JSON (where the remaining time goes)',
    )
    p.add_argument(
        '--interleave',
        action='store_true',
        help="alternate the models' timed calls (all built first), so that other jobs slow them alike",
    )
    g = p.add_argument_group('--agreement: bf16 vs fp32 and default vs reference kernels on a trained model')
    g.add_argument('--agreement', action='store_true')
    g.add_argument('--config', default=DEMO['config'])
    g.add_argument('--checkpoint', default=DEMO['checkpoint'], help='loaded with allow_pickle (trusted files)')
    g.add_argument('--lq-dir', default=DEMO['lq_dir'])
    g.add_argument(
        '--sampling',
        nargs='*',
        default=[],
        metavar='NAME=VALUE',
        help="RestoreOptions over the config's test_cfg, e.g. token_temperature=1.0",
    )
    p.add_argument('--out', help='also write the JSON here')
    args = p.parse_args(argv)
    if args.size < 8 or args.repeats < 1 or args.warmup < 0 or args.steps < 1 or not 0 <= args.alpha <= 1:
        p.error('need --size >= 8, --repeats >= 1, --warmup >= 0, --steps >= 1, 0 <= --alpha <= 1')
    if args.device == 'cuda' and not torch.cuda.is_available():
        p.error('--device cuda: no CUDA device visible')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.agreement:
        if not mmagic_available():
            raise SystemExit('--agreement loads a trained model through MMagic, which is not installed')
        import iter_mm  # noqa: F401

        overrides = {}
        for item in args.sampling:
            name, _, value = item.partition('=')
            try:
                overrides[name] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                overrides[name] = value  # a string (e.g. schedule=cosine)
        try:
            return _emit(agreement(args.config, args.checkpoint, args.lq_dir, overrides), args.out)
        except ITERError as err:
            raise SystemExit(f'error: {err}') from None
    import iter_mm  # noqa: F401  (registers ITER; imports MMagic)

    if not mmagic_available() and set(args.models) - {'iter', 'iter-ref'}:
        raise SystemExit(
            f'--models {" ".join(args.models)}: SwinIR and RRDBNet come from MMagic, which is not '
            'installed; run --models iter (PyTorch only)'
        )
    if args.batch < 1 or args.size < 1 or args.profile < 0:
        raise SystemExit(
            f'--batch and --size must be >= 1 and --profile >= 0, got {args.batch}, {args.size} and {args.profile}'
        )
    if args.iter_config and not mmagic_available():
        raise SystemExit('--iter-config needs MMagic / MMEngine; without them only the paper-scale ITERNet runs')
    names = {f.name for f in dataclasses.fields(InferenceBenchSettings)}
    settings = InferenceBenchSettings(**{k: v for k, v in vars(args).items() if k in names}, flops=not args.no_flops)

    def log(msg: str) -> None:
        print(f'[benchmark] {msg}', file=sys.stderr, flush=True)

    return _emit(benchmark_inference(settings, log), args.out)


def _emit(result: dict, out: Optional[str]) -> int:
    """Print the JSON object; with ``--out`` also write it there."""
    text = json.dumps(result, indent=1)
    if out:
        with open(out, 'w') as f:
            f.write(text + '\n')
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
