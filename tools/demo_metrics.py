"""Measure what the small-budget demo learned, on held-out photos, next to bicubic.

    python tools/demo_metrics.py --stage1 configs/iter/swinvqgan_demo.py work_dirs/swinvqgan_demo/iter_N.pth \
        --iter configs/iter/iter_x4_demo.py work_dirs/iter_x4_demo/iter_M.pth --out metrics.json

``--stage1 CONFIG CKPT``: reconstruction PSNR / SSIM (Y, crop 4), codebook usage and perplexity, colour bias of
the held-out HQ photos. ``--iter CONFIG CKPT``: ITER and bicubic on the config's validation set (PSNR / SSIM,
colour bias, NIQE) and token diagnostics. Prints the means as JSON; ``--out`` also writes the per-image rows.
The measures and their definitions: ``iter_mm.evaluation.demo_metrics``.
"""

import argparse
import ast
import json
import sys

import torch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--stage1', nargs=2, metavar=('CONFIG', 'CKPT'), help='stage-I config and checkpoint')
    parser.add_argument('--iter', nargs=2, metavar=('CONFIG', 'CKPT'), help='ITER config and checkpoint')
    parser.add_argument(
        '--sampling',
        nargs='+',
        default=[],
        metavar='KEY=VALUE',
        help='sampling options over the ITER test_cfg, e.g. token_temperature=0 alpha=0.5',
    )
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args(argv)
    if not args.stage1 and not args.iter:
        parser.error('give --stage1 and/or --iter')
    from iter_mm.evaluation.demo_metrics import eval_sr, eval_stage1, sampling_defaults

    torch.set_num_threads(args.threads)
    results = {}
    if args.stage1:
        results['stage1'] = eval_stage1(*args.stage1)
    if args.iter:
        overrides = {
            k: ast.literal_eval(v) if v[:1].isdigit() or v[:1] in '-.' else v
            for k, v in (kv.split('=', 1) for kv in args.sampling)
        }
        results['sr'] = eval_sr(*args.iter, overrides=overrides)
        results['sr']['sampling'] = {**sampling_defaults(args.iter[0]), **overrides}
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != 'per_image'} for k, v in results.items()}, indent=1))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
