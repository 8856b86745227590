"""RestoreOptions: the sampling / restoration defaults are written once and every consumer derives from them."""

import argparse
import dataclasses
import inspect
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from iter_mm.models import sampling
from iter_mm.models.options import DEFAULTS, VALIDATION_OVERRIDES, RestoreOptions, add_restore_arguments, given_options

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / 'configs' / 'iter' / 'iter_x4_tiny.py')


def test_defaults_are_the_authors_and_checked():
    assert (DEFAULTS.alpha, DEFAULTS.steps, DEFAULTS.schedule, DEFAULTS.seed) == (0.7, 8, 'linear', 0)
    assert DEFAULTS.max_pixels == 720 * 720 and DEFAULTS.tile is None and DEFAULTS.dtype == 'fp32'
    val = RestoreOptions.validation()
    assert (val.alpha, val.schedule) == (0.5, 'cosine') and VALIDATION_OVERRIDES == dict(alpha=0.5, schedule='cosine')
    assert RestoreOptions.validation(alpha=0.3).alpha == 0.3
    with pytest.raises(TypeError, match=r"unknown sampling option\(s\) \['alpah'\]"):
        DEFAULTS.replace(alpah=0.5)
    for bad in (
        dict(alpha=1.5),
        dict(steps=0),
        dict(schedule='cubic'),
        dict(tile=0),
        dict(max_pixels=0),
        dict(tile_overlap=-1),
        dict(dtype='int8'),
    ):
        with pytest.raises(ValueError):
            DEFAULTS.replace(**bad)


def test_adaptive_refine_defaults_come_from_the_options():
    params = inspect.signature(sampling.adaptive_refine).parameters
    for name, value in DEFAULTS.sampling().items():
        assert params[name].default == value, name


def test_model_cfgs_are_the_options():
    from iter_mm.apis import init_model

    model = init_model(TINY, random_weights=True)
    assert model.test_cfg == DEFAULTS.as_dict()
    assert model.val_cfg == RestoreOptions.validation().as_dict()
    assert model.options('val', steps=3) == RestoreOptions.validation(steps=3)


def test_inferencer_parameters_are_the_options():
    from iter_mm.apis import ITERInferencer

    assert set(RestoreOptions.names()) <= set(ITERInferencer.extra_parameters)
    assert all(ITERInferencer.extra_parameters[k] is None for k in RestoreOptions.names())


def test_cli_flags_are_the_options():
    p = argparse.ArgumentParser()
    add_restore_arguments(p)
    flags = {a.dest for a in p._actions if a.dest != 'help'}
    assert flags == set(RestoreOptions.names())
    args = p.parse_args(
        [
            '--alpha',
            '0.3',
            '--tile-overlap',
            '8',
            '--max-pixels',
            '0',
            '--color-correction',
            '--dtype',
            'bf16',
            '--seed',
            '4',
        ]
    )
    assert given_options(args) == dict(
        alpha=0.3, tile_overlap=8, max_pixels=None, color_correction=True, dtype='bf16', seed=4
    )
    assert given_options(p.parse_args([])) == {}  # nothing given: the config's test_cfg decides
    with pytest.raises(SystemExit):
        p.parse_args(['--schedule', 'cubic'])


def test_cli_applies_dtype_once_through_the_options(tmp_path):
    """tools/infer.py's file restoration passes every given option, dtype included, to model.restore and nothing
    else (no autocast of its own)."""
    import cv2
    import numpy as np

    from iter_mm.apis.restore_files import restore_file

    seen = []

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def restore(self, lq, **options):
            seen.append((torch.is_autocast_enabled('cpu'), options))
            return torch.nn.functional.interpolate(lq, scale_factor=4)

    cv2.imwrite(str(tmp_path / 'x.png'), np.zeros((3, 5, 3), np.uint8))
    restore_file(Model(), str(tmp_path / 'x.png'), str(tmp_path / 'y.png'), dict(dtype='bf16', tile=32))
    assert seen == [(False, dict(dtype='bf16', tile=32))]
    for tool in ('infer', 'compare_sr'):
        assert 'autocast_context' not in (ROOT / 'tools' / f'{tool}.py').read_text()


def test_hook_shows_the_restoration_of_its_loop(monkeypatch):
    """In validation the hook restores with val_cfg, in test with test_cfg, and draws what restore returns."""
    from iter_mm.apis import init_model
    from iter_mm.engine.hooks import RefinementVisualizationHook
    from mmagic.structures import DataSample

    torch.manual_seed(0)
    model = init_model(TINY, random_weights=True)
    calls, added = [], []
    orig = model.restore

    def spy(lq, **kw):
        res = orig(lq, **kw)
        calls.append((kw, res))
        return res

    monkeypatch.setattr(model, 'restore', spy)
    runner = SimpleNamespace(
        model=model, iter=0, visualizer=SimpleNamespace(add_image=lambda name, image, step: added.append(image))
    )
    batch = dict(inputs=[torch.randint(0, 256, (3, 9, 7), dtype=torch.uint8)], data_samples=[DataSample()])
    hook = RefinementVisualizationHook(sampling=dict(steps=3))
    hook.after_val_iter(runner, 0, batch)
    hook.after_test_iter(runner, 0, batch)
    assert [c[0]['loop'] for c in calls] == ['val', 'test']
    assert all(c[0]['return_intermediates'] and c[0]['steps'] == 3 for c in calls)
    val_res = calls[0][1]
    # the mosaic's last decoded step is the validated image (no colour correction in val_cfg)
    last = (val_res.step_images[0, -1].clamp(0, 1) * 255).round().byte().permute(1, 2, 0)
    h, w = last.shape[:2]
    assert torch.equal(torch.from_numpy(added[0])[:h, -w:], last)
    assert torch.allclose(val_res.step_images[0, -1], val_res.image[0])
    with pytest.raises(TypeError, match='unknown sampling option'):
        RefinementVisualizationHook(sampling=dict(temperature=1))


def test_restore_returns_intermediates_cropped_to_the_input():
    from iter_mm.apis import init_model

    torch.manual_seed(0)
    model = init_model(TINY, random_weights=True)
    lq = torch.rand(2, 3, 9, 7)
    res = model.restore(lq, steps=3, alpha=1.0, return_intermediates=True)
    assert res.step_images.shape == (2, 3, 3, 36, 28) and res.step_keep.shape[:2] == (2, 3)
    assert res.step_keep.shape[-2:] == res.tokens.shape[-2:] == (5, 4)
    assert torch.equal(res.image, model.restore(lq, steps=3, alpha=1.0))  # the same restoration
    with pytest.raises(ValueError, match='whole images only'):
        model.restore(torch.rand(1, 3, 40, 40), tile=16, return_intermediates=True)
    assert dataclasses.is_dataclass(res)
