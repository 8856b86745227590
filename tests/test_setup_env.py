"""tools/setup_env.sh's plan on a GPU node, run as ``--dry-run`` against a stand-in venv whose ``torch`` reports two
visible GPUs (none when CUDA_VISIBLE_DEVICES is empty): what it would build and install, with which environment."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / 'tools' / 'setup_env.sh'
PYTAG = f'cp{sys.version_info[0]}{sys.version_info[1]}'
FAKE_TORCH = """
import os, types
__version__ = {version!r}
version = types.SimpleNamespace(cuda={cuda!r}, hip=None)
def _count():
    return 0 if os.environ.get('CUDA_VISIBLE_DEVICES') == '' else int(os.environ.get('FAKE_GPUS', '2'))
cuda = types.SimpleNamespace(is_available=lambda: _count() > 0, device_count=_count)
"""


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def node(tmp_path):
    """A stand-in GPU node: a venv-like folder whose python sees a fake torch 2.14.1+cu130 (+ torchvision), an
    empty wheel cache and a bin/ folder put first on PATH (for fake nvidia-smi / nvcc)."""
    site = tmp_path / 'site'
    (site / 'torch').mkdir(parents=True)
    (site / 'torch' / '__init__.py').write_text(FAKE_TORCH.format(version='2.14.1+cu130', cuda='13.0'))
    (site / 'torchvision').mkdir()
    (site / 'torchvision' / '__init__.py').write_text("__version__ = '0.29.1'\n")
    (site / 'torchvision-0.29.1.dist-info').mkdir()
    (site / 'torchvision-0.29.1.dist-info' / 'METADATA').write_text('Name: torchvision\nVersion: 0.29.1\n')
    venv = tmp_path / 'venv'
    path = f'{shlex.quote(str(site))}${{PYTHONPATH:+:$PYTHONPATH}}'
    _executable(
        venv / 'bin' / 'python',
        f'#!/bin/sh\nPYTHONSAFEPATH=1 PYTHONPATH={path} exec {shlex.quote(sys.executable)} "$@"\n',
    )
    (tmp_path / 'bin').mkdir()
    return tmp_path


def plan(node: Path, **env: str) -> str:
    """Run the script's dry run on ``node`` and return its output."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(('ITER_MM_', 'CUDA_', 'FORCE_'))}
    full.update(
        PATH=f'{node / "bin"}:{full["PATH"]}', ITER_MM_VENV=str(node / 'venv'), ITER_MM_CACHE=str(node / 'cache')
    )
    full.update(env)
    proc = subprocess.run(
        ['bash', str(SCRIPT), '--dry-run'], check=False, cwd=ROOT, env=full, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def command_lines(out: str, word: str) -> list:
    return [ln for ln in out.splitlines() if ln.strip().startswith('would run:') and word in ln]


def cache_entry(node: Path, key: str, **info: str) -> Path:
    folder = node / 'cache' / 'wheels' / 'mmcv-2.1.0' / key
    folder.mkdir(parents=True)
    (folder / f'mmcv-2.1.0-{PYTAG}-{PYTAG}-linux_x86_64.whl').write_bytes(b'')
    (folder / 'BUILD_INFO').write_text(''.join(f'{k}={v}\n' for k, v in info.items()))
    return folder


def test_mmcv_builds_cpu_ops_with_gpus_hidden(node):
    out = plan(node, ITER_MM_TORCH='keep')
    assert 'GPUs visible to torch: 2' in out
    (build,) = command_lines(out, ' wheel -v ')
    assert ' CUDA_VISIBLE_DEVICES= ' in build and ' FORCE_CUDA=0 ' in build and ' MMCV_WITH_OPS=1 ' in build
    assert build.split('would run: ')[1].startswith('env ')
    assert 'inside the build environment: cuda.is_available() = False' in out
    assert f'torch2.14.1+cu130-{PYTAG}-cpu' in out


def test_mmcv_cuda_opt_in_keeps_gpus_and_checks_nvcc(node):
    cuda_home = node / 'cuda'
    _executable(cuda_home / 'bin' / 'nvcc', '#!/bin/sh\necho "Cuda compilation tools, release 13.0, V13.0.88"\n')
    out = plan(node, ITER_MM_TORCH='keep', ITER_MM_MMCV_CUDA='1', CUDA_HOME=str(cuda_home))
    (build,) = command_lines(out, ' wheel -v ')
    assert 'CUDA_VISIBLE_DEVICES' not in build and ' FORCE_CUDA=1 ' in build
    assert f'CUDA_HOME={cuda_home} ' in build
    assert 'inside the build environment: cuda.is_available() = True' in out
    assert f'torch2.14.1+cu130-{PYTAG}-cuda13.0' in out and 'WOULD STOP' not in out

    _executable(cuda_home / 'bin' / 'nvcc', '#!/bin/sh\necho "Cuda compilation tools, release 12.4, V12.4.131"\n')
    out = plan(node, ITER_MM_TORCH='keep', ITER_MM_MMCV_CUDA='1', CUDA_HOME=str(cuda_home))
    assert 'WOULD STOP HERE: nvcc is CUDA 12.4 but torch 2.14.1+cu130 is built for CUDA 13.0' in out


def test_torch_keep_installs_no_torch(node):
    out = plan(node, ITER_MM_TORCH='keep')
    assert 'keeping torch 2.14.1+cu130 and torchvision 0.29.1' in out
    installs = command_lines(out, ' install ')
    assert installs and not [ln for ln in installs if 'torch.txt' in ln or 'torch==' in ln]
    assert command_lines(out, 'requirements/pinned.txt')

    default = plan(node)
    assert command_lines(default, '-r requirements/torch.txt')
    named = plan(
        node,
        ITER_MM_TORCH='torch==2.14.1+cu126 torchvision==0.29.1+cu126',
        ITER_MM_TORCH_INDEX='https://download.pytorch.org/whl/cu126',
    )
    (line,) = command_lines(named, 'torch==2.14.1+cu126')
    assert 'torchvision==0.29.1+cu126' in line and '--index-url https://download.pytorch.org/whl/cu126' in line
    assert not command_lines(named, 'requirements/torch.txt')


def test_torch_keep_without_torch_is_refused(node):
    (node / 'site' / 'torch' / '__init__.py').write_text("raise ImportError('no torch here')\n")
    out = plan(node, ITER_MM_TORCH='keep')
    assert 'WOULD STOP HERE: ITER_MM_TORCH=keep, but' in out and 'cannot import torch' in out


def test_cached_wheel_only_for_same_kind_and_torch(node):
    other_torch = cache_entry(node, f'torch2.13.0+cu130-{PYTAG}-cpu', kind='cpu', torch='2.13.0+cu130', python=PYTAG)
    out = plan(node, ITER_MM_TORCH='keep')
    assert f'not reused: {other_torch}' in out and command_lines(out, ' wheel -v ')

    # the right folder, but its stamp says CUDA ops: rebuilt
    lying = cache_entry(node, f'torch2.14.1+cu130-{PYTAG}-cpu', kind='cuda', torch='2.14.1+cu130', python=PYTAG)
    out = plan(node, ITER_MM_TORCH='keep')
    assert f'not reused: {lying} (its BUILD_INFO says kind cuda' in out and command_lines(out, ' wheel -v ')
    assert 'reusing the cached wheel' not in out

    (lying / 'BUILD_INFO').write_text(f'kind=cpu\ntorch=2.14.1+cu130\npython={PYTAG}\n')
    out = plan(node, ITER_MM_TORCH='keep')
    assert f'reusing the cached wheel {lying}/mmcv-2.1.0-' in out and not command_lines(out, ' wheel -v ')
    (install,) = command_lines(out, '--force-reinstall')
    assert str(lying) in install
    # ... and never for the CUDA opt-in
    cuda_home = node / 'cuda'
    _executable(cuda_home / 'bin' / 'nvcc', '#!/bin/sh\necho "Cuda compilation tools, release 13.0, V13.0.88"\n')
    out = plan(node, ITER_MM_TORCH='keep', ITER_MM_MMCV_CUDA='1', CUDA_HOME=str(cuda_home))
    assert 'reusing the cached wheel' not in out and command_lines(out, ' wheel -v ')


@pytest.mark.parametrize('driver, too_old', [('535.104.05', True), ('580.159.04', False)])
def test_driver_too_old_for_torch_build(node, driver, too_old):
    _executable(
        node / 'bin' / 'nvidia-smi',
        f'#!/bin/sh\ncase "$*" in *driver_version*) echo {driver};; *) echo "GPU 0: H100"; echo "GPU 1: H100";; esac\n',
    )
    out = plan(node, ITER_MM_TORCH='keep')
    assert f'NVIDIA driver {driver} | GPUs listed by nvidia-smi: 2' in out
    assert (
        'DRIVER TOO OLD: torch 2.14.1+cu130 is built for CUDA 13.0, which needs NVIDIA driver >= 580.65.06;' in out
    ) == too_old


def test_browser_step_is_separate_and_skippable(node, tmp_path):
    if not (ROOT / 'tools' / 'setup_browser.sh').exists():
        pytest.skip('no tools/setup_browser.sh in this checkout')
    assert command_lines(plan(node, ITER_MM_TORCH='keep'), 'tools/setup_browser.sh')
    out = plan(node, ITER_MM_TORCH='keep', ITER_MM_BROWSER='0')
    assert 'skipped (ITER_MM_BROWSER=0)' in out and not command_lines(out, 'setup_browser')


@pytest.mark.parametrize('gpus', ['2', '1', '0'])
def test_device_train_check_plan(node, gpus):
    """The device script's dry run with a stand-in stack: what it would run on 2, 1 or no GPUs, and why not."""
    for module in ('mmcv', 'mmcv/ops', 'mmengine', 'mmagic', 'mmagic/models', 'iter_mm'):
        (node / 'site' / module).mkdir(parents=True, exist_ok=True)
        (node / 'site' / module / '__init__.py').write_text('')
    env = {k: v for k, v in os.environ.items() if not k.startswith(('CUDA_', 'DEVICE_CHECK'))}
    env.update(PYTHON=str(node / 'venv' / 'bin' / 'python'), FAKE_GPUS=gpus, ITERS='3')
    proc = subprocess.run(
        ['bash', str(ROOT / 'tools' / 'device_train_check.sh'), '--dry-run'],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    summary = dict(line.split(None, 1) for line in proc.stdout.split('== summary')[1].splitlines()[1:] if line)
    assert summary['stack'].startswith('PASS')
    assert 'train.py configs/iter/swinvqgan_tiny.py --cfg-options train_cfg.max_iters=3' in proc.stdout
    assert '/stage1/iter_3.pth --work-dir' in proc.stdout and '--amp' in proc.stdout
    assert 'dist_train.sh configs/iter/iter_x4_tiny.py 2 --cfg-options' in proc.stdout
    single = [summary[name] for name in ('stage1', 'stage1_amp', 'stage23', 'stage23_amp')]
    dist = [summary['dist_stage1'], summary['dist_stage23']]
    if gpus == '0':
        assert all(s == 'NOT RUN   no GPU visible to torch' for s in single + dist)
    else:
        assert all(s.strip() == 'WOULD RUN' for s in single)
        assert all(s.strip() == ('WOULD RUN' if gpus == '2' else 'NOT RUN   needs 2 GPUs, 1 visible') for s in dist)
