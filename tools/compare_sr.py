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
import ast
import csv
import os
import os.path as osp
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

if __package__ in (None, ''):  # run as a script from anywhere
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from iter_mm.evaluation.sr_compare import (PeakMemory, build_metrics, match_gt, score, side_by_side,  # noqa: E402
                                          to_uint8, write_summary)

IMG_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
OUT_FILES = ('results.csv', 'summary.md', 'crops', 'images')


# ------------------------------------------------------------------------------------------------ arguments
@dataclass
class ModelSpec:
    name: str
    config: str
    checkpoint: Optional[str] = None
    cfg_options: Dict[str, object] = field(default_factory=dict)


def parse_model(text: str) -> ModelSpec:
    """'NAME=CONFIG[:CHECKPOINT]' -> ModelSpec ('none' as checkpoint = random weights).

    CONFIG may carry a scope prefix (``mmagic::x.py``, ``iter::x.py``), whose '::' is not a separator; the
    checkpoint starts after the first ':' that follows the config's '.py' (else after the first ':'), so a
    checkpoint path may itself contain ':'.
    """
    if '=' not in text:
        raise argparse.ArgumentTypeError(f"--model expects NAME=CONFIG[:CHECKPOINT], got '{text}'")
    name, rest = text.split('=', 1)
    scope, body = re.match(r'([A-Za-z_]\w*::)?(.*)$', rest, re.S).groups()
    cut = body.find('.py:')
    config, ckpt = (body[:cut + 3], body[cut + 4:]) if cut >= 0 else body.partition(':')[::2]
    config = (scope or '') + config
    if not name or not config or config.endswith('::'):
        raise argparse.ArgumentTypeError(f"--model expects NAME=CONFIG[:CHECKPOINT], got '{text}'")
    return ModelSpec(name, config, None if ckpt in (None, '', 'none') else ckpt)


def _literal(value: str):
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('--input', required=True, help='folder of LQ images')
    p.add_argument('--gt', help='folder of GT images (same file stems); enables full-reference metrics')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--model', action='append', type=parse_model, required=True, metavar='NAME=CONFIG[:CKPT]')
    p.add_argument('--scale', type=int, default=4)
    p.add_argument('--metrics', nargs='+', default=None,
                   help="pyiqa names and/or 'niqe_mmagic'; '@Y' / '@gray' scores that luma "
                        '(default: niqe niqe_mmagic@Y [+ psnr ssim with --gt])')
    p.add_argument('--crop-border', type=int, default=0, help='pixels ignored on each side by the metrics')
    p.add_argument('--weight-file', action='append', default=[], metavar='FILE=PATH',
                   help='local file for a pretrained file a metric asks for (e.g. LPIPS_v0.1_alex-df73285e.pth)')
    p.add_argument('--random-init', action='store_true', help='allow models without checkpoint (random weights)')
    p.add_argument('--unsafe-load', action='store_true',
                   help='allow pickled objects in the checkpoints (full MMEngine training checkpoints); '
                        'only for files you trust')
    p.add_argument('--cfg-options', nargs='+', default=[], metavar='NAME:KEY=VALUE',
                   help='override a model config key, e.g. rrdb:model.generator.num_blocks=2')
    p.add_argument('--iter-opts', nargs='+', default=[], metavar='KEY=VALUE',
                   help='overrides for model.restore (alpha, steps, seed, tile, ...)')
    p.add_argument('--max-input-size', type=int, default=0,
                   help='centre-crop inputs to at most this many LQ pixels per side (0 = whole image)')
    p.add_argument('--crop-images', nargs='*', default=None, help='images for side-by-side crops (default: first 2)')
    p.add_argument('--crop-size', type=int, default=128, help='side of the crops in output pixels')
    p.add_argument('--crop-box', action='append', default=[], metavar='IMAGE:X,Y',
                   help='top-left corner (output pixels) of the crop of IMAGE (default: centre)')
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
        next(m for m in args.model if m.name == name).cfg_options[key] = _literal(value)
    opts = {}
    for kv in args.iter_opts:
        if '=' not in kv:
            p.error(f"--iter-opts expects KEY=VALUE, got '{kv}'")
        opts[kv.split('=', 1)[0]] = _literal(kv.split('=', 1)[1])
    try:  # the rules of RestoreOptions, checked before any model is built
        from iter_mm.models.options import RestoreOptions
        RestoreOptions.check_names(opts, '--iter-opts')
        RestoreOptions(**opts)
    except (TypeError, ValueError) as err:
        p.error(str(err) if str(err).startswith('--iter-opts') else f'--iter-opts: {err}')
    args.iter_opts = opts
    args.weight_files = {}
    for kv in args.weight_file:
        if '=' not in kv:
            p.error(f"--weight-file expects FILE=PATH, got '{kv}'")
        args.weight_files[kv.split('=', 1)[0]] = kv.split('=', 1)[1]
    if args.metrics is None:
        args.metrics = ['niqe', 'niqe_mmagic@Y'] + (['psnr', 'ssim'] if args.gt else [])
    if args.scale < 1 or args.crop_size < 8:
        p.error('--scale must be >= 1 and --crop-size >= 8')
    return args


