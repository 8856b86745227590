"""Degradation transforms and dataset configs: shapes, ranges, seeding, and each BSRGAN step measured."""

import os.path as osp
import random

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

import iter_mm  # noqa: F401  (registers the transforms and datasets)
from iter_mm.datasets.checked_dataset import UnreadableImageError
from iter_mm.datasets.transforms import bsrgan_ops as ops
from iter_mm.datasets.transforms import sample_seed
from mmagic.registry import DATASETS, TRANSFORMS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CFG_DIR = osp.join(REPO, 'configs', '_base_', 'datasets')

init_default_scope('mmagic')


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """uint8 RGB test image: smooth colour waves plus mid-frequency texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = 0.5 + 0.25 * np.sin(9 * xx + 4 * yy)[..., None] * np.array([1.0, 0.6, 0.3])
    tex = cv2.GaussianBlur(rng.random((h, w, 3)), (0, 0), 1.0) - 0.5
    return np.clip((base + 0.8 * tex) * 255, 0, 255).astype(np.uint8)


def hf_energy(img: np.ndarray) -> float:
    """Mean squared Laplacian: energy of the highest spatial frequencies."""
    return float(np.mean(cv2.Laplacian(img.astype(np.float32), cv2.CV_32F) ** 2))


def build(cfgs):
    return [TRANSFORMS.build(dict(c)) for c in cfgs]


def run(transforms, results):
    for t in transforms:
        results = t(results)
    return results


def load_cfg(name: str) -> Config:
    return Config.fromfile(osp.join(CFG_DIR, name))


# ----------------------------------------------------------------------------- BSRGAN steps, measured
def test_gaussian_kernels_normalised_with_the_requested_covariance():
    k = ops.isotropic_gaussian_kernel(21, 2.0)
    r = np.arange(21) - 10
    assert k.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.sum(k.sum(1) * r**2) == pytest.approx(4.0, rel=1e-3)  # variance sigma^2 along y
    theta, l1, l2 = 0.6, 3.0, 0.8
    ka = ops.anisotropic_gaussian_kernel(31, theta, l1, l2).astype(np.float64)
    r = np.arange(31) - 15
    xx, yy = np.meshgrid(r, r)
    cov = np.array([[np.sum(ka * xx * xx), np.sum(ka * xx * yy)], [np.sum(ka * xx * yy), np.sum(ka * yy * yy)]])
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    np.testing.assert_allclose(cov, rot @ np.diag([l1, l2]) @ rot.T, atol=2e-3)


def test_blur_lowers_high_frequencies_and_keeps_the_mean():
    img = textured(64, 64).astype(np.float32) / 255
    for k in (ops.isotropic_gaussian_kernel(7, 1.2), ops.anisotropic_gaussian_kernel(9, 0.3, 2.0, 0.5)):
        out = ops.filter_image(img, k)
        assert out.shape == img.shape
        assert hf_energy(out) < 0.5 * hf_energy(img)
        assert out.mean() == pytest.approx(img.mean(), abs=2e-3)


def test_jpeg_lower_quality_removes_more_detail():
    img = textured(96, 96).astype(np.float32) / 255
    out = {q: ops.jpeg_compress(img, q) for q in (95, 50, 10)}

    def high_pass(x):
        return x - cv2.GaussianBlur(x, (0, 0), 1.5)

    # fraction of the original's fine detail still present (blocking artefacts do not count)
    kept = {q: float(np.sum(high_pass(o) * high_pass(img)) / np.sum(high_pass(img) ** 2)) for q, o in out.items()}
    png = {q: len(cv2.imencode('.png', np.round(o * 255).astype(np.uint8))[1]) for q, o in out.items()}
    err = {q: float(np.abs(o - img).mean()) for q, o in out.items()}
    assert kept[10] < kept[50] < kept[95] < 1 and kept[10] < 0.5 * kept[95]
    assert png[10] < png[50] < png[95]  # less information left (lossless size)
    assert err[10] > err[50] > err[95] > 0
    assert all(o.shape == img.shape and o.min() >= 0 and o.max() <= 1 for o in out.values())
    # quality 100 is close to lossless where 4:2:0 chroma subsampling loses nothing (grey); 8-bit grid
    grey = np.repeat(img.mean(2, keepdims=True), 3, 2)
    assert np.abs(ops.jpeg_compress(grey, 100) - grey).mean() < 1 / 255
    np.testing.assert_allclose(out[50] * 255, np.round(out[50] * 255), atol=1e-3)
    with pytest.raises(ValueError, match='quality'):
        ops.jpeg_compress(img, 0)


@pytest.mark.parametrize('mode', ['color', 'gray'])
def test_noise_adds_the_requested_variance(mode):
    flat = np.full((160, 160, 3), 0.5, np.float32)
    res = (ops.add_gaussian_noise(flat, np.random.default_rng(1), 12, mode) - flat) * 255
    assert res.std() == pytest.approx(12, rel=0.03)
    assert abs(res.mean()) < 0.2
    channels_equal = np.allclose(res[..., 0], res[..., 1])
    assert channels_equal == (mode == 'gray')


def test_correlated_noise_has_the_drawn_covariance():
    flat = np.full((200, 200, 3), 0.5, np.float32)
    res = ops.add_gaussian_noise(flat, np.random.default_rng(4), 20, 'correlated') - flat
    cov = ops.noise_covariance(np.random.default_rng(4), 20)  # same first draws
    np.testing.assert_allclose(np.cov(res.reshape(-1, 3).T), cov, atol=0.06 * (20 / 255) ** 2)
    assert np.all(np.linalg.eigvalsh(cov) >= -1e-12) and np.trace(cov) <= 3 * (20 / 255) ** 2


def test_shifted_gaussian_downsample_size_and_block_centre():
    ramp = np.tile(np.arange(48, dtype=np.float32)[None, :, None], (40, 1, 1))
    for s in (2, 4):
        out = ops.shifted_gaussian_downsample(ramp, 0.8, s)
        assert out.shape == (40 // s, 48 // s, 1)
        j = np.arange(3, 48 // s - 3)  # away from the borders: the value is the block centre s*j + (s-1)/2
        np.testing.assert_allclose(out[5, j, 0], s * j + (s - 1) / 2, atol=1e-3)


def test_bsrgan_noise_step_raises_variance_by_the_drawn_level():
    t = TRANSFORMS.build(
        dict(type='BSRGANDegradation', jpeg_prob=0.0, final_jpeg_quality=(100, 100), noise_level=(10, 20))
    )
    flat = np.full((128, 128, 3), 0.5, np.float32)
    checked = 0
    for seed in range(150):  # seeds whose noise comes last (nothing after it but a q100 JPEG, whose
        lq, log = t.degrade(flat, np.random.default_rng(seed))  # 4:2:0 chroma keeps grey noise only)
        if log[-2]['op'] == 'noise' and log[-2]['mode'] == 'gray':
            assert (lq - 0.5).std() * 255 == pytest.approx(log[-2]['level'], rel=0.12)
            checked += 1
    assert checked >= 3


# ----------------------------------------------------------------------------- BSRGAN transform
@pytest.mark.parametrize('h,w', [(64, 48), (32, 32), (8, 12)])
def test_bsrgan_transform_shape_range_and_change(h, w):
    gt = textured(h, w)
    t = TRANSFORMS.build(dict(type='BSRGANDegradation', keys=['img'], scale=4))
    for seed in range(8):  # covers runs with and without pre-downsampling
        out = t(dict(img=gt.copy(), degradation_seed=seed))['img']
        assert out.dtype == np.uint8 and out.shape == (h // 4, w // 4, 3)
        plain = cv2.resize(gt, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
        assert np.abs(out.astype(int) - plain).mean() > 0.5


def test_bsrgan_transform_is_reproducible_from_a_seed():
    t = TRANSFORMS.build(dict(type='BSRGANDegradation', keys=['img'], scale=4))
    gt = textured(64, 64)
    a = t(dict(img=gt, degradation_seed=7))['img']
    assert np.array_equal(a, t(dict(img=gt, degradation_seed=7))['img'])
    assert not np.array_equal(a, t(dict(img=gt, degradation_seed=8))['img'])
    np.random.seed(3)  # no seed key: drawn from numpy's global RNG (seeded per worker by MMEngine)
    b = t(dict(img=gt))['img']
    np.random.seed(3)
    assert np.array_equal(b, t(dict(img=gt))['img'])


def test_bsrgan_transform_input_checks():
    t = TRANSFORMS.build(dict(type='BSRGANDegradation', keys=['img'], scale=4))
    grey = t(dict(img=textured(32, 32)[..., 0], degradation_seed=0))['img']
    assert grey.shape == (8, 8)
    with pytest.raises(ValueError, match=r'\(H, W, 3\)'):
        t(dict(img=np.zeros((32, 32, 4), np.uint8)))
    with pytest.raises(TypeError, match='16-bit'):
        t(dict(img=np.zeros((32, 32, 3), np.uint16)))
    with pytest.raises(ValueError, match='ModCrop'):
        t(dict(img=np.zeros((30, 32, 3), np.uint8)))
    with pytest.raises(ValueError, match='multiple of scale'):
        t(dict(img=np.zeros((1, 1, 3), np.uint8)))
    with pytest.raises(ValueError, match='keys'):
        TRANSFORMS.build(dict(type='BSRGANDegradation', keys='img'))


# ----------------------------------------------------------------------------- Real-ESRGAN pipeline
@pytest.mark.parametrize('cfg_name,scale', [('realesrgan_x4.py', 4), ('realesrgan_x2.py', 2), ('bsrgan_x4.py', 4)])
def test_pipelines_give_lq_of_exactly_gt_over_scale(cfg_name, scale):
    cfg = load_cfg(cfg_name)
    assert cfg.scale == scale
    var = 'bsrgan_degradations' if 'bsrgan' in cfg_name else 'realesrgan_degradations'
    transforms = build(cfg[var])
    gt = textured(72, 56)
    for seed in range(4):
        np.random.seed(seed)
        random.seed(seed)
        res = run(transforms, dict(gt=gt.copy(), gt_path='a.png', scale=scale, degradation_seed=seed))
        lq = np.asarray(res['img'])
        assert lq.shape == (72 // scale, 56 // scale, 3)
        assert lq.min() >= 0 and lq.max() <= 255
        assert np.array_equal(res['gt'], gt)  # the GT itself is not degraded
        plain = cv2.resize(gt, (56 // scale, 72 // scale), interpolation=cv2.INTER_AREA)
        assert np.abs(lq.astype(np.float32) - plain).mean() > 0.5


def test_realesrgan_fixed_seed_reproduces_per_file_name():
    cfg = load_cfg('realesrgan_x4.py')
    seeded = TRANSFORMS.build(
        dict(type='SeededDegradations', seed=5, key='gt_path', transforms=cfg.realesrgan_degradations)
    )
    gt = textured(64, 64)
    np.random.seed(11)
    random.seed(11)
    outside = (np.random.get_state()[1].copy(), random.getstate())
    outs = [
        np.asarray(seeded(dict(gt=gt.copy(), gt_path=p, scale=4))['img']) for p in ('x/a.png', 'y/b.png', 'z/a.png')
    ]
    assert np.array_equal(outs[0], outs[2])  # same file name, same seed, regardless of call history
    assert not np.array_equal(outs[0], outs[1])
    # the global RNGs (e.g. a training pipeline in the same process) are left where they were
    assert np.array_equal(np.random.get_state()[1], outside[0]) and random.getstate() == outside[1]
    assert sample_seed(5, 'a.png') == sample_seed(5, 'a.png') != sample_seed(6, 'a.png')


def test_random_order_degradations_depends_only_on_the_rng_state():
    cfg = dict(
        type='RandomOrderDegradations',
        keys=['img'],
        degradations=[
            dict(type='RandomJPEGCompression', params=dict(quality=[10, 10])),
            [
                dict(
                    type='RelativeRandomResize',
                    params=dict(ref_key='gt', ref_scale=2, resize_opt=['area'], resize_prob=[1]),
                )
            ],
        ],
    )
    t = TRANSFORMS.build(cfg)
    TRANSFORMS.build(cfg)  # the config is not consumed by building
    gt = textured(32, 32)
    outs = []
    for seed in list(range(6)) + [0, 0, 1]:
        np.random.seed(seed)
        outs.append(t(dict(img=gt.astype(np.float32), gt=gt))['img'])
    distinct = {o.tobytes() for o in outs}
    assert len(distinct) == 2  # the two orders give two different images
    assert np.array_equal(outs[0], outs[6]) and np.array_equal(outs[6], outs[7])
    assert np.array_equal(outs[1], outs[8])


def test_relative_random_resize_sizes():
    gt = np.zeros((80, 120, 3), np.uint8)
    exact = TRANSFORMS.build(
        dict(
            type='RelativeRandomResize',
            keys=['img'],
            params=dict(ref_key='gt', ref_scale=4, resize_opt=['bicubic'], resize_prob=[1]),
        )
    )
    assert exact(dict(gt=gt, img=np.zeros((33, 7, 3), np.float32)))['img'].shape == (20, 30, 3)
    rand = TRANSFORMS.build(
        dict(
            type='RelativeRandomResize',
            keys=['img'],
            params=dict(
                ref_key='gt',
                ref_scale=4,
                resize_mode_prob=[0.3, 0.4, 0.3],
                resize_scale=[0.3, 1.2],
                resize_opt=['area'],
                resize_prob=[1],
            ),
        )
    )
    np.random.seed(0)
    hs = {rand(dict(gt=gt, img=np.zeros((50, 50, 3), np.float32)))['img'].shape[0] for _ in range(40)}
    assert min(hs) >= int(20 * 0.3) and max(hs) <= int(20 * 1.2) and 20 in hs and len(hs) > 5


def test_poisson_noise_matches_realesrgan_strength():
    """MMagic's Poisson noise on [0, 255] with scale s*sqrt(255) == Real-ESRGAN's on [0, 1] with scale s."""
    cfg = load_cfg('realesrgan_x4.py')
    noise1 = cfg.realesrgan_degradations[4]['params']
    np.testing.assert_allclose(noise1['poisson_scale'], np.array([0.05, 3]) * 255**0.5)
    img = np.tile(np.arange(256, dtype=np.float32), (160, 1))[..., None].repeat(3, 2)  # 256 grey levels
    t = TRANSFORMS.build(
        dict(
            type='RandomNoise',
            keys=['img'],
            params=dict(
                noise_type=['poisson'], noise_prob=[1], poisson_scale=[255**0.5, 255**0.5], poisson_gray_noise_prob=0
            ),
        )
    )
    np.random.seed(0)
    measured = float(np.var(t(dict(img=img.copy()))['img'] - img))
    # Real-ESRGAN, s = 1: noise = Poisson(x01 * vals) / vals - x01 with vals = 256, in 255 units
    expected = float(np.mean(255**2 * (img / 255) / 256))
    assert measured == pytest.approx(expected, rel=0.03)


def test_realesrgan_x2_config_is_x4_with_scale_2():
    """x2 shares x4's degradations and differs only in the scale its pipelines set."""
    x4, x2 = (Config.fromfile(osp.join(CFG_DIR, f'realesrgan_x{s}.py')) for s in (4, 2))
    assert (x4.scale, x2.scale) == (4, 2)
    assert x2.realesrgan_degradations == x4.realesrgan_degradations
    for split in ('train', 'val'):
        p4, p2 = (c[f'{split}_dataloader'].dataset.pipeline for c in (x4, x2))
        assert p2[1] == dict(type='SetValues', dictionary=dict(scale=2))
        assert p4[1] == dict(type='SetValues', dictionary=dict(scale=4))
        assert p2[:1] + p2[2:] == p4[:1] + p4[2:]


