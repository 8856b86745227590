#!/usr/bin/env python
"""Try an ITER model in the browser: upload a photo, move alpha, watch the refinement (docs/web_demo.md).

    python tools/web_demo.py CONFIG CHECKPOINT [--host 127.0.0.1] [--port 7860] [--device cpu|cuda]
        [--alpha 0.7] [--steps 8] [--seed 0] [--tile 256] [...every sampling option of tools/infer.py]
        [--stage1-checkpoint ITER_swinvqgan.pth] [--ext png|jpg|webp|same] [--quality 95] [--alpha-upscale bicubic|iter]

Then open the printed address. The page listens on 127.0.0.1 (this machine only) unless --host says otherwise
(--host 0.0.0.0: every network interface; whoever reaches the port can run the model). The checkpoint is anything
tools/infer.py loads (iter-mm checkpoints, the authors' ITER_x{2,4}.pth with --stage1-checkpoint). Sampling options
given here are the page's defaults (alpha, steps, seed, colour correction, tile) or fixed for every run (the others);
not given: the config's model.test_cfg. The result file is written as tools/infer.py writes it (--ext, --quality,
--alpha-upscale, --frames, --to-srgb). Uploads above --max-input-pixels are refused. Ctrl+C stops the server.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys
from typing import List, Optional

import torch

if __package__ in (None, ''):  # run as a script from anywhere
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

if '--verbose' in sys.argv[1:]:  # before iter_mm (and MMEngine) import
    import os

    os.environ['ITER_MM_VERBOSE'] = '1'
from iter_mm.apis.web_restore import MAX_INPUT_PIXELS  # noqa: E402
from iter_mm.models.options import RestoreOptions, add_restore_arguments, given_options  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='ITER web demo (Gradio)')
    p.add_argument('config', help='model config (e.g. configs/iter/iter_x4_realsr.py)')
    p.add_argument('checkpoint', help='iter-mm or official ITER checkpoint')
    p.add_argument(
        '--host',
        default='127.0.0.1',
        help='address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every interface)',
    )
    p.add_argument('--port', type=int, default=7860, help='port (default 7860)')
    p.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='cpu or cuda (default: cuda when available)',
    )
    p.add_argument(
        '--stage1-checkpoint',
        '--vqgan',
        dest='stage1_checkpoint',
        help="the authors' ITER_swinvqgan.pth, for their ITER checkpoints without vqgan.* (--vqgan: deprecated name)",
    )
    p.add_argument(
        '--unsafe-load',
        action='store_true',
        help='allow pickled objects in the checkpoint (full MMEngine training checkpoints); only for files you trust',
    )
    p.add_argument(
        '--ext',
        choices=('png', 'jpg', 'webp', 'same'),
        default='same',
        help="result file format ('same': the upload's; default)",
    )
    p.add_argument('--quality', type=int, help='JPEG/WebP quality 1-100 (default 95; WebP 100 = lossless)')
    p.add_argument(
        '--alpha-upscale',
        choices=('bicubic', 'iter'),
        default='bicubic',
        help='how the alpha channel is upscaled (default bicubic)',
    )
    p.add_argument(
        '--frames',
        choices=('first', 'all'),
        default='first',
        help='animated / multi-page uploads: the first frame (default) or every frame',
    )
    p.add_argument('--to-srgb', action='store_true', help='convert pixels from an embedded ICC profile to sRGB')
    p.add_argument(
        '--max-input-pixels',
        type=int,
        default=MAX_INPUT_PIXELS,
        help=f'larger uploads are refused (default {MAX_INPUT_PIXELS}, 1024x1024)',
    )
    p.add_argument('--verbose', action='store_true', help='also show library notes and warnings')
    add_restore_arguments(p)
    args = p.parse_args(argv)
    if args.quality is not None and not 1 <= args.quality <= 100:
        p.error(f'--quality must be in 1..100, got {args.quality}')
    if not 0 < args.port < 65536:
        p.error(f'--port must be in 1..65535, got {args.port}')
    if args.max_input_pixels < 1:
        p.error(f'--max-input-pixels must be >= 1, got {args.max_input_pixels}')
    try:  # RestoreOptions' own rules, before anything is loaded
        RestoreOptions(**given_options(args))
    except ValueError as err:
        p.error(str(err))
    return args


#: this tool's option for each library argument a refusal may name
FLAGS = dict(
    checkpoint='CHECKPOINT', stage1_checkpoint='--stage1-checkpoint', allow_pickle='--unsafe-load', frames='--frames'
)


def run(args: argparse.Namespace) -> int:
    from iter_mm.apis.model_loader import init_model
    from iter_mm.apis.web_demo import build_demo, serve
    from iter_mm.apis.web_restore import WebSettings
    from iter_mm.errors import ITERError, cli_message

    try:
        device = torch.device(args.device)
    except RuntimeError as err:
        raise SystemExit(f'--device {args.device!r}: {err}') from err
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: CUDA is not available; use --device cpu')
    try:
        model = init_model(
            args.config,
            args.checkpoint,
            device=device,
            stage1_checkpoint=args.stage1_checkpoint,
            allow_pickle=args.unsafe_load,
        )
        if not callable(getattr(model, 'restore', None)):
            raise SystemExit(f'{args.config}: model {type(model).__name__} has no restore(); use an ITER config')
        settings = WebSettings(
            args.ext, args.quality, args.alpha_upscale, args.frames, args.to_srgb, args.max_input_pixels
        )
        server = serve(build_demo(model, given_options(args), settings), args.host, args.port)
    except (ITERError, FileNotFoundError, RuntimeError, ValueError) as err:  # missing file, checkpoint, port
        raise SystemExit(cli_message(err, FLAGS)) from None
    if args.host not in ('127.0.0.1', 'localhost', '::1'):
        print(
            f'warning: listening on {args.host}: whoever reaches port {args.port} can use this model', file=sys.stderr
        )
    print(f'ITER web demo on {server.url} (Ctrl+C stops it)', flush=True)
    server.wait()
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from iter_mm.utils.quiet import quiet_tool

    with quiet_tool(args.verbose):  # results and real problems only, as 'error: ...' (exit status 1)
        try:
            return run(args)
        except SystemExit as stop:  # this tool's own refusals; exit codes (argparse's 2) pass unchanged
            if isinstance(stop.code, str) and not stop.code.startswith('error:'):
                raise SystemExit(f'error: {stop.code}') from None
            raise


if __name__ == '__main__':
    sys.exit(main())