# ------------------------------------------------------------------------------------------------ images
def read_image(path: str) -> Tensor:
    """Any image file -> (3, H, W) float RGB in [0, 1], upright, first frame, alpha ignored
    (``iter_mm.utils.image_io``: grey replicated, 16 bit scaled, palette and CMYK converted)."""
    from iter_mm.utils.image_io import read_image as read_rgb
    img, _ = read_rgb(path)
    if min(img.shape[:2]) < 2:
        raise ValueError(f'{path}: image of {img.shape[1]}x{img.shape[0]} pixels is too small to upscale')
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def center_crop(img: Tensor, size: int, scale: int = 1, like: Optional[Tensor] = None) -> Tensor:
    """Centre crop to at most ``size`` px a side; with ``like`` (the LQ), the region ``scale`` x the LQ's crop,
    so that LQ and GT crops stay aligned."""
    h, w = (like if like is not None else img).shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return img[..., top * scale:(top + size) * scale, left * scale:(left + size) * scale]


def list_images(folder: str) -> List[str]:
    if not osp.isdir(folder):
        raise FileNotFoundError(f'input folder {folder} does not exist')
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMG_EXTS))
    if not files:
        raise FileNotFoundError(f'no images ({", ".join(IMG_EXTS)}) in {folder}')
    return files


# ------------------------------------------------------------------------------------------------ models
def resolve_config(path: str) -> str:
    """A config file, ``mmagic::<path>``, or a path relative to MMagic's model-zoo configs."""
    if osp.isfile(path) or '::' in path:
        return path
    from iter_mm.utils.config_paths import resolve_config_path
    try:
        return resolve_config_path(path)  # configs/... of an installed iter-mm, from any folder
    except FileNotFoundError:
        pass
    import mmagic
    zoo_root = osp.join(osp.dirname(mmagic.__file__), '.mim', 'configs')
    if osp.isfile(osp.join(zoo_root, path)):
        return osp.join(zoo_root, path)
    raise FileNotFoundError(f"config '{path}' is neither a file nor a config of MMagic's model zoo (looked in "
                            f'{zoo_root})')