def test_relative_resize_needs_a_scale():
    from mmagic.registry import TRANSFORMS

    t = TRANSFORMS.build(
        dict(type='RelativeRandomResize', keys=['img'], params=dict(ref_key='gt', resize_opt=['area'], resize_prob=[1]))
    )
    gt = np.zeros((16, 8, 3), np.float32)
    assert t(dict(gt=gt, img=gt.copy(), scale=4))['img'].shape[:2] == (4, 2)
    with pytest.raises(KeyError, match='SetValues'):
        t(dict(gt=gt, img=gt.copy()))


# ----------------------------------------------------------------------------- datasets
def write_images(folder, names, size=(40, 36)):
    import os

    os.makedirs(folder, exist_ok=True)
    for i, n in enumerate(names):
        cv2.imwrite(osp.join(folder, n), textured(size[0], size[1], i))


def test_realesrgan_train_dataset_packs_pairs(tmp_path):
    write_images(tmp_path / 'hq', ['a.png', 'b.png'], size=(80, 72))
    cfg = load_cfg('realesrgan_x4.py').train_dataloader.dataset
    cfg.data_root = str(tmp_path / 'hq')
    cfg.pipeline[2]['crop_size'] = (64, 64)
    ds = DATASETS.build(cfg)
    assert len(ds) == 2
    sample = ds[0]
    assert tuple(sample['inputs'].shape) == (3, 16, 16)
    assert tuple(sample['data_samples'].gt_img.shape) == (3, 64, 64)


