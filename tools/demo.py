"""The main job with no dataset and no GPU: ITER's three training stages on the photos that ship with
scikit-image, then held-out photos super-resolved next to bicubic.

    python tools/demo.py                              # all three stages, about 20 minutes on 2 CPU cores
    python tools/demo.py --real path/to/real_lq       # also NIQE on real low-quality photos of yours
    python tools/demo.py --stage1-checkpoint work_dirs/demo/swinvqgan_demo/iter_800.pth   # stage I trained already

1. ``tools/train_pipeline.py configs/iter/iter_x4_demo.py``: stage I (``swinvqgan_demo.py``; skipped with
   ``--stage1-checkpoint``, a Swin-VQGAN file of the demo's size), stages II+III, their test (a rerun skips
   finished stages and resumes an interrupted one);
2. the held-out photos (chelsea, coffee, rocket: never trained on) degraded by ``tools/generate_lq.py``
   (Real-ESRGAN x4, seed 0) into ``heldout_x4/{gt,lq}``;
3. ``tools/compare_sr.py``: bicubic and ITER on them: PSNR / SSIM (Y), NIQE (MMagic's, Y), side-by-side crops
   (LQ | bicubic | ITER | GT), plus the colour error (mean over images of the mean absolute per-channel
   error of the image means, 0-255: a colour cast shows here);
4. with ``--real DIR``: bicubic and ITER on DIR, NIQE.

Everything lands in ``--work-dir`` (default ``work_dirs/demo``); the table is printed and written to
``demo_summary.md`` there.
"""
import argparse
import csv
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List

import cv2
import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = 'configs/iter/iter_x4_demo.py'
FR_METRICS = ['psnr@Y', 'ssim@Y', 'niqe_mmagic@Y']


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Train ITER on scikit-image photos and compare it with bicubic')
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument('--config', default=CONFIG, help='ITER config of the demo (names its stage-I config)')
    p.add_argument('--real', help='folder of real low-quality photos to super-resolve (NIQE)')
    p.add_argument('--amp', action='store_true', help='train under mixed precision (bf16 on CPU)')
    p.add_argument('--stage1-checkpoint', help='stage-I checkpoint of the demo\'s Swin-VQGAN (ours or in the authors\' '
                   'format): stage I is not trained')
    p.add_argument('--cfg-options', nargs='+', default=[], help='overrides of the ITER config')
    p.add_argument('--stage1-cfg-options', nargs='+', default=[], help='overrides of the stage-I config')
    return p.parse_args()


