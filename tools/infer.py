#!/usr/bin/env python
"""Super-resolve image files with an ITER model (adaptive refinement, docs/faithfulness.md#adaptive-inference).

    python tools/infer.py INPUT... -c CONFIG -w CHECKPOINT -o OUT_DIR [--alpha 0.7] [--steps 8] [--seed 0]
        [--tile 256 --tile-overlap 16 --max-pixels 518400] [--color-correction] [--device cuda]
        [--dtype fp32|bf16|fp16] [--ext png|jpg|webp|same] [--quality 95] [--alpha-upscale bicubic|iter]
        [--frames first|all] [--to-srgb] [--overwrite]

INPUTs are image files or folders (their images, non-recursive). Each output has its input's file name in
OUT_DIR, with the extension of --ext (default: the input's). The EXIF orientation is applied (outputs upright);
grey stays grey, 16-bit PNG/TIFF stays 16-bit, alpha is upscaled apart (--alpha-upscale bicubic|iter) and
written back where the format holds it; the ICC profile and EXIF are carried over (--to-srgb converts to sRGB
instead); animations give their first frame (--frames all: every frame). Notes and warnings name the file.
Unreadable files are reported and skipped; the exit status is then 1. Existing outputs are never replaced
without --overwrite: the run stops before writing anything, or with --skip-existing restores only the missing
ones. The checkpoint is an iter-mm one (MMEngine ``state_dict`` or an ITERNet state dict) or the authors'
ITER_x{2,4}.pth (with --stage1-checkpoint ITER_swinvqgan.pth when it lacks the VQGAN); it is loaded strictly.
Sampling options not given fall back to the config's ``model.test_cfg``.
"""

from __future__ import annotations

import argparse
import os.path as osp
import secrets
import sys
import time
from typing import List, Optional

import torch

if __package__ in (None, ''):  # run as a script from anywhere
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

if '--verbose' in sys.argv[1:]:  # before iter_mm (and MMEngine) import
    import os

    os.environ['ITER_MM_VERBOSE'] = '1'
from iter_mm.models.options import RestoreOptions, add_restore_arguments, given_options  # noqa: E402

MIN_TILE_CELLS = 4  # a tile smaller than this many cells of the network's LQ grid (per side) earns a warning