def test_realesrgan_val_dataset_is_seeded_per_image(tmp_path):
    write_images(tmp_path / 'val', ['a.png'], size=(50, 44))
    cfg = load_cfg('realesrgan_x4.py').val_dataloader.dataset
    cfg.data_root = str(tmp_path / 'val')
    ds = DATASETS.build(cfg)
    a, b = ds[0], ds[0]
    assert tuple(a['inputs'].shape) == (3, 12, 11) and tuple(a['data_samples'].gt_img.shape) == (3, 48, 44)
    assert np.array_equal(a['inputs'].numpy(), b['inputs'].numpy())


def test_same_seed_and_worker_layout_give_the_same_batches(tmp_path):
    from functools import partial

    from mmengine.dataset import pseudo_collate, worker_init_fn
    from torch.utils.data import DataLoader

    write_images(tmp_path / 'hq', [f'{i}.png' for i in range(4)], size=(40, 40))
    cfg = load_cfg('bsrgan_x4.py').train_dataloader.dataset
    cfg.data_root = str(tmp_path / 'hq')
    cfg.pipeline[2]['crop_size'] = (32, 32)
    ds = DATASETS.build(cfg)

    def epoch(seed):
        loader = DataLoader(
            ds,
            batch_size=2,
            num_workers=2,
            collate_fn=pseudo_collate,
            worker_init_fn=partial(worker_init_fn, num_workers=2, rank=0, seed=seed),
        )
        return [x.numpy() for batch in loader for x in batch['inputs']]

    first, again, other = epoch(123), epoch(123), epoch(124)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_checked_dataset_fails_at_build_naming_the_path(tmp_path):
    cfg = load_cfg('paired_folder.py').train_dataloader.dataset
    cfg.data_root = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError, match='nowhere'):
        DATASETS.build(cfg)
    write_images(tmp_path / 'p' / 'gt', ['a.png', 'b.png'])
    write_images(tmp_path / 'p' / 'lq', ['a.png'], size=(10, 9))
    cfg.data_root = str(tmp_path / 'p')
    with pytest.raises(FileNotFoundError, match=r'lq/b\.png'):
        DATASETS.build(cfg)
    (tmp_path / 'empty').mkdir()
    cfg.data_root = str(tmp_path / 'empty')
    (tmp_path / 'empty' / 'gt').mkdir()
    (tmp_path / 'empty' / 'lq').mkdir()
    with pytest.raises(FileNotFoundError, match='no image') as err:
        DATASETS.build(cfg)
    assert 'subfolders' not in str(err.value)
    write_images(tmp_path / 'empty' / 'gt' / 'nested', ['a.png'])  # images one level down: said so
    with pytest.raises(FileNotFoundError, match='subfolders are not searched unless the dataset has recursive=True'):
        DATASETS.build(cfg)


