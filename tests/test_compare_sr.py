"""Comparing SR models on one folder (iter_mm.evaluation.sr_compare, iter_mm.apis.mmagic_models) and its command
line tools/compare_sr.py: CSV, Markdown, crops, odd files, refusal to overwrite, one-line errors."""

import csv
import math
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tool_runner import error_line, run_tool

from iter_mm.apis.mmagic_models import build_sr_function, resolve_config, sr_function
from iter_mm.errors import InvalidOptionError, MissingDataError, OutputExistsError
from iter_mm.evaluation.sr_compare import (
    SRComparison,
    build_metrics,
    center_crop,
    parse_model,
    parse_restore_opts,
    read_image,
)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def build(text, random_init=False, **kw):
    """The function of a model given as NAME=CONFIG[:CKPT], x4 on the CPU."""
    spec = parse_model(text)
    return build_sr_function(spec.name, spec.config, spec.checkpoint, 4, 'cpu', random_init, **kw)


TINY_RRDB = """
model = dict(type='BaseEditModel',
             generator=dict(type='RRDBNet', in_channels=3, out_channels=3, mid_channels=8, num_blocks=1,
                            growth_channels=4, upscale_factor=4),
             pixel_loss=dict(type='L1Loss', loss_weight=1.0),
             data_preprocessor=dict(type='DataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.]))
"""


@pytest.fixture()
def folders(tmp_path):
    """LQ 24x48 (x4 -> 96x192: two NIQE blocks): RGB 8-bit, gray 16-bit, RGBA 8-bit (no GT), a corrupt file."""
    lq_dir, gt_dir = tmp_path / 'lq', tmp_path / 'gt'
    lq_dir.mkdir()
    gt_dir.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(2):
        hr = F.interpolate(
            torch.rand(1, 3, 12, 24, generator=g), size=(96, 192), mode='bicubic', align_corners=False
        ).clamp(0, 1)
        lq = F.interpolate(hr, scale_factor=0.25, mode='area')[0].permute(1, 2, 0).numpy()[..., ::-1]
        cv2.imwrite(
            str(gt_dir / f'img{i}.png'), (hr[0].permute(1, 2, 0).numpy()[..., ::-1] * 255).round().astype(np.uint8)
        )
        if i == 0:
            cv2.imwrite(str(lq_dir / 'img0.png'), (lq * 255).round().astype(np.uint8))
        else:  # 16-bit gray
            cv2.imwrite(str(lq_dir / 'img1.png'), (lq.mean(2) * 65535).round().astype(np.uint16))
    rgba = np.concatenate([np.full((24, 48, 3), 100, np.uint8), np.full((24, 48, 1), 255, np.uint8)], 2)
    cv2.imwrite(str(lq_dir / 'img2.png'), rgba)
    (lq_dir / 'broken.png').write_bytes(b'not a png')
    cfg = tmp_path / 'tiny_rrdb.py'
    cfg.write_text(TINY_RRDB)
    return lq_dir, gt_dir, cfg, tmp_path / 'out'