def run(args: List[str]) -> None:
    print('+', ' '.join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


def final_ckpt(config: str, work_root: str, options: List[str]) -> str:
    """The weights-only ITER file the pipeline ends with (as ``tools/train_pipeline.py`` names it)."""
    from mmengine.config import DictAction
    from iter_mm.utils.config import load_config
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    cfg = load_config(osp.join(ROOT, config), parser.parse_args(['--o', *options]).o if options else None)
    cfg.work_dir = osp.join(work_root, osp.splitext(osp.basename(config))[0])
    return osp.join(cfg.work_dir, 'weights.pth')  # written by the pipeline: weights only


def heldout_pairs(work: str) -> str:
    from iter_mm.datasets.skimage_photos import SKIMAGE_HELDOUT, skimage_data_dir
    hq = osp.join(work, 'heldout_hq')
    os.makedirs(hq, exist_ok=True)
    for name in SKIMAGE_HELDOUT:
        target = osp.join(hq, osp.splitext(name)[0] + '.png')
        if not osp.isfile(target):  # PNG: no second JPEG generation of the GT
            img = cv2.imread(osp.join(skimage_data_dir(), name), cv2.IMREAD_COLOR)
            cv2.imwrite(target, img)
    pairs = osp.join(work, 'heldout_x4')
    run(['tools/generate_lq.py', hq, pairs, '--degradation', 'realesrgan', '--scale', '4', '--seed', '0',
         '--workers', '1'])
    return pairs


def colour_error(images: str, gt_dir: str) -> float:
    """Mean over images of mean_c |mean(pred_c) - mean(gt_c)| on 0-255."""
    errors = []
    for name in sorted(os.listdir(gt_dir)):
        pred = cv2.imread(osp.join(images, name), cv2.IMREAD_COLOR)
        gt = cv2.imread(osp.join(gt_dir, name), cv2.IMREAD_COLOR)
        if pred is None or gt is None:
            continue
        h, w = min(pred.shape[0], gt.shape[0]), min(pred.shape[1], gt.shape[1])
        diff = pred[:h, :w].astype(np.float64).mean((0, 1)) - gt[:h, :w].astype(np.float64).mean((0, 1))
        errors.append(float(np.abs(diff).mean()))
    return float(np.mean(errors)) if errors else float('nan')


def mean_rows(results_csv: str) -> Dict[str, Dict[str, float]]:
    table: Dict[str, Dict[str, List[float]]] = {}
    with open(results_csv) as f:
        for row in csv.DictReader(f):
            cols = table.setdefault(row['model'], {})
            for key, value in row.items():
                try:
                    cols.setdefault(key, []).append(float(value))
                except (TypeError, ValueError):
                    pass
    return {m: {k: float(np.mean(v)) for k, v in cols.items()} for m, cols in table.items()}


def main() -> None:
    args = parse_args()
    work = osp.abspath(args.work_dir)
    pipeline = ['tools/train_pipeline.py', args.config, '--work-dir', work]
    if args.cfg_options:
        pipeline += ['--cfg-options', *args.cfg_options]
    if args.stage1_cfg_options:
        pipeline += ['--stage1-cfg-options', *args.stage1_cfg_options]
    if args.stage1_checkpoint:
        pipeline += ['--stage1-checkpoint', osp.abspath(args.stage1_checkpoint)]
    run(pipeline + (['--amp'] if args.amp else []))
    ckpt = final_ckpt(args.config, work, args.cfg_options)

    pairs = heldout_pairs(work)
    compare = osp.join(work, 'compare')
    models = ['--model', 'bicubic=bicubic', '--model', f'iter={args.config}:{ckpt}']
    iter_opts = [o for o in args.cfg_options if o.startswith('model.test_cfg.')]
    iter_opts = ['--iter-opts', *[o[len('model.test_cfg.'):] for o in iter_opts]] if iter_opts else []
    run(['tools/compare_sr.py', '--input', osp.join(pairs, 'lq'), '--gt', osp.join(pairs, 'gt'), '--out', compare,
         *models, *iter_opts, '--metrics', *FR_METRICS, '--crop-border', '4', '--save-images', '--overwrite'])
    means = mean_rows(osp.join(compare, 'results.csv'))
    for model in means:
        means[model]['colour_error'] = colour_error(osp.join(compare, 'images', model), osp.join(pairs, 'gt'))
    if args.real:
        real = osp.join(work, 'compare_real')
        run(['tools/compare_sr.py', '--input', args.real, '--out', real, *models, *iter_opts,
             '--metrics', 'niqe_mmagic@Y', '--overwrite'])
        for model, cols in mean_rows(osp.join(real, 'results.csv')).items():
            means.setdefault(model, {})['real NIQE'] = cols.get('niqe_mmagic@Y', float('nan'))
    write_summary(work, means, ckpt, compare)


def write_summary(work: str, means: Dict[str, Dict[str, float]], ckpt: str, compare: str) -> None:
    cols = ['psnr@Y', 'ssim@Y', 'niqe_mmagic@Y', 'colour_error'] + (
        ['real NIQE'] if any('real NIQE' in m for m in means.values()) else [])
    lines = ['| method | ' + ' | '.join(cols) + ' |', '|---' * (len(cols) + 1) + '|']
    for model, values in means.items():
        lines.append(f'| {model} | ' + ' | '.join(f'{values.get(c, float("nan")):.4f}' for c in cols) + ' |')
    text = '\n'.join(lines)
    with open(osp.join(work, 'demo_summary.md'), 'w') as f:
        f.write(f'Held-out scikit-image photos, Real-ESRGAN x4 degradation (seed 0); ITER: {ckpt}\n\n{text}\n')
    print('\n' + text)
    print(f'\ncrops (LQ | bicubic | ITER | GT): {osp.join(compare, "crops")}\nsummary: {osp.join(work, "demo_summary.md")}')


if __name__ == '__main__':
    main()