@pytest.mark.parametrize('base', ['realesrgan_x4.py', 'bsrgan_x4.py'])
def test_images_smaller_than_the_crop_are_padded(tmp_path, base):
    """An 8x8 photo among the training images: zero-padded to the crop (as stage I), not a collate error."""
    write_images(tmp_path / 'hq', ['small.png'], size=(8, 8))
    cfg = load_cfg(base).train_dataloader.dataset
    cfg.data_root = str(tmp_path / 'hq')
    cfg.pipeline[2]['crop_size'] = (64, 64)
    gt = DATASETS.build(cfg)[0]['data_samples'].gt_img
    assert tuple(gt.shape) == (3, 64, 64)
    assert int((gt.float().sum(dim=0) > 0).sum()) <= 8 * 8  # the photo's pixels, the rest is padding


def test_unreadable_image_is_named(tmp_path):
    """A corrupt or empty file in a training folder ends the sample with an error naming it (was OpenCV's
    ``!_src.empty()`` deep in the pipeline); other pipeline errors pass through unchanged."""
    write_images(tmp_path / 'hq', ['good.png'], size=(40, 40))
    good = (tmp_path / 'hq' / 'good.png').read_bytes()
    (tmp_path / 'hq' / 'truncated.png').write_bytes(good[: len(good) // 3])
    (tmp_path / 'hq' / 'zero.png').write_bytes(b'')
    cfg = load_cfg('hq_only.py').train_dataloader.dataset
    cfg.data_root, cfg.data_prefix = str(tmp_path), dict(gt='hq')
    ds = DATASETS.build(cfg)
    index = {osp.basename(ds.get_data_info(i)['gt_path']): i for i in range(len(ds))}
    assert sorted(index) == ['good.png', 'truncated.png', 'zero.png']
    assert tuple(ds.prepare_data(index['good.png'])['inputs'].shape)[0] == 3
    for name in ('truncated.png', 'zero.png'):
        with pytest.raises(UnreadableImageError, match=rf'{name} is not a readable image'):
            ds.prepare_data(index[name])
    cfg.pipeline = [dict(type='LoadImageFromFile', key='gt'), dict(type='Crop', keys=['nonexistent'], crop_size=(4, 4))]
    ds = DATASETS.build(cfg)
    with pytest.raises(KeyError, match='nonexistent') as err:  # a config mistake, not the file
        ds.prepare_data(index['good.png'])
    assert not isinstance(err.value, UnreadableImageError)


def test_realworld_lq_sets_layouts(tmp_path):
    cfg = load_cfg('realworld_lq_niqe.py')
    assert len(cfg.test_dataloader) == len(cfg.test_evaluator) == 4
    assert cfg.test_evaluator[1].metrics[0].prefix == 'DRealSR'
    for cam in ('Canon', 'Nikon'):
        folder = tmp_path / 'RealSR' / cam / 'Test' / '4'
        write_images(folder, [f'{cam}_001_LR4.png', f'{cam}_001_HR.png'])
    sets = cfg.realworld_test_sets
    for s in sets.RealSR.datasets:
        s.data_root = str(tmp_path)
    ds = DATASETS.build(sets.RealSR)
    assert len(ds) == 2 and ds.get_data_info(0)['img_path'].endswith('Canon_001_LR4.png')
    assert tuple(ds[0]['inputs'].shape) == (3, 40, 36)
    sets.DPED_iphone.data_root = str(tmp_path)
    with pytest.raises(FileNotFoundError, match='DPED/iphone/test_data/full_size_test_images'):
        DATASETS.build(sets.DPED_iphone)


@pytest.mark.parametrize('train_base', ['realesrgan_x4.py', 'realesrgan_x2.py', 'bsrgan_x4.py', 'paired_folder.py'])
def test_training_bases_combine_with_the_realworld_test_base(tmp_path, train_base):
    """A model config can list a training dataset base and realworld_lq_niqe.py (no duplicate keys)."""
    child = tmp_path / 'model.py'
    child.write_text(
        f"_base_ = ['{osp.join(REPO, 'configs', '_base_', 'default_runtime.py')}', "
        f"'{osp.join(CFG_DIR, train_base)}', '{osp.join(CFG_DIR, 'realworld_lq_niqe.py')}']\n"
    )
    cfg = Config.fromfile(str(child))
    assert cfg.train_dataloader.dataset.type == 'CheckedImageDataset' and len(cfg.test_dataloader) == 4


def test_realworld_niqe_scores_lq_only_samples(tmp_path):
    """The test base's dataset + metric evaluate a GT-less sample (MMagic's NIQE metric alone cannot)."""
    import torch

    from mmagic.registry import METRICS
    from mmagic.structures import DataSample

    cfg = load_cfg('realworld_lq_niqe.py')
    write_images(tmp_path / 'RealSRSet', ['a.png'], size=(24, 48))
    ds_cfg = cfg.realworld_test_sets.RealSRSet
    ds_cfg.data_root = str(tmp_path)
    sample = DATASETS.build(ds_cfg)[0]
    assert 'gt_img' not in sample['data_samples']
    metric = METRICS.build(cfg.test_evaluator[3].metrics[0])
    up = torch.nn.functional.interpolate(sample['inputs'][None].float(), scale_factor=4, mode='bicubic')[0]
    sample['data_samples'].output = DataSample(pred_img=up.clamp(0, 255))
    metric.process([], [sample['data_samples'].to_dict()])
    assert 0 < metric.compute_metrics(metric.results)['NIQE'] < 100


def test_narrow_even_kernels_stay_finite():
    """A near-zero width on an even-sized grid used to give 0/0 (NaN kernels, NaN images)."""
    from iter_mm.datasets.transforms.bsrgan_ops import anisotropic_gaussian_kernel, isotropic_gaussian_kernel

    for k in (isotropic_gaussian_kernel(6, 1e-6), anisotropic_gaussian_kernel(6, 0.3, 1e-6, 1e-6)):
        assert np.isfinite(k).all() and abs(float(k.sum()) - 1.0) < 1e-6
        assert np.isclose(k.max(), 0.25)  # mass split over the 2x2 centre pixels
