"""A wheel built from the repository carries the configs (``iter_mm/.mim/configs``) and the key mappings; installed
outside the repository, config names, ``configs/...`` paths and ``MMagicInferencer('iter')`` resolve from it."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> Path:
    """Build the wheel from a copy of the sources (the build leaves nothing in the checkout)."""
    src = tmp_path_factory.mktemp('src')
    for name in ('setup.py', 'README.md', 'model-index.yml'):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '*.egg-info')
    for name in ('iter_mm', 'configs', 'requirements'):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    out = tmp_path_factory.mktemp('dist')
    proc = subprocess.run(
        [
            sys.executable,
            '-m',
            'pip',
            'wheel',
            str(src),
            '--no-deps',
            '--no-build-isolation',
            '--no-index',
            '-q',
            '-w',
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheels = list(out.glob('iter_mm-*.whl'))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_carries_configs_and_mappings(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {str(p.relative_to(ROOT / 'configs')) for p in (ROOT / 'configs').rglob('*.py')}
    assert shipped and {f'iter_mm/.mim/configs/{p}' for p in shipped} <= names
    for kind in ('swinvqgan', 'iter_x2', 'iter_x4'):
        assert f'iter_mm/mappings/official_{kind}.json' in names


def test_wheel_carries_model_index_and_metafile(wheel):
    """``mim search`` / ``mim download`` read ``<package>/.mim/model-index.yml`` and the metafiles it imports."""
    import yaml

    zf = zipfile.ZipFile(wheel)
    names = set(zf.namelist())
    assert {
        'iter_mm/.mim/model-index.yml',
        'iter_mm/.mim/configs/iter/metafile.yml',
        'iter_mm/.mim/configs/iter/README.md',
    } <= names
    index = yaml.safe_load(zf.read('iter_mm/.mim/model-index.yml'))
    for imported in index['Import']:
        assert f'iter_mm/.mim/{imported}' in names, imported
    meta = yaml.safe_load(zf.read('iter_mm/.mim/configs/iter/metafile.yml'))
    listed = {m['Config'] for m in meta['Models']}
    shipped = {f'configs/iter/{p.name}' for p in (ROOT / 'configs' / 'iter').glob('*.py')}
    assert listed == shipped  # every shipped ITER / Swin-VQGAN config, and nothing else
    assert all(f'iter_mm/.mim/{c}' in names for c in listed)


def test_installed_package_resolves_configs_outside_the_repository(wheel, tmp_path):
    site = tmp_path / 'site'
    proc = subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--no-deps', '--no-index', '-q', '--target', str(site), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    script = """
import os.path as osp, sys
import iter_mm
from iter_mm.utils.config import load_config
from iter_mm.utils.config_paths import configs_root
site = sys.argv[1]
assert iter_mm.__file__.startswith(site), iter_mm.__file__
assert configs_root().startswith(site), configs_root()
assert load_config('configs/iter/iter_x4_realsr.py').model.type == 'ITERModel'
assert load_config('iter_mm::iter/swinvqgan_tiny.py').model.type == 'SwinVQGANModel'
assert load_config('iter::iter/iter_x2_realsr.py').model.generator.scale == 2
from iter_mm.utils.checkpoint import load_manifest
assert len(load_manifest('iter_x4')) == 1818
from iter_mm.apis import MMagicInferencer
cfg = MMagicInferencer.iter_models_cfg['iter']['settings'][0]['Config']
assert cfg.startswith(site) and osp.isfile(cfg), cfg
print('OK')
"""
    env = dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS='1')
    run = subprocess.run(
        [sys.executable, '-c', script, str(site)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0 and run.stdout.strip().endswith('OK'), run.stderr[-3000:]