def test_compare_writes_csv_markdown_and_crops(folders):
    lq_dir, gt_dir, cfg, out = folders
    iter_cfg = osp.join(ROOT, 'configs', 'iter', 'iter_x4_tiny.py')
    models = dict(
        bicubic=build('bicubic=bicubic'),
        rrdb=build(f'rrdb={cfg}', True),
        iter=build(f'iter={iter_cfg}', True, restore_opts=dict(steps=2)),
    )
    metrics = build_metrics(['psnr', 'niqe'], 0, {}, True)
    comparison = SRComparison(str(lq_dir), str(out), 4, str(gt_dir), crop_size=32)
    assert comparison.files == ['broken.png', 'img0.png', 'img1.png', 'img2.png']
    with pytest.warns(UserWarning, match='skipping broken.png'):
        summary = comparison.run(models, metrics, 'cpu', '; models without checkpoint have RANDOM weights')
    with open(out / 'results.csv') as f:
        rows = list(csv.DictReader(f))
    assert [(r['model'], r['image']) for r in rows] == [
        (m, f'img{i}.png') for m in ('bicubic', 'rrdb', 'iter') for i in range(3)
    ]
    assert all((r['width'], r['height']) == ('192', '96') for r in rows)
    assert all(float(r['seconds']) > 0 for r in rows)
    # bicubic PSNR of img0, recomputed by hand from the files (8-bit output, as the comparison scores it)
    lq = torch.from_numpy(cv2.imread(str(lq_dir / 'img0.png'))[..., ::-1].copy()).permute(2, 0, 1)[None] / 255.0
    sr = (F.interpolate(lq.float(), scale_factor=4, mode='bicubic', align_corners=False).clamp(0, 1) * 255).round()
    gt = torch.from_numpy(cv2.imread(str(gt_dir / 'img0.png'))[..., ::-1].copy()).permute(2, 0, 1)[None].float()
    mse = ((sr - gt) / 255.0).pow(2).mean().item()
    assert float(rows[0]['psnr']) == pytest.approx(10 * math.log10(1 / mse), rel=1e-4)
    assert 0 < float(rows[0]['niqe']) < 100
    assert rows[2]['psnr'] == 'nan'  # img2 has no GT
    md = (out / 'summary.md').read_text()
    assert md == summary
    assert '| model | psnr | niqe | s / image | peak MiB | images |' in md
    assert '| bicubic |' in md and '| rrdb |' in md and '| iter |' in md and 'RANDOM weights' in md
    # crops: LQ | bicubic | rrdb | iter | GT, each 32 px wide with 4 px gaps, under an 18 px label bar
    crop = cv2.imread(str(out / 'crops' / 'img0.png'))
    assert crop.shape == (32 + 18, 5 * 32 + 4 * 4, 3)
    assert cv2.imread(str(out / 'crops' / 'img1.png')) is not None
    with pytest.raises(OutputExistsError, match='already holds results'):  # never overwrite silently
        SRComparison(str(lq_dir), str(out))
    SRComparison(str(lq_dir), str(out), overwrite=True)


def test_errors_are_clear(folders, tmp_path):
    lq_dir, gt_dir, cfg, out = folders
    with pytest.raises(InvalidOptionError, match='has no checkpoint'):
        build(f'rrdb={cfg}')
    with pytest.raises(InvalidOptionError, match='full-reference'):
        build_metrics(['psnr'], 0, {}, False)
    with pytest.raises(MissingDataError, match='does not exist'):
        SRComparison(str(lq_dir / 'nope'), str(out))
    with pytest.raises(InvalidOptionError, match="crop image 'nope.png'"):
        SRComparison(str(lq_dir), str(out), crop_images=['nope.png'])
    with pytest.raises(ValueError, match='not a readable image'):
        read_image(str(lq_dir / 'broken.png'))
    bad = tmp_path / 'bad.pth'
    torch.save({'state_dict': {'generator.conv_first.weight': torch.zeros(1)}}, bad)
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match='checkpoint file not found'):
        build(f'rrdb={cfg}:{tmp_path / "nope.pth"}')
    with pytest.raises(ValueError, match="^model 'rrdb': .*strictly into the config's model"):
        build(f'rrdb={cfg}:{bad}')
    with pytest.raises(MissingDataError, match='no images'):
        SRComparison(str(empty), str(out))


def test_command_line_refusals_are_one_line(folders, tmp_path):
    """Missing checkpoints, a missing folder, earlier results, a full-reference metric without GT: 'error: ...'
    (exit status 1, no traceback); bad --iter-opts end at argument parsing (exit status 2) before any model
    loads."""
    lq_dir, gt_dir, cfg, out = folders
    base = ['--input', lq_dir, '--out', out]
    line = error_line(run_tool('compare_sr', *base, '--model', f'rrdb={cfg}'))
    assert 'has no checkpoint' in line and '--random-init' in line
    assert 'does not exist' in error_line(
        run_tool('compare_sr', '--input', lq_dir / 'nope', '--out', out, '--model', 'b=bicubic')
    )
    assert 'full-reference' in error_line(run_tool('compare_sr', *base, '--model', 'b=bicubic', '--metrics', 'psnr'))
    (out / 'crops').mkdir(parents=True)
    line = error_line(run_tool('compare_sr', *base, '--model', 'b=bicubic'))
    assert 'already holds results' in line and '--overwrite' in line
    bad = run_tool(
        'compare_sr',
        *base,
        '--model',
        f'i=configs/iter/iter_x4_tiny.py:{tmp_path / "never.pth"}',
        '--iter-opts',
        'alpha=1.5',
    )
    assert bad.returncode == 2 and '--iter-opts' in bad.stderr and 'Traceback' not in bad.stderr