def build_model(spec: ModelSpec, scale: int, device: str, random_init: bool,
                restore_opts: Dict[str, object], unsafe_load: bool = False) -> Callable[[Tensor], Tensor]:
    """A callable (1, 3, h, w) LQ in [0, 1] -> (1, 3, h*s, w*s) in [0, 1] on ``device``.

    Models load through the one loader (``iter_mm.apis.init_model``: strict, the same errors as the other front
    ends; ``unsafe_load``: its ``allow_pickle``, for trusted full training checkpoints); nothing may download
    while they are built.
    """
    if spec.config == 'bicubic':
        if spec.checkpoint:
            raise ValueError(f"model '{spec.name}': bicubic takes no checkpoint")
        return lambda lq: F.interpolate(lq, scale_factor=scale, mode='bicubic', align_corners=False).clamp(0, 1)
    from iter_mm.apis.model_loader import init_model
    from iter_mm.errors import ITERError
    from iter_mm.evaluation.metrics.pyiqa_metric import offline_weights
    from iter_mm.utils.quiet import quiet_mmengine
    from mmagic.structures import DataSample

    if spec.checkpoint is None and not random_init:
        raise ValueError(f"model '{spec.name}' has no checkpoint: give NAME=CONFIG:CHECKPOINT, or --random-init "
                         'to run it with random weights (a demo, not a result)')
    with offline_weights(f"model '{spec.name}'"):  # nothing may download
        try:
            model = init_model(resolve_config(spec.config), spec.checkpoint, device=device,
                               cfg_options=spec.cfg_options or None, random_weights=random_init,
                               allow_pickle=unsafe_load)
        except ITERError as err:  # the same refusal, naming the model (and the arguments for our flags)
            raise type(err)(f"model '{spec.name}': {err}", arguments=err.arguments) from None
        except ValueError as err:
            raise ValueError(f"model '{spec.name}': {err}") from None
    scale_of = getattr(getattr(model, 'generator', None), 'scale', scale)
    if int(scale_of) != scale:
        raise ValueError(f"model '{spec.name}' upscales x{scale_of}, --scale is {scale}")

    if hasattr(model, 'restore'):  # ITER: the documented inference API
        def restore(lq: Tensor) -> Tensor:
            return model.restore(lq, **restore_opts)
        restore.model = model
        return restore

    def run(lq: Tensor) -> Tensor:  # MMagic's test path: preprocessor -> forward(predict) -> destruct
        data = dict(inputs=[lq[0] * 255.], data_samples=[DataSample(metainfo=dict(img_channel_order='rgb'))])
        with quiet_mmengine():
            out = model.test_step(data)[0].output.pred_img
        out = out.data if hasattr(out, 'data') else out
        # MMagic's preprocessor destructs predictions to BGR when it knows the input order (given above as RGB)
        return (torch.as_tensor(out).float().flip(0)[None] / 255.).clamp(0, 1)

    run.model = model
    return run


