"""Pre-generate a paired GT/LQ dataset from a folder of HQ images.

    python tools/generate_lq.py HQ_DIR OUT_DIR [--degradation realesrgan|bsrgan] [--scale 4]
                                [--seed 0] [--workers N] [--overwrite] [--config DATASET_CFG]

Writes OUT_DIR/gt/NAME.png (HQ mod-cropped to a multiple of the scale) and OUT_DIR/lq/NAME.png
(its degradation, exactly GT / scale), the layout configs/_base_/datasets/paired_folder.py reads.
The degradation is the `<degradation>_degradations` list of configs/_base_/datasets/
<degradation>_x<scale>.py (bsrgan: bsrgan_x4.py with its scale set). Each image is seeded from
(seed, file name), so the output does not depend on --workers. Existing files are left untouched
unless --overwrite.
"""
import argparse
import multiprocessing as mp
import os
import os.path as osp
import sys
import time
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm', '.tif', '.tiff', '.webp', '.gif')
CONFIGS = {
    ('realesrgan', 4): 'realesrgan_x4.py',
    ('realesrgan', 2): 'realesrgan_x2.py',
    ('bsrgan', 4): 'bsrgan_x4.py',
    ('bsrgan', 2): 'bsrgan_x4.py',  # BSRGANDegradation's scale is set to 2
}

_pipeline = None  # per process: the SeededDegradations transform


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('hq_dir', help='folder of HQ images (not recursive)')
    parser.add_argument('out_dir', help='output folder; gets gt/ and lq/')
    parser.add_argument('--degradation', choices=['realesrgan', 'bsrgan'], default='realesrgan')
    parser.add_argument('--scale', type=int, default=4, choices=[2, 4])
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--workers', type=int, default=max(1, (os.cpu_count() or 1) - 1),
                        help='worker processes (0 or 1: run in this process)')
    parser.add_argument('--overwrite', action='store_true', help='replace existing output files')
    parser.add_argument('--config', help='dataset config holding `<degradation>_degradations` '
                        '(default: configs/_base_/datasets/<degradation>_x<scale>.py)')
    return parser.parse_args(argv)


def build_degradations(degradation: str, scale: int, config: Optional[str] = None) -> list:
    """Transform configs of the chosen pipeline, with the scale applied."""
    from mmengine.config import Config
    path = config or osp.join(REPO, 'configs', '_base_', 'datasets', CONFIGS[(degradation, scale)])
    if not osp.isfile(path):
        raise FileNotFoundError(f'dataset config not found: {path}')
    var = f'{degradation}_degradations'
    cfg = Config.fromfile(path)
    if var not in cfg:
        raise KeyError(f'{path} defines no `{var}`')
    transforms = [t.to_dict() if hasattr(t, 'to_dict') else dict(t) for t in cfg[var]]
    for t in transforms:
        if t['type'] == 'BSRGANDegradation':
            t['scale'] = scale
    if degradation == 'realesrgan' and cfg.get('scale') != scale:
        raise ValueError(f'{path} is for scale {cfg.get("scale")}, not {scale}')
    return transforms


def _init_worker(transform_cfgs: list, seed: int) -> None:
    global _pipeline
    cv2.setNumThreads(1)
    import iter_mm  # noqa: F401  (registers the transforms)
    from mmengine.registry import init_default_scope

    from mmagic.registry import TRANSFORMS
    init_default_scope('mmagic')
    _pipeline = TRANSFORMS.build(dict(type='SeededDegradations', transforms=transform_cfgs, seed=seed))


def read_rgb(path: str) -> np.ndarray:
    """8-bit RGB (H, W, 3), upright (EXIF orientation applied); grey, palette, CMYK, RGBA and 16-bit files are
    converted (``iter_mm.utils.image_io``: the first frame, alpha ignored); clear error if unreadable."""
    from iter_mm.utils.image_io import ImageReadError, read_image
    try:
        rgb, _ = read_image(path)
    except ImageReadError as err:
        raise ValueError(f'cannot decode image (corrupt or unsupported): {err}') from None
    return np.round(rgb * 255.0).astype(np.uint8)


def write_png(path: str, rgb: np.ndarray) -> None:
    """Write 8-bit RGB as PNG atomically (``iter_mm.utils.image_io``: temporary file + rename), so an interrupted
    run leaves no partial file."""
    from iter_mm.utils.image_io import write_image
    write_image(path, rgb.astype(np.float32) / 255.0)


