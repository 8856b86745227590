"""The light package face: ``import iter_mm`` registers everything (some on first look-up) without MMagic's
inferencer stack, diffusers or torchvision; pure-torch modules import without MMCV / MMEngine / MMagic."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(code: str, timeout: int = 600) -> str:
    env = dict(os.environ, OMP_NUM_THREADS='1')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_import_is_light_and_registers_everything():
    code = """
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
from mmengine.runner.checkpoint import CheckpointLoader
from iter_mm.engine.checkpoint_loader import load_from_local
assert CheckpointLoader._get_checkpoint_loader('x.pth') is load_from_local
print('ok')
"""
    assert run(code) == 'ok'


def test_pure_torch_modules_import_without_mmcv_mmengine_mmagic():
    code = """
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
    assert run(code) == 'ok'


def test_converter_imports_the_package_not_a_file():
    text = (ROOT / 'tools' / 'convert_official_ckpt.py').read_text()
    assert 'spec_from_file_location' not in text and 'from iter_mm.utils import checkpoint' in text


def test_cli_and_inferencer_print_results_only(tmp_path):
    """A plain tools/infer.py run and an Inferencer run print the result and nothing else (no registry-scope,
    visualiser, diffusers or bitsandbytes notes); --verbose lets library notes through again."""
    import cv2
    import numpy as np
    import torch
    from iter_mm.apis import init_model
    tiny = str(ROOT / 'configs' / 'iter' / 'iter_x4_tiny.py')
    ckpt = tmp_path / 'tiny.pth'
    torch.save({'state_dict': init_model(tiny, random_weights=True).state_dict()}, ckpt)
    cv2.imwrite(str(tmp_path / 'a.png'), np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8))
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env.pop('ITER_MM_VERBOSE', None)
    cli = [sys.executable, str(ROOT / 'tools' / 'infer.py'), str(tmp_path / 'a.png'), '-c', tiny, '-w', str(ckpt),
           '-o', str(tmp_path / 'out'), '--steps', '2', '--device', 'cpu']
    out = subprocess.run(cli, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0 and out.stderr == '', out.stderr[-2000:]
    assert out.stdout.strip() == f"1/1 image(s) written to {tmp_path / 'out'}"
    code = (f"from iter_mm.apis import MMagicInferencer\n"
            f"sr = MMagicInferencer('iter', model_config={tiny!r}, model_ckpt={str(ckpt)!r}, device='cpu',"
            f" extra_parameters=dict(steps=2))\n"
            f"print(sr.infer(img={str(tmp_path / 'a.png')!r}, result_out_dir={str(tmp_path / 'i.png')!r})[1].shape)")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=600)
    assert out.returncode == 0 and out.stderr == '', out.stderr[-2000:]
    assert out.stdout.strip() == '(48, 40, 3)'
    verbose = subprocess.run(cli + ['--overwrite', '--verbose'], capture_output=True, text=True, env=env,
                             timeout=600)
    assert verbose.returncode == 0 and verbose.stderr != ''
