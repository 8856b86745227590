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
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List

import cv2

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = 'configs/iter/iter_x4_demo.py'
FR_METRICS = ['psnr@Y', 'ssim@Y', 'niqe_mmagic@Y']


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Train ITER on scikit-image photos and compare it with bicubic')
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument('--config', default=CONFIG, help='ITER config of the demo (names its stage-I config)')
    p.add_argument('--real', help='folder of real low-quality photos to super-resolve (NIQE)')
    p.add_argument('--amp', action='store_true', help='train under mixed precision (bf16 on CPU)')
    p.add_argument(
        '--stage1-checkpoint',
        help="stage-I checkpoint of the demo's Swin-VQGAN (ours or in the authors' format): stage I is not trained",
    )
    p.add_argument('--cfg-options', nargs='+', default=[], help='overrides of the ITER config')
    p.add_argument('--stage1-cfg-options', nargs='+', default=[], help='overrides of the stage-I config')
    return p.parse_args()


def run(args: List[str]) -> None:
    print('+', ' '.join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


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
    run(
        [
            'tools/generate_lq.py',
            hq,
            pairs,
            '--degradation',
            'realesrgan',
            '--scale',
            '4',
            '--seed',
            '0',
            '--workers',
            '1',
        ]
    )
    return pairs


def main() -> None:
    args = parse_args()
    # the heavy stack (MMEngine, MMagic, iter_mm) only after the arguments: --help and usage errors come at once
    from iter_mm.engine.pipeline import stage_work_dir
    from iter_mm.evaluation.demo_report import colour_error, mean_rows

    work = osp.abspath(args.work_dir)
    pipeline = ['tools/train_pipeline.py', args.config, '--work-dir', work]
    if args.cfg_options:
        pipeline += ['--cfg-options', *args.cfg_options]
    if args.stage1_cfg_options:
        pipeline += ['--stage1-cfg-options', *args.stage1_cfg_options]
    if args.stage1_checkpoint:
        pipeline += ['--stage1-checkpoint', osp.abspath(args.stage1_checkpoint)]
    run(pipeline + (['--amp'] if args.amp else []))
    ckpt = osp.join(stage_work_dir(work, args.config), 'weights.pth')  # weights only, written by the pipeline

    pairs = heldout_pairs(work)
    compare = osp.join(work, 'compare')
    models = ['--model', 'bicubic=bicubic', '--model', f'iter={args.config}:{ckpt}']
    iter_opts = [o for o in args.cfg_options if o.startswith('model.test_cfg.')]
    iter_opts = ['--iter-opts', *[o[len('model.test_cfg.') :] for o in iter_opts]] if iter_opts else []
    run(
        [
            'tools/compare_sr.py',
            '--input',
            osp.join(pairs, 'lq'),
            '--gt',
            osp.join(pairs, 'gt'),
            '--out',
            compare,
            *models,
            *iter_opts,
            '--metrics',
            *FR_METRICS,
            '--crop-border',
            '4',
            '--save-images',
            '--overwrite',
        ]
    )
    means = mean_rows(osp.join(compare, 'results.csv'))
    for model in means:
        means[model]['colour_error'] = colour_error(osp.join(compare, 'images', model), osp.join(pairs, 'gt'))
    if args.real:
        real = osp.join(work, 'compare_real')
        run(
            [
                'tools/compare_sr.py',
                '--input',
                args.real,
                '--out',
                real,
                *models,
                *iter_opts,
                '--metrics',
                'niqe_mmagic@Y',
                '--overwrite',
            ]
        )
        for model, cols in mean_rows(osp.join(real, 'results.csv')).items():
            means.setdefault(model, {})['real NIQE'] = cols.get('niqe_mmagic@Y', float('nan'))
    write_summary(work, means, ckpt, compare)


def write_summary(work: str, means: Dict[str, Dict[str, float]], ckpt: str, compare: str) -> None:
    from iter_mm.evaluation.demo_report import summary_table

    text = summary_table(means)
    with open(osp.join(work, 'demo_summary.md'), 'w') as f:
        f.write(f'Held-out scikit-image photos, Real-ESRGAN x4 degradation (seed 0); ITER: {ckpt}\n\n{text}\n')
    print('\n' + text)
    print(f'\ncrops (LQ | bicubic | ITER | GT): {osp.join(compare, "crops")}')
    print(f'summary: {osp.join(work, "demo_summary.md")}')


if __name__ == '__main__':
    main()