def degrade_one(gt: np.ndarray, name: str, transforms, scale: int) -> Tuple[np.ndarray, np.ndarray]:
    """(mod-cropped GT, LQ) as uint8 RGB for one image; ``transforms`` is a ``SeededDegradations``."""
    h, w = gt.shape[0] - gt.shape[0] % scale, gt.shape[1] - gt.shape[1] % scale
    if h == 0 or w == 0:
        raise ValueError(f'{name}: image {gt.shape[1]}x{gt.shape[0]} is smaller than the scale {scale}')
    gt = np.ascontiguousarray(gt[:h, :w])
    results = transforms(dict(gt=gt, gt_path=name, scale=scale))
    lq = np.clip(np.round(np.asarray(results['img'], dtype=np.float64)), 0, 255).astype(np.uint8)
    if lq.shape[:2] != (h // scale, w // scale):
        raise RuntimeError(f'{name}: LQ {lq.shape[:2]} is not GT {gt.shape[:2]} / {scale}')
    return gt, lq.reshape(h // scale, w // scale, -1)


def _process(job: Tuple[str, str, str, int, bool]) -> Tuple[str, str]:
    """Worker: returns (name, 'written' | 'skipped' | 'error: ...')."""
    src, gt_path, lq_path, scale, overwrite = job
    name = osp.basename(src)
    todo = [p for p in (gt_path, lq_path) if overwrite or not osp.exists(p)]
    if not todo:
        return name, 'skipped'
    try:
        gt, lq = degrade_one(read_rgb(src), name, _pipeline, scale)
        for path, img in ((gt_path, gt), (lq_path, lq)):
            if path in todo:
                write_png(path, img)
    except Exception as e:  # report per file, keep going
        return name, f'error: {type(e).__name__}: {e}'
    return name, 'written' if len(todo) == 2 else 'completed'


def list_images(hq_dir: str) -> List[str]:
    if not osp.isdir(hq_dir):
        raise FileNotFoundError(f'HQ directory not found: {hq_dir}')
    files = sorted(f for f in os.listdir(hq_dir)
                   if f.lower().endswith(IMG_EXTENSIONS) and osp.isfile(osp.join(hq_dir, f)))
    if not files:
        raise FileNotFoundError(f'no images ({", ".join(IMG_EXTENSIONS)}) in {hq_dir}')
    stems: Dict[str, str] = {}
    for f in files:
        stem = osp.splitext(f)[0]
        if stem in stems:
            raise ValueError(f'{stems[stem]} and {f} would both be written as {stem}.png')
        stems[stem] = f
    return files


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        files = list_images(args.hq_dir)
        transforms = build_degradations(args.degradation, args.scale, args.config)
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f'generate_lq.py: error: {e}', file=sys.stderr)
        return 2
    gt_dir, lq_dir = osp.join(args.out_dir, 'gt'), osp.join(args.out_dir, 'lq')
    os.makedirs(gt_dir, exist_ok=True)
    os.makedirs(lq_dir, exist_ok=True)
    jobs = [(osp.join(args.hq_dir, f), osp.join(gt_dir, osp.splitext(f)[0] + '.png'),
             osp.join(lq_dir, osp.splitext(f)[0] + '.png'), args.scale, args.overwrite) for f in files]

    # images whose two outputs exist are skipped here, without starting workers
    status = {osp.basename(j[0]): 'skipped' for j in jobs
              if not args.overwrite and osp.exists(j[1]) and osp.exists(j[2])}
    pending = [j for j in jobs if osp.basename(j[0]) not in status]
    start = time.time()
    if pending:
        from tqdm import tqdm
        import iter_mm  # noqa: F401  (imported once here: forked workers inherit it)
        start = time.time()
        bar = tqdm(total=len(pending), desc=f'{args.degradation} x{args.scale}', unit='img')
        workers = min(args.workers, len(pending))
        if workers <= 1:
            _init_worker(transforms, args.seed)
            results = map(_process, pending)
        else:
            ctx = mp.get_context('fork' if sys.platform.startswith('linux') else 'spawn')
            pool = ctx.Pool(workers, initializer=_init_worker, initargs=(transforms, args.seed))
            results = pool.imap_unordered(_process, pending, chunksize=1)
        for name, state in results:
            status[name] = state
            bar.update(1)
        bar.close()
        if workers > 1:
            pool.close()
            pool.join()

    errors = {n: s for n, s in status.items() if s.startswith('error')}
    skipped = sum(s == 'skipped' for s in status.values())
    done = len(status) - len(errors) - skipped
    print(f'{done} pair(s) written to {args.out_dir} in {time.time() - start:.1f} s '
          f'({args.workers} worker(s), seed {args.seed})')
    if skipped:
        print(f'{skipped} pair(s) already existed and were left untouched (use --overwrite to replace)')
    for name in sorted(errors):
        print(f'  {name}: {errors[name]}', file=sys.stderr)
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
