#!/usr/bin/env python
"""Super-resolve image files with an ITER model (adaptive refinement, reference section 6).

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
without --overwrite: the run stops before writing anything, or with --skip-existing restores only the missing ones. The checkpoint is an iter-mm one (MMEngine ``state_dict`` or an ITERNet state dict) or
the authors' ITER_x{2,4}.pth (with --vqgan ITER_swinvqgan.pth when it lacks the VQGAN); it is loaded strictly.
Sampling options not given fall back to the config's ``model.test_cfg``.
"""
from __future__ import annotations

import argparse
import os.path as osp
import secrets
import sys
import time
from collections import Counter
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
    p = argparse.ArgumentParser(description='Super-resolve images with ITER',
                                formatter_class=_DefaultsHelp)
    p.add_argument('inputs', nargs='+', help='image files and/or folders of images')
    p.add_argument('-c', '--config', required=True, help='model config (e.g. configs/iter/iter_x4_realsr.py)')
    p.add_argument('-w', '--checkpoint', required=True, help='iter-mm or official ITER checkpoint')
    p.add_argument('-o', '--out-dir', required=True, help='output folder (created if missing)')
    p.add_argument('--stage1-checkpoint', '--vqgan', dest='vqgan', metavar='CKPT', help='official ITER_swinvqgan.pth, '
                   'for official ITER checkpoints without vqgan.* (--vqgan: its deprecated name)')
    p.add_argument('--unsafe-load', action='store_true',
                   help='allow pickled objects in the checkpoint (full MMEngine training checkpoints); '
                        'only for files you trust')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--ext', choices=('png', 'jpg', 'webp', 'same'), default='same',
                   help="output format ('same': the input's)")
    p.add_argument('--quality', type=int, help='JPEG/WebP quality 1-100 (default 95; WebP 100 = lossless)')
    p.add_argument('--alpha-upscale', choices=('bicubic', 'iter'), default='bicubic',
                   help='how the alpha channel is upscaled: bicubic, or ITER on the alpha as three channels')
    p.add_argument('--frames', choices=('first', 'all'), default='first',
                   help='animated / multi-page inputs: the first frame (with a warning) or every frame')
    p.add_argument('--to-srgb', action='store_true',
                   help='convert pixels from an embedded ICC profile to sRGB on read; outputs tagged sRGB')
    keep = p.add_mutually_exclusive_group()
    keep.add_argument('--overwrite', action='store_true', help='replace existing output files')
    keep.add_argument('--skip-existing', action='store_true',
                      help='keep existing outputs and restore only the missing ones (new photos, an interrupted run)')
    p.add_argument('--verbose', action='store_true', help='also show library notes and warnings')
    add_restore_arguments(p, exclude=('seed',))
    p.add_argument('--seed', type=_seed, help="sampling seed, the same for every image; 'none': a seed drawn for "
                                              'each image (default: the config\'s test_cfg, else 0)')
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
    """Warnings for tiling options that ``restore_image`` adjusts silently or that make a run very slow.

    Its rule (``iter_mm/models/inference.py``): tiles lie on the network's grid of ``multiple`` LQ pixels (the
    tile rounded down, at least one cell), the overlap is rounded up to that grid and capped at tile - multiple,
    and at most ``max_pixels`` LQ pixels go into one network call. Each call runs every refinement step on its
    tiles, and each tile sees nothing beyond its own border, so tiles of fewer than MIN_TILE_CELLS cells a side
    cost many calls (re-running the overlaps) for little context.
    """
    from iter_mm.utils.tiling import auto_tile_size, tile_starts
    if opts.tile is not None:
        asked, tile = f'--tile {opts.tile}', max(multiple, opts.tile // multiple * multiple)
    elif opts.max_pixels is not None:
        asked, tile = f'--max-pixels {opts.max_pixels}', auto_tile_size(opts.max_pixels, multiple)
    else:
        return []
    out = []
    overlap = min(-(-opts.tile_overlap // multiple) * multiple, tile - multiple)
    if overlap < opts.tile_overlap:
        out.append(f'--tile-overlap {opts.tile_overlap} is capped to {overlap}: tiles are {tile} LQ px ({asked}, '
                   f"on the network's {multiple}-px grid) and must advance by at least {multiple} px")
    if tile < MIN_TILE_CELLS * multiple:
        side = -(-1000 // multiple) * multiple  # a 1000x1000 LQ photo, padded to the grid
        tiles = len(tile_starts(side, tile, overlap)) ** 2
        per_call = 1 if opts.max_pixels is None else max(1, opts.max_pixels // tile ** 2)
        out.append(f'tiles of {tile} LQ px ({asked}) are smaller than {MIN_TILE_CELLS} x the network\'s '
                   f'{multiple}-px grid: each tile sees only {tile // multiple}x{tile // multiple} token window(s) '
                   f'of context, and a 1000x1000 LQ photo takes {tiles} tiles in {-(-tiles // per_call)} network '
                   f'call(s) of {opts.steps} steps; use --tile >= {MIN_TILE_CELLS * multiple} (and --max-pixels >= '
                   f'{(MIN_TILE_CELLS * multiple) ** 2}) unless this is intended')
    return out


def build_model(config: str, checkpoint: str, device: torch.device, vqgan: Optional[str] = None,
                unsafe_load: bool = False):
    """The model of ``config`` with ``checkpoint`` loaded strictly (``iter_mm.apis.init_model``)."""
    from iter_mm.apis.model_loader import init_model
    model = init_model(config, checkpoint, device=device, vqgan=vqgan, allow_pickle=unsafe_load)
    if not callable(getattr(model, 'restore', None)):
        raise SystemExit(f'{config}: model {type(model).__name__} has no restore(); use an ITER config')
    return model


def run(args: argparse.Namespace) -> int:
    from iter_mm.utils.image_io import ImageReadError, list_images, read_picture, write_picture
    from iter_mm.utils.photo_sr import output_name, super_resolve_picture

    try:
        device = torch.device(args.device)
    except RuntimeError as err:
        raise SystemExit(f'--device {args.device!r}: {err}') from err
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: CUDA is not available; use --device cpu')
    if device.type == 'cpu' and args.dtype in ('fp16', 'float16'):
        print('note: fp16 autocast on CPU is slow and lossy; bf16 or fp32 are preferred', file=sys.stderr)
    try:
        paths = list_images(args.inputs)
    except FileNotFoundError as err:
        raise SystemExit(str(err)) from err
    names = Counter(output_name(p, args.ext) for p in paths)
    dups = sorted(n for n, c in names.items() if c > 1)
    if dups:
        raise SystemExit(f'several inputs share the output name(s) {dups[:5]}; run them into separate folders')
    outputs = [osp.join(args.out_dir, output_name(p, args.ext)) for p in paths]
    same = [p for p, o in zip(paths, outputs) if osp.abspath(p) == osp.abspath(o)]
    if same:
        raise SystemExit(f'output would replace its own input: {same[:3]}; choose another --out-dir')
    existing = [o for o in outputs if osp.exists(o)]
    if existing and args.skip_existing:
        print(f'{len(existing)} existing output(s) kept', file=sys.stderr)
        todo = [(p, o) for p, o in zip(paths, outputs) if not osp.exists(o)]
        paths, outputs = [p for p, _ in todo], [o for _, o in todo]
        if not paths:
            print(f'0/0 image(s) written to {args.out_dir}: every output exists')
            return 0
    elif existing and not args.overwrite:
        raise SystemExit(f'{len(existing)} output file(s) exist, e.g. {existing[:3]}; pass --overwrite to replace '
                         'them or --skip-existing to restore only the missing ones')

    try:
        model = build_model(args.config, args.checkpoint, device, args.vqgan, args.unsafe_load)
    except (FileNotFoundError, RuntimeError, ValueError) as err:
        from iter_mm.errors import cli_message
        raise SystemExit(cli_message(err, FLAGS)) from err
    opts = restore_options(args)
    for msg in tiling_warnings(model.options(**opts), int(model.generator.lq_pad_multiple)):
        print(f'warning: {msg}', file=sys.stderr)
    log = not sys.stdout.isatty()  # redirected: one line per finished image (the bar is for terminals)
    try:
        from tqdm import tqdm
        progress = tqdm(total=len(paths), unit='img', desc='ITER', file=sys.stderr, dynamic_ncols=True,
                        disable=None)  # a bar on terminals only
    except ImportError:  # pragma: no cover - tqdm ships with the environment
        progress = None
    say = ((lambda msg: progress.write(msg, file=sys.stderr)) if progress is not None
           else (lambda msg: print(msg, file=sys.stderr)))

    drawn = args.seed == 'none'  # a seed drawn for each image, and said, so a result can be made again
    image_opts = dict(opts)

    def restore(lq: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model.restore(lq.to(device), **image_opts).float()

    failed = []
    for k, (path, out_path) in enumerate(zip(paths, outputs), 1):
        try:
            t0 = time.perf_counter()
            if drawn:
                image_opts['seed'] = secrets.randbits(62)
                say(f'{path}: seed {image_opts["seed"]} (--seed {image_opts["seed"]} makes this result again)')
            pic = read_picture(path, frames=args.frames, to_srgb=args.to_srgb)
            for note in pic.info.notes:
                say(f'{path}: {note}')
            sr = super_resolve_picture(pic, restore, args.alpha_upscale)
            for note in write_picture(out_path, sr, args.quality)[1]:
                say(f'{out_path}: {note}')
            if log:
                (h, w), (sh, sw) = pic.frames[0].shape[:2], sr.frames[0].shape[:2]
                print(f'[{k}/{len(paths)}] {path}: {w}x{h} -> {sw}x{sh}, {time.perf_counter() - t0:.1f} s',
                      flush=True)
        except (ImageReadError, ValueError, RuntimeError, OSError) as err:
            failed.append(path)
            msg = str(err)
            say(f'error: {msg}' if msg.startswith(path) else f'error: {path}: {msg}')
        if progress is not None:
            progress.update(1)
    if progress is not None:
        progress.close()
    done = len(paths) - len(failed)
    print(f'{done}/{len(paths)} image(s) written to {args.out_dir}'
          + (f'; {len(failed)} failed: {failed[:5]}' if failed else ''))
    return 1 if failed else 0


#: this tool's option for each library argument a refusal may name
FLAGS = dict(checkpoint='-w/--checkpoint', vqgan='--vqgan', allow_pickle='--unsafe-load', frames='--frames')


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from iter_mm.errors import ITERError, cli_message
    from iter_mm.utils.quiet import quiet_tool
    with quiet_tool(args.verbose):  # results and real problems only, as 'error: ...' (exit status 1)
        try:
            return run(args)
        except ITERError as err:
            raise SystemExit(cli_message(err, FLAGS)) from None
        except SystemExit as stop:  # this tool's own refusals; exit codes (argparse's 2) pass unchanged
            if isinstance(stop.code, str) and not stop.code.startswith('error:'):
                raise SystemExit(f'error: {stop.code}') from None
            raise


if __name__ == '__main__':
    sys.exit(main())
