"""Paired GT/LQ generation (iter_mm.datasets.lq_pairs) and tools/generate_lq.py: layout, mod-crop, determinism
across worker counts, no silent overwrite, errors."""

import os
import os.path as osp

import cv2
import numpy as np
import pytest
from tool_runner import run_tool

from iter_mm.datasets.lq_pairs import generate_pairs
from iter_mm.errors import MissingDataError

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def make_hq(folder, sizes=((37, 29), (40, 40), (24, 52))):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        img = cv2.GaussianBlur(rng.random((h, w, 3)), (0, 0), 1.0)
        cv2.imwrite(osp.join(folder, f'img_{i}.png'), (img * 255).astype(np.uint8))
    return folder


def read(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def snapshot(out):
    return {
        f'{d}/{f}': (os.stat(osp.join(out, d, f)).st_mtime_ns, read(osp.join(out, d, f)).tobytes())
        for d in ('gt', 'lq')
        for f in sorted(os.listdir(osp.join(out, d)))
    }


@pytest.mark.parametrize('degradation', ['realesrgan', 'bsrgan'])
def test_writes_mod_cropped_pairs(tmp_path, degradation):
    hq = make_hq(str(tmp_path / 'hq'))
    out = str(tmp_path / 'out')
    report = generate_pairs(hq, out, degradation, seed=1)
    assert (report.done, report.skipped, report.errors) == (3, 0, {})
    for i, (h, w) in enumerate(((37, 29), (40, 40), (24, 52))):
        gt, lq = read(osp.join(out, 'gt', f'img_{i}.png')), read(osp.join(out, 'lq', f'img_{i}.png'))
        hh, ww = h - h % 4, w - w % 4
        assert gt.shape == (hh, ww, 3) and lq.shape == (hh // 4, ww // 4, 3)
        assert np.array_equal(gt, read(osp.join(hq, f'img_{i}.png'))[:hh, :ww])  # GT = HQ mod-cropped


def test_scale_2_and_rerun_leaves_files_untouched(tmp_path):
    hq = make_hq(str(tmp_path / 'hq'))
    out = str(tmp_path / 'out')
    args = [hq, out, '--scale', '2', '--workers', '1', '--degradation', 'bsrgan']
    done = run_tool('generate_lq', *args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f'3 pair(s) written to {out} in ' in done.stdout and '(1 worker(s), seed 0)' in done.stdout
    assert read(osp.join(out, 'lq', 'img_0.png')).shape == (18, 14, 3)
    before = snapshot(out)
    done = run_tool('generate_lq', *args)
    assert done.returncode == 0 and snapshot(out) == before
    assert '3 pair(s) already existed and were left untouched' in done.stdout
    os.remove(osp.join(out, 'lq', 'img_1.png'))  # a missing half is rebuilt, its partner left alone
    report = generate_pairs(hq, out, 'bsrgan', 2)
    assert report.status == {'img_0.png': 'skipped', 'img_1.png': 'completed', 'img_2.png': 'skipped'}
    after = snapshot(out)
    assert {k: v for k, v in after.items() if k != 'lq/img_1.png'} == {
        k: v for k, v in before.items() if k != 'lq/img_1.png'
    }  # nothing else touched (mtimes)
    assert after['lq/img_1.png'][1] == before['lq/img_1.png'][1]  # rebuilt identically
    assert generate_pairs(hq, out, 'bsrgan', 2, overwrite=True).done == 3
    rewritten = snapshot(out)
    assert all(rewritten[k][1] == before[k][1] for k in before)  # same seed: same content


def test_output_does_not_depend_on_the_worker_count(tmp_path):
    hq = make_hq(str(tmp_path / 'hq'))
    a, b, c = (str(tmp_path / n) for n in 'abc')
    assert generate_pairs(hq, a, workers=1, seed=3).done == 3
    assert generate_pairs(hq, b, workers=2, seed=3).done == 3
    assert generate_pairs(hq, c, workers=1, seed=4).done == 3
    sa, sb, sc = ({k: v[1] for k, v in snapshot(x).items()} for x in (a, b, c))
    assert sa == sb
    assert sa['lq/img_0.png'] != sc['lq/img_0.png']


def test_missing_hq_dir_is_a_clear_error(tmp_path):
    done = run_tool('generate_lq', tmp_path / 'missing', tmp_path / 'out')
    assert done.returncode == 2
    assert 'generate_lq.py: error: HQ folder' in done.stderr and 'missing does not exist' in done.stderr
    assert not (tmp_path / 'out').exists()
    (tmp_path / 'empty').mkdir()
    with pytest.raises(MissingDataError, match='no images'):
        generate_pairs(str(tmp_path / 'empty'), str(tmp_path / 'out'))
    assert not (tmp_path / 'out').exists()


def test_odd_inputs_converted_or_reported(tmp_path):
    hq = tmp_path / 'hq'
    hq.mkdir()
    cv2.imwrite(str(hq / 'grey.png'), np.full((16, 16), 100, np.uint8))
    cv2.imwrite(str(hq / 'deep.png'), np.full((16, 16, 3), 40000, np.uint16))
    cv2.imwrite(str(hq / 'rgba.png'), np.full((16, 16, 4), 200, np.uint8))
    cv2.imwrite(str(hq / 'tiny.png'), np.zeros((2, 2, 3), np.uint8))
    (hq / 'broken.png').write_bytes(b'not an image')
    out = tmp_path / 'out'
    done = run_tool('generate_lq', hq, out, '--workers', '1', '--degradation', 'bsrgan')
    assert done.returncode == 1
    err = done.stderr
    assert 'broken.png' in err and 'cannot decode' in err
    assert 'tiny.png' in err and 'smaller than the scale' in err
    for name in ('grey', 'deep', 'rgba'):
        gt = read(out / 'gt' / f'{name}.png')
        assert gt.dtype == np.uint8 and gt.shape == (16, 16, 3)
        assert read(out / 'lq' / f'{name}.png').shape == (4, 4, 3)
    assert not (out / 'gt' / 'broken.png').exists() and not (out / 'lq' / 'tiny.png').exists()


def test_output_is_readable_by_paired_folder_config(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmagic.registry import DATASETS

    init_default_scope('mmagic')
    hq = make_hq(str(tmp_path / 'hq'), sizes=((40, 40), (44, 48)))
    out = str(tmp_path / 'out')
    assert generate_pairs(hq, out, 'bsrgan').done == 2
    cfg = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'datasets', 'paired_folder.py'))
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = out
    ds_cfg.pipeline[3]['gt_patch_size'] = 32
    ds = DATASETS.build(ds_cfg)
    assert len(ds) == 2
    sample = ds[1]
    assert tuple(sample['inputs'].shape) == (3, 8, 8) and tuple(sample['data_samples'].gt_img.shape) == (3, 32, 32)