# ------------------------------------------------------------------------------------------------ metrics
# ------------------------------------------------------------------------------------------------ main
def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if osp.isdir(args.out) and any(osp.exists(osp.join(args.out, f)) for f in OUT_FILES) and not args.overwrite:
        raise SystemExit(f'{args.out} already holds results ({", ".join(OUT_FILES)}); pass --overwrite or '
                         'choose another --out')
    if args.gt and not osp.isdir(args.gt):
        raise SystemExit(f'GT folder {args.gt} does not exist')
    try:
        files = list_images(args.input)
        gt_files = {osp.splitext(f)[0]: f for f in list_images(args.gt)} if args.gt else {}
    except FileNotFoundError as err:
        raise SystemExit(f'error: {err}') from err
    for c in args.crop_images or []:
        if c not in files:
            raise SystemExit(f"--crop-images: '{c}' is not in {args.input}")
    boxes = {}
    for item in args.crop_box:
        img, _, xy = item.rpartition(':')
        try:
            boxes[img] = tuple(int(v) for v in xy.split(','))[:2]
        except ValueError:
            raise SystemExit(f"--crop-box expects IMAGE:X,Y, got '{item}'")

    metrics = build_metrics(args.metrics, args.crop_border, args.weight_files, bool(args.gt))
    from iter_mm.errors import cli_message
    from iter_mm.evaluation.metrics.pyiqa_metric import MissingWeightsError
    models = {}
    for spec in args.model:
        try:  # user errors (a missing or foreign checkpoint, no checkpoint, a missing config): one line
            models[spec.name] = build_model(spec, args.scale, args.device, args.random_init, args.iter_opts,
                                            args.unsafe_load)
        except (FileNotFoundError, ValueError, MissingWeightsError) as err:  # CheckpointMismatchError: ValueError
            raise SystemExit(cli_message(err, FLAGS)) from err
    os.makedirs(osp.join(args.out, 'crops'), exist_ok=True)

    rows: List[dict] = []
    images = []
    for f in files:
        try:
            lq = read_image(osp.join(args.input, f))
        except ValueError as err:
            warnings.warn(f'skipping {f}: {err}')
            continue
        full_lq = lq
        if args.max_input_size:
            lq = center_crop(lq, args.max_input_size)
        gt = None
        stem = osp.splitext(f)[0]
        if args.gt:
            if stem not in gt_files:
                warnings.warn(f'no GT for {f} in {args.gt}; full-reference metrics are NaN for it')
            else:
                gt = read_image(osp.join(args.gt, gt_files[stem]))
                if args.max_input_size:
                    gt = center_crop(gt, args.max_input_size, args.scale, like=full_lq)
        images.append((f, lq, gt))
    if not images:
        raise SystemExit('no readable image')
    crop_images = [f for f, _, _ in images][:2] if args.crop_images is None else args.crop_images
    crops: Dict[str, List[Tuple[str, Tensor]]] = {c: [] for c in crop_images}

    with torch.no_grad():
        bar = tqdm(total=len(images) * len(models), desc='compare_sr', unit='img', file=sys.stderr,
                   disable=None)  # a bar on terminals only
        for mname, run in models.items():
            probe = center_crop(images[0][1], 32)[None].to(args.device)
            out = run(probe)  # warm-up (allocator, kernels) and scale check
            if tuple(out.shape[-2:]) != (probe.shape[-2] * args.scale, probe.shape[-1] * args.scale):
                raise SystemExit(f"model '{mname}' turned {tuple(probe.shape[-2:])} into {tuple(out.shape[-2:])}, "
                                 f'not x{args.scale}')
            for f, lq, gt in images:
                x = lq[None].to(args.device)
                with PeakMemory(args.device) as mem:
                    t0 = time.perf_counter()
                    sr = run(x)
                    if x.is_cuda:
                        torch.cuda.synchronize()
                    seconds = time.perf_counter() - t0
                sr = ((sr[0].float().cpu().clamp(0, 1) * 255.).round() / 255.)  # as a saved 8-bit image
                row = {'model': mname, 'image': f, 'seconds': seconds, 'peak_mib': mem.peak_mib,
                       'width': sr.shape[-1], 'height': sr.shape[-2]}
                sr_m, gt_m = (match_gt(sr, gt, args.scale, f) if gt is not None else (sr, None))
                for k, metric in metrics.items():
                    full_ref = metric.full_ref
                    row[k] = score(metric, sr_m, gt_m) if (gt_m is not None or not full_ref) else float('nan')
                rows.append(row)
                if args.save_images:
                    from iter_mm.utils.image_io import write_image
                    write_image(osp.join(args.out, 'images', mname, osp.splitext(f)[0] + '.png'),
                                sr.permute(1, 2, 0).numpy())
                if f in crops:
                    crops[f].append((mname, sr))
                bar.update(1)
        bar.close()

    import cv2
    for f, lq, gt in images:
        if f not in crops or not crops[f]:
            continue
        h, w = crops[f][0][1].shape[-2:]
        size = min(args.crop_size, h, w)
        x0, y0 = boxes.get(f, ((w - size) // 2, (h - size) // 2))
        x0, y0 = min(max(0, x0), w - size), min(max(0, y0), h - size)
        up = F.interpolate(lq[None], size=(lq.shape[-2] * args.scale, lq.shape[-1] * args.scale), mode='nearest')[0]
        panels = [('LQ', up)] + crops[f] + ([('GT', gt)] if gt is not None else [])
        tiles = [(label, to_uint8(img[:, y0:y0 + size, x0:x0 + size])) for label, img in panels
                 if img.shape[-2] >= y0 + size and img.shape[-1] >= x0 + size]
        cv2.imwrite(osp.join(args.out, 'crops', osp.splitext(f)[0] + '.png'), side_by_side(tiles))

    cols = ['model', 'image', 'width', 'height'] + list(metrics) + ['seconds', 'peak_mib']
    with open(osp.join(args.out, 'results.csv'), 'w', newline='') as fh:
        writer = csv.DictWriter(fh, fieldnames=cols)
        writer.writeheader()
        writer.writerows(rows)
    meta = (f'{len(images)} images from `{args.input}`' + (f', GT `{args.gt}`' if args.gt else '') +
            f', x{args.scale}, device {args.device}, {torch.get_num_threads()} threads' +
            (f', inputs centre-cropped to {args.max_input_size} px' if args.max_input_size else '') +
            ('; models without checkpoint have RANDOM weights' if args.random_init else '') + '.')
    write_summary(osp.join(args.out, 'summary.md'), rows, list(models), list(metrics), meta)
    print(open(osp.join(args.out, 'summary.md')).read())
    return 0


#: this tool's option for each library argument a refusal may name
FLAGS = dict(gt='--gt', metrics='--metrics', allow_pickle='--unsafe-load', random_weights='--random-init',
             checkpoint='--model NAME=CONFIG:CKPT', cfg_options='--cfg-options')


def main(argv: Optional[Sequence[str]] = None) -> int:
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
