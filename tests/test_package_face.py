"""The light package face: ``import iter_mm`` registers everything (some on first look-up) without MMagic's
inferencer stack, diffusers or torchvision; pure-torch modules import without MMCV / MMEngine / MMagic. (That
nothing is patched: tests/test_no_import_patches.py.)

Every check needs a fresh interpreter; the module's subprocesses run two at a time (tests/side_by_side.py)."""

import os
import re
import sys
from pathlib import Path

import pytest
from side_by_side import run_side_by_side

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / 'configs' / 'iter' / 'iter_x4_tiny.py')

LIGHT_IMPORT = """
import sys
import iter_mm
heavy = [m for m in ('mmagic.apis', 'diffusers', 'mmagic.models', 'mmagic.evaluation', 'torchvision')
         if m in sys.modules]
assert not heavy, heavy
from mmagic import registry as r
from mmengine.registry import init_default_scope
init_default_scope('mmagic')
found = {name: reg.get(name) is not None for reg, name in (
    (r.MODELS, 'ITERModel'), (r.MODELS, 'SwinVQGANModel'), (r.MODELS, 'ITERNet'), (r.MODELS, 'LPIPSLoss'),
    (r.METRICS, 'PyIQAMetric'), (r.METRICS, 'TokenAccuracy'), (r.DATASETS, 'SkimagePhotoDataset'),
    (r.TRANSFORMS, 'BSRGANDegradation'), (r.HOOKS, 'MetricsRecorderHook'), (r.HOOKS, 'RefinementVisualizationHook'),
    (r.OPTIM_WRAPPERS, 'AutocastOptimWrapper'))}
assert all(found.values()), found
from mmagic.registry import RUNNERS
assert RUNNERS.get('ITERRunner') is not None
print('light: ok')
# MMagic's inferencer stack: not imported (above); iter_mm.apis' MMagicInferencer is a subclass that knows 'iter'
from mmagic.apis.inferencers import Inferencers
before = Inferencers.__init__
from iter_mm.apis import MMagicInferencer
assert Inferencers.__init__ is before and 'iter' in MMagicInferencer.inference_supported_models
print('inferencers: ok')
"""

PURE_TORCH = """
import sys, warnings
for name in ('mmcv', 'mmengine', 'mmagic'):
    sys.modules[name] = None  # as if not installed
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    import iter_mm
assert any('not registered' in str(w.message) for w in caught)
from iter_mm.models import sampling, inference, options
from iter_mm.models.archs import swin, SwinLayers
from iter_mm.utils import padding, checkpoint, tiling, color
import torch
layer = SwinLayers(8, 16, 1, depth=1, window_size=4, num_heads=2, input_resolution=(4, 4))
assert layer(torch.rand(1, 8, 4, 4)).shape == (1, 8, 4, 4)
print('ok')
"""


@pytest.fixture(scope='module')
def runs(tmp_path_factory) -> dict:
    """Every subprocess of this module: the two import checks; a plain tools/infer.py run, an Inferencer run
    and a ``--verbose`` tools/infer.py run on a random tiny checkpoint and a 12x10 image."""
    import cv2
    import numpy as np
    import torch

    from iter_mm.apis import init_model

    tmp = tmp_path_factory.mktemp('face')
    ckpt = tmp / 'tiny.pth'
    torch.save({'state_dict': init_model(TINY, random_weights=True).state_dict()}, ckpt)
    cv2.imwrite(str(tmp / 'a.png'), np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8))
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env.pop('ITER_MM_VERBOSE', None)

    def cli(out, *extra):
        return [
            sys.executable,
            str(ROOT / 'tools' / 'infer.py'),
            str(tmp / 'a.png'),
            '-c',
            TINY,
            '-w',
            str(ckpt),
            '-o',
            str(out),
            '--steps',
            '2',
            '--device',
            'cpu',
            *extra,
        ]

    inferencer = (
        f'from iter_mm.apis import MMagicInferencer\n'
        f"sr = MMagicInferencer('iter', model_config={TINY!r}, model_ckpt={str(ckpt)!r}, device='cpu',"
        f' extra_parameters=dict(steps=2))\n'
        f'print(sr.infer(img={str(tmp / "a.png")!r}, result_out_dir={str(tmp / "i.png")!r})[1].shape)'
    )
    jobs = dict(  # longest first
        light=dict(args=[sys.executable, '-c', LIGHT_IMPORT], cwd=ROOT, env=env),
        cli=dict(args=cli(tmp / 'out'), env=env),
        inferencer=dict(args=[sys.executable, '-c', inferencer], env=env, cwd=tmp),
        verbose=dict(args=cli(tmp / 'out_verbose', '--verbose'), env=env),
        pure=dict(args=[sys.executable, '-c', PURE_TORCH], cwd=ROOT, env=env),
    )
    results = run_side_by_side(jobs)
    results['out'] = tmp / 'out'
    return results


def _last_line(proc) -> str:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def test_import_is_light_and_registers_everything(runs):
    assert 'light: ok' in runs['light'].stdout.splitlines(), runs['light'].stderr[-3000:]


def test_import_iter_mm_leaves_mmagic_inferencers_alone(runs):
    """`import iter_mm` does not import MMagic's inferencer stack; iter_mm.apis' Inferencer leaves it as it is."""
    assert _last_line(runs['light']) == 'inferencers: ok'


def test_pure_torch_modules_import_without_mmcv_mmengine_mmagic(runs):
    assert _last_line(runs['pure']) == 'ok'


def test_converter_imports_the_package_not_a_file():
    text = (ROOT / 'tools' / 'convert_official_ckpt.py').read_text()
    assert 'spec_from_' + 'file_location' not in text and 'from iter_mm.utils.checkpoint import convert_file' in text


def test_cli_and_inferencer_print_results_only(runs):
    """A plain tools/infer.py run and an Inferencer run print the result and nothing else (no registry-scope,
    visualiser, diffusers or bitsandbytes notes); --verbose lets library notes through again."""
    out = runs['cli']
    assert out.returncode == 0 and out.stderr == '', out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()  # redirected: one line per image, then the total
    assert len(lines) == 2 and re.fullmatch(r'\[1/1\] .*a\.png: 10x12 -> 40x48, [0-9.]+ s', lines[0]), lines
    assert lines[1] == f'1/1 image(s) written to {runs["out"]}'
    out = runs['inferencer']
    assert out.returncode == 0 and out.stderr == '', out.stderr[-2000:]
    assert out.stdout.strip() == '(48, 40, 3)'
    verbose = runs['verbose']
    assert verbose.returncode == 0 and verbose.stderr != ''