def test_command_line_writes_the_comparison(folders):
    lq_dir, gt_dir, _, out = folders
    done = run_tool(
        'compare_sr',
        '--input',
        lq_dir,
        '--gt',
        gt_dir,
        '--out',
        out,
        '--model',
        'bicubic=bicubic',
        '--metrics',
        'psnr',
        '--crop-size',
        '32',
        '--crop-box',
        'img0.png:4,8',
        '--save-images',
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'warning: skipping broken.png' in done.stderr and 'Traceback' not in done.stderr
    assert '| bicubic |' in done.stdout and done.stdout.strip() == (out / 'summary.md').read_text().strip()
    assert cv2.imread(str(out / 'images' / 'bicubic' / 'img1.png')).shape == (96, 192, 3)
    sr = cv2.imread(str(out / 'images' / 'bicubic' / 'img0.png'))
    crop = cv2.imread(str(out / 'crops' / 'img0.png'))  # LQ | bicubic | GT from the corner (4, 8)
    assert np.array_equal(crop[18:, 36:68], sr[8:40, 4:36])


def test_restore_opts_are_checked_before_loading():
    for opt in ('alpha=1.5', 'steps=0', 'alfa=0.5', 'tile_overlap=-1', 'steps'):
        with pytest.raises(InvalidOptionError):
            parse_restore_opts([opt])
    assert parse_restore_opts(['seed=None', 'alpha=0.5']) == dict(seed=None, alpha=0.5)


@pytest.mark.parametrize(
    'text, config, ckpt',
    [
        ('m=mmagic::srcnn/srcnn_x4k915_1xb16-1000k_div2k.py', 'mmagic::srcnn/srcnn_x4k915_1xb16-1000k_div2k.py', None),
        ('m=mmagic::srcnn/x.py:ck.pth', 'mmagic::srcnn/x.py', 'ck.pth'),
        ('m=iter::iter/iter_x4_realsr.py', 'iter::iter/iter_x4_realsr.py', None),
        ('m=iter_mm::iter/a.py:/w/ck.pth', 'iter_mm::iter/a.py', '/w/ck.pth'),
        ('m=configs/a.py', 'configs/a.py', None),
        ('m=configs/a.py:ck.pth', 'configs/a.py', 'ck.pth'),
        ('m=/abs/dir/a.py:/abs/w/run:2/ck.pth', '/abs/dir/a.py', '/abs/w/run:2/ck.pth'),  # ':' inside a POSIX path
        ('m=configs/a.py:none', 'configs/a.py', None),
        ('m=real_esrgan/x.py', 'real_esrgan/x.py', None),
        ('m=bicubic', 'bicubic', None),
    ],
)
def test_parse_model_forms(text, config, ckpt):
    spec = parse_model(text)
    assert (spec.name, spec.config, spec.checkpoint) == ('m', config, ckpt)


def test_parse_model_refuses_malformed():
    for text in ('noequals', '=cfg.py', 'm=', 'm=mmagic::', 'm=:ck.pth'):
        with pytest.raises(Exception, match='NAME=CONFIG'):
            parse_model(text)


def test_mmagic_scope_config_without_checkpoint_builds():
    """'mmagic::<zoo path>' without a checkpoint (--random-init) reaches the loader whole (it was cut at ':')."""
    fn = build('s=mmagic::srcnn/srcnn_x4k915_1xb16-1000k_div2k.py', True)
    assert type(fn.model.generator).__name__ == 'SRCNNNet'
    assert fn(torch.rand(1, 3, 6, 7)).shape == (1, 3, 24, 28)


def test_unsafe_load_reads_full_training_checkpoints(folders, tmp_path):
    """A training checkpoint with pickled objects needs --unsafe-load (named in the error), as in tools/infer.py."""
    import argparse

    lq_dir, _, cfg, out = folders
    torch.manual_seed(0)
    model = build(f'rrdb={cfg}', True).model
    full = tmp_path / 'iter_10.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': argparse.Namespace(seed=0)}, full)  # a pickled object
    with pytest.raises(ValueError, match='pickled'):
        build(f'rrdb={cfg}:{full}')
    lq = torch.rand(1, 3, 8, 12)
    assert torch.equal(build(f'rrdb={cfg}:{full}', allow_pickle=True)(lq), sr_function(model)(lq))
    argv = [
        '--input',
        lq_dir,
        '--out',
        out,
        '--model',
        f'rrdb={cfg}:{full}',
        '--metrics',
        'niqe',
        '--max-input-size',
        '16',
    ]
    assert '--unsafe-load' in error_line(run_tool('compare_sr', *argv))
    done = run_tool('compare_sr', *argv, '--unsafe-load')
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'rrdb' in (out / 'results.csv').read_text()


