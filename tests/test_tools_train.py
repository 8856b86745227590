"""tools/train.py and tools/test.py drive MMagic's own SR models; a killed run resumes without loss."""
import os
import os.path as osp
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SRCNN = 'mmagic::srcnn/srcnn_x4k915_1xb16-1000k_div2k.py'


def _run(args, cwd, check=True):
    env = dict(os.environ, PYTHONHASHSEED='0', OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f'{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    return proc


@pytest.fixture(scope='module')
def tiny_pairs(tmp_path_factory) -> Path:
    """Six 32x32 GT images with their x4 bicubic LQ (8x8)."""
    root = tmp_path_factory.mktemp('pairs')
    (root / 'gt').mkdir()
    (root / 'lq').mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32]
    for i in range(6):
        base = np.sin(xx / (2 + i)) * 60 + np.cos(yy / (3 + i)) * 60 + 128
        img = np.clip(base[..., None] + rng.normal(0, 8, (32, 32, 3)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / 'gt' / f'{i:03d}.png'), img)
        cv2.imwrite(str(root / 'lq' / f'{i:03d}.png'), cv2.resize(img, (8, 8), interpolation=cv2.INTER_CUBIC))
    return root


def _data_options(root: Path) -> list:
    opts = []
    for split in ('train_dataloader', 'val_dataloader'):
        opts += [f'{split}.dataset.data_root={root}', f'{split}.dataset.data_prefix.img=lq',
                 f'{split}.dataset.data_prefix.gt=gt', f'{split}.num_workers=0',
                 f'{split}.persistent_workers=False']
    return opts + [
        'train_dataloader.dataset.ann_file=', 'train_dataloader.batch_size=2',
        'train_dataloader.dataset.pipeline.3.gt_patch_size=16', 'train_cfg.val_interval=1000',
        'default_hooks.checkpoint.interval=2', 'default_hooks.checkpoint.out_dir=None',
        'default_hooks.logger.interval=1']


@pytest.fixture(scope='module')
def trained_2_iters(tiny_pairs, tmp_path_factory) -> Path:
    """Work dir of a 2-iteration SRCNN run (MMagic's zoo config) on the tiny folder."""
    work = tmp_path_factory.mktemp('srcnn')
    _run(['tools/train.py', SRCNN, '--work-dir', str(work), '--cfg-options', *_data_options(tiny_pairs),
          'train_cfg.max_iters=2'], ROOT)
    return work


def test_train_mmagic_config_and_resume(tiny_pairs, trained_2_iters, tmp_path):
    """An MMagic zoo config trains on a tiny folder; --resume continues at the next iteration."""
    import shutil
    work = tmp_path / 'work'
    shutil.copytree(trained_2_iters, work)
    assert (work / 'iter_2.pth').is_file()
    proc = _run(['tools/train.py', SRCNN, '--work-dir', str(work), '--resume', '--cfg-options',
                 *_data_options(tiny_pairs), 'train_cfg.max_iters=4'], ROOT)
    log = proc.stdout + proc.stderr
    assert 'resumed' in log.lower() and 'iter_2.pth' in log
    ckpt = torch.load(work / 'iter_4.pth', map_location='cpu', weights_only=False)
    assert ckpt['meta']['iter'] == 4


def test_killed_training_resumes_losslessly(tiny_pairs, tmp_path):
    """SIGKILL after iteration 3, resume from iteration 2: the result equals an uninterrupted run."""
    zoo_cfg = osp.join(os.path.dirname(__import__('mmagic').__file__), '.mim', 'configs', 'srcnn',
                       'srcnn_x4k915_1xb16-1000k_div2k.py')
    (tmp_path / 'kill_hook.py').write_text(
        'import os, signal\n'
        'from mmengine.hooks import Hook\n'
        'from mmagic.registry import HOOKS\n'
        '@HOOKS.register_module()\n'
        'class KillAtIter(Hook):\n'
        '    priority = "LOWEST"\n'
        '    def __init__(self, at):\n'
        '        self.at = at\n'
        '    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):\n'
        '        if runner.iter + 1 == self.at:\n'
        '            os.kill(os.getpid(), signal.SIGKILL)\n')
    (tmp_path / 'killed.py').write_text(
        f"_base_ = [{zoo_cfg!r}]\n"
        "custom_imports = dict(imports=['kill_hook'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='KillAtIter', at=3)]\n")
    opts = _data_options(tiny_pairs) + ['train_cfg.max_iters=4', 'randomness.seed=7']
    os.environ['PYTHONPATH'] = f'{tmp_path}{os.pathsep}{os.environ.get("PYTHONPATH", "")}'

    ref, killed = tmp_path / 'ref', tmp_path / 'killed'
    _run(['tools/train.py', zoo_cfg, '--work-dir', str(ref), '--cfg-options', *opts], ROOT)
    proc = _run(['tools/train.py', str(tmp_path / 'killed.py'), '--work-dir', str(killed),
                 '--cfg-options', *opts], ROOT, check=False)
    assert proc.returncode != 0 and (killed / 'iter_2.pth').is_file() and not (killed / 'iter_4.pth').exists()
    _run(['tools/train.py', zoo_cfg, '--work-dir', str(killed), '--resume', '--cfg-options', *opts], ROOT)

    a = torch.load(ref / 'iter_4.pth', map_location='cpu', weights_only=False)
    b = torch.load(killed / 'iter_4.pth', map_location='cpu', weights_only=False)
    assert a['meta']['iter'] == b['meta']['iter'] == 4
    for key, value in a['state_dict'].items():
        torch.testing.assert_close(b['state_dict'][key], value, rtol=0, atol=0, msg=key)
    exp_avg = [s['exp_avg'] for s in a['optimizer']['state'].values()]
    got = [s['exp_avg'] for s in b['optimizer']['state'].values()]
    for x, y in zip(exp_avg, got):
        torch.testing.assert_close(y, x, rtol=0, atol=0)


def test_test_tool_reports_metrics(tiny_pairs, trained_2_iters, tmp_path):
    """tools/test.py evaluates a checkpoint with the config's test evaluator and dumps the metrics."""
    work = trained_2_iters
    out = tmp_path / 'metrics.json'
    test_opts = []  # MMagic's SISR test config has three test sets (Set5, Set14, DIV2K): point each at ours
    for i in range(3):
        test_opts += [f'test_dataloader.{i}.dataset.data_root={tiny_pairs}',
                      f'test_dataloader.{i}.dataset.data_prefix.img=lq',
                      f'test_dataloader.{i}.dataset.data_prefix.gt=gt', f'test_dataloader.{i}.num_workers=0',
                      f'test_dataloader.{i}.dataset.ann_file=',
                      f'test_dataloader.{i}.persistent_workers=False']
    proc = _run(['tools/test.py', SRCNN, str(work / 'iter_2.pth'), '--work-dir', str(tmp_path), '--out', str(out),
                 '--cfg-options', *test_opts], ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json
    metrics = json.loads(out.read_text())
    assert any('PSNR' in k for k in metrics), metrics


def test_missing_config_is_a_clear_error(tmp_path):
    proc = _run(['tools/train.py', str(tmp_path / 'nope.py')], ROOT, check=False)
    assert proc.returncode != 0 and 'config file not found' in proc.stderr
