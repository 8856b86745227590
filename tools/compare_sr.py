#!/usr/bin/env python
"""Compare super-resolution models on one folder of images: metrics, seconds per image, peak memory, crops.

    python tools/compare_sr.py --input LQ_DIR [--gt GT_DIR] --out OUT_DIR \
        --model bicubic=bicubic \
        --model rrdb=real_esrgan/realesrgan_c64b23g32_4xb12-lr1e-4-400k_df2k-ost.py:ckpt.pth \
        --model iter=configs/iter/iter_x4_realsr.py:iter_x4.pth --iter-opts alpha=0.7 seed=0 \
        [--metrics niqe niqe_mmagic pi psnr ssim lpips] [--random-init] [--crop-images a.png b.png]

A model is NAME=CONFIG[:CHECKPOINT]. CONFIG is 'bicubic', a config file, a path inside MMagic's model zoo
(``mmagic/.mim/configs``) or a ``mmagic::<path>`` / ``iter_mm::<path>`` name. Without a checkpoint the model keeps
random weights, which needs ``--random-init`` (demos only); an ITER checkpoint may also be the authors' file (with
``vqgan.*``); a full training checkpoint needs ``--unsafe-load`` (trusted files only). ``--iter-opts`` are checked
against ``RestoreOptions`` before anything loads. User errors (a missing or foreign checkpoint, an empty folder)
are one ``error: ...`` line, exit status 1. Unreadable, empty or 1-pixel inputs are skipped with a warning (exit
status 0 if any image is left). Models are built through
MMEngine/MMagic from the config's ``model``, without training-only parts (``inference_model_cfg`` for ITER; the
discriminator and GAN/perceptual losses of MMagic models, whose VGG would need a download), and nothing may
download while they are built. ITER runs through ``model.restore``, every other model through its MMagic test
path (``model.test_step``). Outputs are rounded to 8 bit (as saved images) before the metrics.

Writes into OUT_DIR (which must be new or empty unless ``--overwrite``): ``results.csv`` (one row per model and
image), ``summary.md`` (mean of each metric, seconds per image, peak memory per model), ``crops/<image>.png``
(side-by-side crops: LQ, each model, GT) and, with ``--save-images``, ``images/<model>/<image>.png``.
Metric names are pyiqa's (``niqe``, ``pi``, ``lpips``, ``musiq``, ...) plus ``niqe_mmagic`` (MMagic's NIQE); a
suffix ``@Y`` / ``@gray`` scores that luma (docs/niqe.md). Weights of learned metrics come from local files only
(``--weight-file NAME=PATH``).
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys
from typing import Optional, Sequence

import torch

if __package__ in (None, ''):  # run as a script from anywhere
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from iter_mm.errors import InvalidOptionError, ITERError, OutputExistsError  # noqa: E402
from iter_mm.evaluation.sr_compare import parse_literal, parse_model, parse_restore_opts  # noqa: E402


def _model(text: str):
    try:
        return parse_model(text)
    except InvalidOptionError:
        raise argparse.ArgumentTypeError(f"--model expects NAME=CONFIG[:CHECKPOINT], got '{text}'") from None


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    p.add_argument('--input', required=True, help='folder of LQ images')
    p.add_argument('--gt', help='folder of GT images (same file stems); enables full-reference metrics')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--model', action='append', type=_model, required=True, metavar='NAME=CONFIG[:CKPT]')
    p.add_argument('--scale', type=int, default=4)
    p.add_argument(
        '--metrics',
        nargs='+',
        default=None,
        help="pyiqa names and/or 'niqe_mmagic'; '@Y' / '@gray' scores that luma "
        '(default: niqe niqe_mmagic@Y [+ psnr ssim with --gt])',
    )
    p.add_argument('--crop-border', type=int, default=0, help='pixels ignored on each side by the metrics')
    p.add_argument(
        '--weight-file',
        action='append',
        default=[],
        metavar='FILE=PATH',
        help='local file for a pretrained file a metric asks for (e.g. LPIPS_v0.1_alex-df73285e.pth)',
    )
    p.add_argument('--random-init', action='store_true', help='allow models without checkpoint (random weights)')
    p.add_argument(
        '--unsafe-load',
        action='store_true',
        help='allow pickled objects in the checkpoints (full MMEngine training checkpoints); only for files you trust',
    )
    p.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        metavar='NAME:KEY=VALUE',
        help='override a model config key, e.g. rrdb:model.generator.num_blocks=2',
    )
    p.add_argument(
        '--iter-opts',
        nargs='+',
        default=[],
        metavar='KEY=VALUE',
        help='overrides for model.restore (alpha, steps, seed, tile, ...)',
    )
    p.add_argument(
        '--max-input-size',
        type=int,
        default=0,
        help='centre-crop inputs to at most this many LQ pixels per side (0 = whole image)',
    )
    p.add_argument('--crop-images', nargs='*', default=None, help='images for side-by-side crops (default: first 2)')
    p.add_argument('--crop-size', type=int, default=128, help='side of the crops in output pixels')
    p.add_argument(
        '--crop-box',
        action='append',
        default=[],
        metavar='IMAGE:X,Y',
        help='top-left corner (output pixels) of the crop of IMAGE (default: centre)',
    )
    p.add_argument('--save-images', action='store_true')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--overwrite', action='store_true', help='replace earlier results in --out')
    p.add_argument('--verbose', action='store_true', help='also show library notes and warnings')
    args = p.parse_args(argv)
    names = [m.name for m in args.model]
    if len(set(names)) != len(names):
        p.error(f'model names must be unique, got {names}')
    for item in args.cfg_options:
        name, _, kv = item.partition(':')
        if name not in names or '=' not in kv:
            p.error(f"--cfg-options expects NAME:KEY=VALUE with NAME among {names}, got '{item}'")
        key, value = kv.split('=', 1)
        next(m for m in args.model if m.name == name).cfg_options[key] = parse_literal(value)
    try:  # the rules of RestoreOptions, checked before any model is built
        args.iter_opts = parse_restore_opts(args.iter_opts)
    except InvalidOptionError as err:
        p.error(f'--iter-opts: {err}')
    args.weight_files, args.crop_boxes = {}, {}
    for kv in args.weight_file:
        if '=' not in kv:
            p.error(f"--weight-file expects FILE=PATH, got '{kv}'")
        args.weight_files[kv.split('=', 1)[0]] = kv.split('=', 1)[1]
    for item in args.crop_box:
        img, _, xy = item.rpartition(':')
        try:
            args.crop_boxes[img] = tuple(int(v) for v in xy.split(','))[:2]
        except ValueError:
            p.error(f"--crop-box expects IMAGE:X,Y, got '{item}'")
    if args.metrics is None:
        args.metrics = ['niqe', 'niqe_mmagic@Y'] + (['psnr', 'ssim'] if args.gt else [])
    if args.scale < 1 or args.crop_size < 8:
        p.error('--scale must be >= 1 and --crop-size >= 8')
    return args


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from iter_mm.apis.mmagic_models import build_sr_function
    from iter_mm.evaluation.sr_compare import SRComparison, build_metrics

    try:
        comparison = SRComparison(
            args.input,
            args.out,
            args.scale,
            args.gt,
            args.overwrite,
            args.max_input_size,
            args.crop_images,
            args.crop_size,
            args.crop_boxes,
            args.save_images,
        )
    except OutputExistsError as err:
        raise SystemExit(f'error: {err}; pass --overwrite or choose another --out') from None
    for spec in args.model:  # before the metrics and models load (seconds)
        if spec.checkpoint is None and not args.random_init and spec.config != 'bicubic':
            raise SystemExit(
                f"error: model '{spec.name}' has no checkpoint: give NAME=CONFIG:CHECKPOINT, or "
                '--random-init to run it with random weights (a demo, not a result)'
            )
    metrics = build_metrics(args.metrics, args.crop_border, args.weight_files, bool(args.gt))
    models = {}
    for spec in args.model:
        models[spec.name] = build_sr_function(
            spec.name,
            spec.config,
            spec.checkpoint,
            args.scale,
            args.device,
            args.random_init,
            args.iter_opts,
            spec.cfg_options,
            args.unsafe_load,
        )
    bar = tqdm(
        total=len(comparison.files) * len(models), desc='compare_sr', unit='img', file=sys.stderr, disable=None
    )  # a bar on terminals only
    note = '; models without checkpoint have RANDOM weights' if args.random_init else ''
    summary = comparison.run(models, metrics, args.device, note, progress=lambda: bar.update(1))
    bar.close()
    print(summary)
    return 0


#: this tool's option for each library argument a refusal may name
FLAGS = dict(
    gt='--gt',
    metrics='--metrics',
    allow_pickle='--unsafe-load',
    random_weights='--random-init',
    checkpoint='--model NAME=CONFIG:CKPT',
    cfg_options='--cfg-options',
)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from iter_mm.errors import cli_message
    from iter_mm.utils.quiet import quiet_tool

    with quiet_tool(args.verbose):  # results and real problems only, as 'error: ...' (exit status 1)
        try:
            return run(args)
        except (ITERError, FileNotFoundError, ValueError) as err:  # one line, exit status 1 (MissingWeightsError too)
            raise SystemExit(cli_message(err, FLAGS)) from None
        except SystemExit as stop:  # this tool's own refusals; exit codes (argparse's 2) pass unchanged
            if isinstance(stop.code, str) and not stop.code.startswith('error:'):
                raise SystemExit(f'error: {stop.code}') from None
            raise


if __name__ == '__main__':
    sys.exit(main())