def test_read_image_kinds(folders):
    lq_dir = folders[0]
    gray16 = read_image(str(lq_dir / 'img1.png'))
    assert gray16.shape == (3, 24, 48) and torch.equal(gray16[0], gray16[2])
    raw = cv2.imread(str(lq_dir / 'img1.png'), cv2.IMREAD_UNCHANGED)
    assert gray16[0].numpy() == pytest.approx(raw / 65535.0, abs=1e-6)
    rgba = read_image(str(lq_dir / 'img2.png'))  # opaque alpha: the colour itself
    assert rgba.shape == (3, 24, 48) and rgba.max().item() == pytest.approx(100 / 255.0)


def test_checkpoint_round_trip_and_mismatch(folders, tmp_path):
    cfg = folders[2]
    spec = parse_model(f'rrdb={cfg}')
    torch.manual_seed(1)
    run = build_sr_function(spec.name, spec.config, spec.checkpoint, 4, 'cpu', True)
    lq = torch.rand(1, 3, 8, 12)
    ref = run(lq)
    model = run.model
    assert type(model).__name__ == 'BaseEditModel' and model.training is False
    ckpt = tmp_path / 'rrdb.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    torch.manual_seed(2)  # different random init: the checkpoint must override it
    again = build(f'rrdb={cfg}:{ckpt}')
    assert torch.allclose(again(lq), ref)
    bad = tmp_path / 'bad.pth'
    torch.save({'state_dict': {'generator.conv_first.weight': torch.zeros(1)}}, bad)
    with pytest.raises(ValueError, match="strictly into the config's model"):
        build(f'rrdb={cfg}:{bad}')


def test_centre_crops_of_lq_and_gt_stay_aligned():
    lq, gt = torch.rand(3, 25, 48), torch.rand(3, 100, 192)
    assert torch.equal(center_crop(lq, 12), lq[:, 6:18, 18:30])
    assert torch.equal(center_crop(gt, 12, 4, like=lq), gt[:, 24:72, 72:120])  # 4 x the LQ offsets


def test_mmagic_models_come_back_in_rgb(tmp_path):
    """An MMagic model's prediction (destructed to BGR by MMagic's preprocessor) is compared in RGB: a nearest-
    neighbour x4 'generator' must return the LQ's own colours."""
    from mmagic.registry import MODELS

    @MODELS.register_module(name='NearestX4ForTest', force=True)
    class NearestX4(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return F.interpolate(x, scale_factor=4, mode='nearest') + 0 * self.dummy

    cfg = tmp_path / 'nearest.py'
    cfg.write_text(
        TINY_RRDB.replace(
            "generator=dict(type='RRDBNet', in_channels=3, out_channels=3, mid_channels=8, "
            'num_blocks=1,\n                            growth_channels=4, upscale_factor=4)',
            "generator=dict(type='NearestX4ForTest')",
        )
    )
    assert 'NearestX4ForTest' in cfg.read_text()
    fn = build(f'near={cfg}', True)
    lq = torch.zeros(1, 3, 4, 5)
    lq[:, 0], lq[:, 1], lq[:, 2] = 0.8, 0.4, 0.0  # orange: R > G > B
    out = fn(lq)
    torch.testing.assert_close(out, F.interpolate(lq, scale_factor=4, mode='nearest'), atol=1 / 255, rtol=0)


def test_resolve_config_names_the_places_looked_at(monkeypatch, tmp_path):
    """Our configs/ paths work from any folder (the installed package's copy); a missing one names MMagic's zoo
    root, not a made-up ``.../configs/configs/...`` folder; zoo names resolve into MMagic's configs."""
    monkeypatch.chdir(tmp_path)  # configs/iter/... is not a file here
    assert resolve_config('configs/iter/iter_x4_tiny.py').endswith(osp.join('iter', 'iter_x4_tiny.py'))
    with pytest.raises(FileNotFoundError) as err:
        resolve_config('configs/iter/nope.py')
    assert 'configs/configs' not in str(err.value) and 'nope.py' in str(err.value)
    assert osp.isfile(resolve_config('srcnn/srcnn_x4k915_1xb16-1000k_div2k.py'))
