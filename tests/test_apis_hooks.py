"""ITER through MMagic's Inferencer API, and the refinement visualisation hook."""

import re
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

from iter_mm.engine.hooks import RefinementVisualizationHook, refinement_mosaic
from iter_mm.utils.config import inference_model_cfg, load_config

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / 'configs' / 'iter' / 'iter_x4_tiny.py')


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """A randomly initialised tiny ITER model, its checkpoint, and a 12x10 RGB image file."""
    from mmagic.registry import MODELS

    init_default_scope('mmagic')
    tmp = tmp_path_factory.mktemp('apis')
    torch.manual_seed(0)
    model = MODELS.build(inference_model_cfg(load_config(TINY).model)).eval()
    ckpt = tmp / 'tiny.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    img = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    path = tmp / 'photo.png'
    cv2.imwrite(str(path), img)
    return model, ckpt, path, img


def test_mmagic_inferencer_runs_iter(tiny, tmp_path):
    """MMagicInferencer('iter', ...) builds ITER's inferencer and gives what model.restore gives."""
    from iter_mm.apis import MMagicInferencer

    model, ckpt, path, img = tiny
    sr = MMagicInferencer(
        'iter', model_config=TINY, model_ckpt=str(ckpt), device='cpu', extra_parameters=dict(seed=3, steps=2)
    )
    out = tmp_path / 'out' / 'photo.png'
    sr.infer(img=str(path), result_out_dir=str(out))
    written = cv2.imread(str(out))
    assert written.shape == (48, 40, 3)
    lq = torch.from_numpy(img[..., ::-1].astype(np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        expected = model.restore(lq, seed=3, steps=2)[0]
    expected = (expected.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()[..., ::-1]
    assert np.abs(written.astype(int) - expected.astype(int)).max() <= 1


def test_inferencer_refuses_unknown_parameters_missing_configs_and_ambiguous_arrays(tiny, tmp_path):
    """A misspelt extra parameter, a bad value or a config path that does not exist stop the construction; arrays
    are RGB uint8/uint16/float in [0, 1], and 0-255 floats or int64 pixels are refused, not turned white."""
    from iter_mm.apis import MMagicInferencer

    model, ckpt, path, img = tiny
    make = lambda config=TINY, **extra: MMagicInferencer(  # noqa: E731
        'iter', model_config=config, model_ckpt=str(ckpt), device='cpu', extra_parameters=extra
    )
    with pytest.raises(
        TypeError,
        match=r"unknown extra_parameters \['alfa'\]; valid: restoration options \[.*'alpha'"
        r".*loading options \['stage1_checkpoint', 'allow_pickle', 'vqgan'\]",
    ):
        make(alfa=0.5)
    with pytest.raises(ValueError, match='alpha must lie in'):
        make(alpha=1.5)
    for flag in ('false', 'no', 1):  # bool('false') is True: only a real bool may switch unpickling on
        with pytest.raises(TypeError, match='allow_pickle must be True or False'):
            make(allow_pickle=flag)
    missing = tmp_path / 'nowhere' / 'iter_x4_tiny.py'  # a file of that name exists in configs/iter
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        make(config=str(missing))
    sr = make(seed=3, steps=1)
    with pytest.raises(TypeError, match='alfa'):
        sr.infer(img=str(path), extra_parameters=dict(alfa=0.5))
    with pytest.raises(ValueError, match='apply when the model is loaded'):
        sr.infer(img=str(path), extra_parameters=dict(allow_pickle=True))
    rgb = np.ascontiguousarray(img[..., ::-1])  # the file was written by OpenCV from BGR pixels
    with pytest.raises(ValueError, match=r'got \[0, 255\]; divide 0-255 values by 255'):
        sr.infer(img=rgb.astype(np.float32))
    with pytest.raises(TypeError, match='unsupported pixel dtype int64'):
        sr.infer(img=rgb.astype(np.int64))
    _, from_path = sr.infer(img=str(path))
    for arr in (rgb, rgb.astype(np.float32) / 255):
        assert np.array_equal(sr.infer(img=arr)[1], from_path)
    _, out16 = sr.infer(img=rgb.astype(np.uint16) * 257)  # 16 bit in, 16 bit out
    assert out16.dtype == np.uint16 and np.abs(out16 / 257 - from_path).max() <= 0.51


def test_model_name_without_config_uses_the_registered_config():
    """``MMagicInferencer('iter')`` without ``model_config``: MMagic looks for the default config inside its own
    package; that path (and only that one) is mapped to ours."""
    from iter_mm.apis.inferencer import _CONFIGS, MMagicInferencer, _zoo_default_config

    for name, scale in (('iter', 4), ('iter_x4', 4), ('iter_x2', 2)):
        kwargs = MMagicInferencer._get_inferencer_kwargs(
            MMagicInferencer.__new__(MMagicInferencer), name, None, None, None, None, None
        )
        assert not Path(kwargs['config']).is_file()
        assert _zoo_default_config(kwargs['config']) == f'{_CONFIGS}/iter_x{scale}_realsr.py'
    assert _zoo_default_config('/nowhere/iter_x4_realsr.py') == '/nowhere/iter_x4_realsr.py'


TINY_RRDB = """
model = dict(type='BaseEditModel',
             generator=dict(type='RRDBNet', in_channels=3, out_channels=3, mid_channels=8, num_blocks=1,
                            growth_channels=4, upscale_factor=4),
             pixel_loss=dict(type='L1Loss', loss_weight=1.0),
             data_preprocessor=dict(type='DataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.]))
"""


def test_other_mmagic_tasks_are_untouched(tiny, tmp_path):
    """Through iter_mm.apis' task dispatcher (a subclass of MMagic's), MMagic's own tasks still build MMagic's
    inferencers, unknown tasks still fail as MMagic's do, and only ITER's task builds ITER's inferencer; MMagic's
    own dispatcher is untouched and does not know ITER's task."""
    from iter_mm.apis.inferencer import ITER_TASK, ITERInferencer
    from iter_mm.apis.inferencer import _Inferencers as Inferencers
    from mmagic.apis.inferencers import ImageSuperResolutionInferencer
    from mmagic.apis.inferencers import Inferencers as MMagicInferencers

    assert MMagicInferencers.__init__.__module__ == 'mmagic.apis.inferencers'
    with pytest.raises(ValueError, match='Unknown inferencer task'):
        MMagicInferencers(task=ITER_TASK)
    cfg = tmp_path / 'rrdb.py'
    cfg.write_text(TINY_RRDB)
    mmagic_sr = Inferencers('Image Super-Resolution', config=str(cfg), ckpt=None, device='cpu')
    assert type(mmagic_sr.inferencer) is ImageSuperResolutionInferencer
    assert mmagic_sr.task == 'Image Super-Resolution'
    with pytest.raises(ValueError, match='Unknown inferencer task'):
        Inferencers(task='no such task')
    ours = Inferencers(ITER_TASK, config=TINY, ckpt=str(tiny[1]), device='cpu')
    assert type(ours.inferencer) is ITERInferencer


def test_refinement_mosaic_layout():
    images = torch.rand(3, 3, 16, 8)
    keep = torch.tensor([0.0, 1.0, 1.0])[:, None, None].expand(3, 2, 1).clone()
    keep[1, 0, 0] = 0
    mosaic = refinement_mosaic(images, keep)
    assert mosaic.shape == (32, 24, 3) and mosaic.dtype == torch.uint8
    top = (images.clamp(0, 1) * 255).round().byte()
    assert torch.equal(mosaic[:16, 8:16], top[1].permute(1, 2, 0))
    assert (mosaic[16:, :8] == 0).all()  # step 0: nothing kept (black)
    assert (mosaic[16:24, 8:16] == 0).all() and (mosaic[24:, 8:16] == 255).all()  # upper token of step 1 dropped


def test_hook_adds_one_mosaic_per_image(tiny):
    from mmagic.structures import DataSample

    model = tiny[0]
    added = []
    runner = SimpleNamespace(
        model=model,
        iter=5,
        visualizer=SimpleNamespace(add_image=lambda name, image, step: added.append((name, image.shape, step))),
    )
    batch = dict(
        inputs=[torch.randint(0, 256, (3, 9, 7), dtype=torch.uint8) for _ in range(2)],
        data_samples=[DataSample(), DataSample()],
    )
    hook = RefinementVisualizationHook(max_images=2, sampling=dict(steps=3, seed=0))
    hook.after_val_iter(runner, 0, batch)
    steps = 3
    assert [a[0] for a in added] == ['val_refinement_0_0', 'val_refinement_0_1']
    assert added[0][1] == (2 * 9 * 4, steps * 7 * 4, 3) and added[0][2] == 5
    sparse = RefinementVisualizationHook(interval=2, sampling=dict(steps=3, seed=0))
    sparse.after_val_iter(runner, 1, batch)
    assert len(added) == 2  # batch 1 is not a multiple of the interval
    with pytest.raises(ValueError):
        RefinementVisualizationHook(interval=0)