def _seed(text: str):
    """--seed: an integer, or 'none' (any case): a seed drawn for each image."""
    if text.lower() == 'none':
        return 'none'  # not None: None means "not given" (the config's test_cfg)
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {text!r}") from None


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default unless it is None or its help already names it (the sampling options)."""

    def _get_help_string(self, action):
        text = action.help or ''
        return text if action.default is None or 'default' in text else super()._get_help_string(action)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Super-resolve images with ITER', formatter_class=_DefaultsHelp)
    p.add_argument('inputs', nargs='+', help='image files and/or folders of images')
    p.add_argument('-c', '--config', required=True, help='model config (e.g. configs/iter/iter_x4_realsr.py)')
    p.add_argument('-w', '--checkpoint', required=True, help='iter-mm or official ITER checkpoint')
    p.add_argument('-o', '--out-dir', required=True, help='output folder (created if missing)')
    p.add_argument(
        '--stage1-checkpoint',
        '--vqgan',
        dest='stage1_checkpoint',
        metavar='CKPT',
        help='official ITER_swinvqgan.pth, '
        'for official ITER checkpoints without vqgan.* (--vqgan: its deprecated name)',
    )
    p.add_argument(
        '--unsafe-load',
        action='store_true',
        help='allow pickled objects in the checkpoint (full MMEngine training checkpoints); only for files you trust',
    )
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument(
        '--ext', choices=('png', 'jpg', 'webp', 'same'), default='same', help="output format ('same': the input's)"
    )
    p.add_argument('--quality', type=int, help='JPEG/WebP quality 1-100 (default 95; WebP 100 = lossless)')
    p.add_argument(
        '--alpha-upscale',
        choices=('bicubic', 'iter'),
        default='bicubic',
        help='how the alpha channel is upscaled: bicubic, or ITER on the alpha as three channels',
    )
    p.add_argument(
        '--frames',
        choices=('first', 'all'),
        default='first',
        help='animated / multi-page inputs: the first frame (with a warning) or every frame',
    )
    p.add_argument(
        '--to-srgb',
        action='store_true',
        help='convert pixels from an embedded ICC profile to sRGB on read; outputs tagged sRGB',
    )
    keep = p.add_mutually_exclusive_group()
    keep.add_argument('--overwrite', action='store_true', help='replace existing output files')
    keep.add_argument(
        '--skip-existing',
        action='store_true',
        help='keep existing outputs and restore only the missing ones (new photos, an interrupted run)',
    )
    p.add_argument('--verbose', action='store_true', help='also show library notes and warnings')
    add_restore_arguments(p, exclude=('seed',))
    p.add_argument(
        '--seed',
        type=_seed,
        help="sampling seed, the same for every image; 'none': a seed drawn for "
        "each image (default: the config's test_cfg, else 0)",
    )
    args = p.parse_args(argv)
    if args.quality is not None and not 1 <= args.quality <= 100:
        p.error(f'--quality must be in 1..100, got {args.quality}')
    try:  # RestoreOptions' own rules, before anything is loaded
        RestoreOptions(**restore_options(args))
    except ValueError as err:
        p.error(str(err))
    return args


def restore_options(args: argparse.Namespace) -> dict:
    """Sampling/tiling overrides for ``ITERModel.restore``: only the options given on the command line."""
    opts = given_options(args)
    if opts.get('seed') == 'none':
        opts['seed'] = None  # drawn for each call
    return opts


def tiling_warnings(opts: RestoreOptions, multiple: int) -> List[str]:
    """Warnings for tiling options that restoration adjusts (``iter_mm.utils.tiling.planned_tiles``: tiles on the
    network's grid of ``multiple`` LQ pixels) or that make a run very slow (tiles of fewer than MIN_TILE_CELLS
    cells a side: many network calls for little context)."""
    from iter_mm.utils.tiling import planned_tiles, tile_starts

    plan = planned_tiles(opts.tile, opts.tile_overlap, opts.max_pixels, multiple)
    if plan is None:
        return []
    tile, overlap = plan
    asked = f'--tile {opts.tile}' if opts.tile is not None else f'--max-pixels {opts.max_pixels}'
    out = []
    if overlap < opts.tile_overlap:
        out.append(
            f'--tile-overlap {opts.tile_overlap} is capped to {overlap}: tiles are {tile} LQ px ({asked}, '
            f"on the network's {multiple}-px grid) and must advance by at least {multiple} px"
        )
    if tile < MIN_TILE_CELLS * multiple:
        side = -(-1000 // multiple) * multiple  # a 1000x1000 LQ photo, padded to the grid
        tiles = len(tile_starts(side, tile, overlap)) ** 2
        per_call = 1 if opts.max_pixels is None else max(1, opts.max_pixels // tile**2)
        out.append(
            f"tiles of {tile} LQ px ({asked}) are smaller than {MIN_TILE_CELLS} x the network's "
            f'{multiple}-px grid: each tile sees only {tile // multiple}x{tile // multiple} token window(s) '
            f'of context, and a 1000x1000 LQ photo takes {tiles} tiles in {-(-tiles // per_call)} network '
            f'call(s) of {opts.steps} steps; use --tile >= {MIN_TILE_CELLS * multiple} (and --max-pixels >= '
            f'{(MIN_TILE_CELLS * multiple) ** 2}) unless this is intended'
        )
    return out


def run(args: argparse.Namespace) -> int:
    from iter_mm.apis.restore_files import load_restorer, plan_outputs, resolve_device, restore_file
    from iter_mm.errors import OutputExistsError
    from iter_mm.utils.image_files import list_images

    device = resolve_device(args.device)
    if device.type == 'cpu' and args.dtype in ('fp16', 'float16'):
        print('note: fp16 autocast on CPU is slow and lossy; bf16 or fp32 are preferred', file=sys.stderr)
    try:
        plan = plan_outputs(list_images(args.inputs), args.out_dir, args.ext, args.overwrite, args.skip_existing)
    except OutputExistsError as err:
        raise SystemExit(
            f'error: {err}; pass --overwrite to replace them or --skip-existing to restore only the missing ones'
        ) from None
    if plan.kept:
        print(f'{plan.kept} existing output(s) kept', file=sys.stderr)
        if not plan.todo:
            print(f'0/0 image(s) written to {args.out_dir}: every output exists')
            return 0
    model = load_restorer(args.config, args.checkpoint, device, args.stage1_checkpoint, args.unsafe_load)
    opts = restore_options(args)
    for msg in tiling_warnings(model.options(**opts), int(model.generator.lq_pad_multiple)):
        print(f'warning: {msg}', file=sys.stderr)
    log = not sys.stdout.isatty()  # redirected: one line per finished image (the bar is for terminals)
    from tqdm import tqdm

    progress = tqdm(
        total=len(plan.todo), unit='img', desc='ITER', file=sys.stderr, dynamic_ncols=True, disable=None
    )  # a bar on terminals only

    def say(msg: str) -> None:
        progress.write(msg, file=sys.stderr)

    failed = []
    for k, (path, out_path) in enumerate(plan.todo, 1):
        try:
            t0 = time.perf_counter()
            if args.seed == 'none':  # a seed drawn for each image, and said, so a result can be made again
                opts['seed'] = secrets.randbits(62)
                say(f'{path}: seed {opts["seed"]} (--seed {opts["seed"]} makes this result again)')
            res = restore_file(model, path, out_path, opts, args.frames, args.to_srgb, args.alpha_upscale, args.quality)
            for note in res.read_notes:
                say(f'{path}: {note}')
            for note in res.write_notes:
                say(f'{out_path}: {note}')
            if log:
                (w, h), (sw, sh) = res.in_size, res.out_size
                print(
                    f'[{k}/{len(plan.todo)}] {path}: {w}x{h} -> {sw}x{sh}, {time.perf_counter() - t0:.1f} s', flush=True
                )
        except (ValueError, RuntimeError, OSError) as err:  # ImageReadError is a ValueError
            failed.append(path)
            msg = str(err)
            say(f'error: {msg}' if msg.startswith(path) else f'error: {path}: {msg}')
        progress.update(1)
    progress.close()
    done = len(plan.todo) - len(failed)
    print(
        f'{done}/{len(plan.todo)} image(s) written to {args.out_dir}'
        + (f'; {len(failed)} failed: {failed[:5]}' if failed else '')
    )
    return 1 if failed else 0


#: this tool's option for each library argument a refusal may name
FLAGS = dict(
    checkpoint='-w/--checkpoint',
    stage1_checkpoint='--stage1-checkpoint',
    allow_pickle='--unsafe-load',
    frames='--frames',
)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from iter_mm.errors import ITERError, cli_message
    from iter_mm.utils.quiet import quiet_tool

    with quiet_tool(args.verbose):  # results and real problems only, as 'error: ...' (exit status 1)
        try:
            return run(args)
        except (ITERError, FileNotFoundError, RuntimeError, ValueError) as err:  # one line, exit status 1
            raise SystemExit(cli_message(err, FLAGS)) from None
        except SystemExit as stop:  # this tool's own refusals; exit codes (argparse's 2) pass unchanged
            if isinstance(stop.code, str) and not stop.code.startswith('error:'):
                raise SystemExit(f'error: {stop.code}') from None
            raise


if __name__ == '__main__':
    sys.exit(main())
