"""tools/train.py and tools/test.py drive MMagic's own SR models; a killed run resumes without loss.

The runs are shared by the tests of this module and independent runs go in pairs, one process per core: the
reference run next to the run that gets killed, then the resume next to ``tools/test.py``."""

import json
import os
import os.path as osp
import runpy
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SRCNN = 'mmagic::srcnn/srcnn_x4k915_1xb16-1000k_div2k.py'
KILL_HOOK = """import os, signal
from mmengine.hooks import Hook
from mmagic.registry import HOOKS
@HOOKS.register_module()
class KillAtIter(Hook):
    priority = "LOWEST"
    def __init__(self, at):
        self.at = at
    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:
            os.kill(os.getpid(), signal.SIGKILL)
"""


def _start(args, pythonpath=None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONHASHSEED='0', OMP_NUM_THREADS='1')
    if pythonpath:
        env['PYTHONPATH'] = f'{pythonpath}{os.pathsep}{os.environ.get("PYTHONPATH", "")}'
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _together(*runs, timeout=600) -> list:
    """Wait for processes started together; returns ``(returncode, stdout + stderr)`` of each."""
    results = []
    for proc in runs:
        out, err = proc.communicate(timeout=timeout)
        results.append((proc.returncode, out + err))
    return results


def _check(result, what) -> str:
    code, log = result
    if code != 0:
        raise AssertionError(f'{what} failed ({code}):\n{log[-6000:]}')
    return log


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
        opts += [
            f'{split}.dataset.data_root={root}',
            f'{split}.dataset.data_prefix.img=lq',
            f'{split}.dataset.data_prefix.gt=gt',
            f'{split}.num_workers=0',
            f'{split}.persistent_workers=False',
        ]
    return opts + [
        'train_dataloader.dataset.ann_file=',
        'train_dataloader.batch_size=2',
        'train_dataloader.dataset.pipeline.3.gt_patch_size=16',
        'train_cfg.val_interval=1000',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.checkpoint.out_dir=None',
        'default_hooks.logger.interval=1',
    ]


def _test_options(root: Path) -> list:
    opts = []  # MMagic's SISR test config has three test sets (Set5, Set14, DIV2K): point each at ours
    for i in range(3):
        opts += [
            f'test_dataloader.{i}.dataset.data_root={root}',
            f'test_dataloader.{i}.dataset.data_prefix.img=lq',
            f'test_dataloader.{i}.dataset.data_prefix.gt=gt',
            f'test_dataloader.{i}.num_workers=0',
            f'test_dataloader.{i}.dataset.ann_file=',
            f'test_dataloader.{i}.persistent_workers=False',
        ]
    return opts


@pytest.fixture(scope='module')
def srcnn(tiny_pairs, tmp_path_factory) -> dict:
    """MMagic's zoo SRCNN config on the tiny folder, 4 iterations, checkpoints every 2 (seed 7):

    * ``ref``: uninterrupted;
    * ``killed``: the same config plus a hook that SIGKILLs the process after iteration 3, then ``--resume``;
    * ``tools/test.py`` on the reference run's ``iter_2.pth``.
    """
    root = tmp_path_factory.mktemp('srcnn')
    zoo_cfg = osp.join(
        os.path.dirname(__import__('mmagic').__file__), '.mim', 'configs', 'srcnn', 'srcnn_x4k915_1xb16-1000k_div2k.py'
    )
    (root / 'kill_hook.py').write_text(KILL_HOOK)
    (root / 'killed.py').write_text(
        f'_base_ = [{zoo_cfg!r}]\n'
        "custom_imports = dict(imports=['kill_hook'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='KillAtIter', at=3)]\n"
    )
    opts = _data_options(tiny_pairs) + ['train_cfg.max_iters=4', 'randomness.seed=7']
    ref, killed = root / 'ref', root / 'killed'
    ref_run, killed_run = _together(
        _start(['tools/train.py', zoo_cfg, '--work-dir', str(ref), '--cfg-options', *opts]),
        _start(
            ['tools/train.py', str(root / 'killed.py'), '--work-dir', str(killed), '--cfg-options', *opts],
            pythonpath=root,
        ),
    )
    _check(ref_run, 'reference run')
    after_kill = sorted(p.name for p in killed.glob('iter_*.pth'))
    metrics = root / 'metrics.json'
    resumed, tested = _together(
        _start(['tools/train.py', zoo_cfg, '--work-dir', str(killed), '--resume', '--cfg-options', *opts]),
        _start(
            [
                'tools/test.py',
                SRCNN,
                str(ref / 'iter_2.pth'),
                '--work-dir',
                str(root / 'test'),
                '--out',
                str(metrics),
                '--cfg-options',
                *_test_options(tiny_pairs),
            ]
        ),
    )
    return dict(
        ref=ref,
        killed=killed,
        killed_code=killed_run[0],
        after_kill=after_kill,
        resume_log=_check(resumed, 'resume'),
        test=tested,
        metrics=metrics,
    )


def test_train_mmagic_config_and_resume(srcnn):
    """An MMagic zoo config trains on a tiny folder; --resume continues at the next iteration."""
    assert sorted(p.name for p in srcnn['ref'].glob('iter_*.pth')) == ['iter_2.pth', 'iter_4.pth']
    log = srcnn['resume_log']
    assert 'resumed' in log.lower() and 'iter_2.pth' in log
    for work in (srcnn['ref'], srcnn['killed']):
        ckpt = torch.load(work / 'iter_4.pth', map_location='cpu', weights_only=False)
        assert ckpt['meta']['iter'] == 4


def test_killed_training_resumes_losslessly(srcnn):
    """SIGKILL after iteration 3, resume from iteration 2: the result equals an uninterrupted run."""
    assert srcnn['killed_code'] != 0 and srcnn['after_kill'] == ['iter_2.pth']
    a = torch.load(srcnn['ref'] / 'iter_4.pth', map_location='cpu', weights_only=False)
    b = torch.load(srcnn['killed'] / 'iter_4.pth', map_location='cpu', weights_only=False)
    assert a['meta']['iter'] == b['meta']['iter'] == 4
    for key, value in a['state_dict'].items():
        torch.testing.assert_close(b['state_dict'][key], value, rtol=0, atol=0, msg=key)
    exp_avg = [s['exp_avg'] for s in a['optimizer']['state'].values()]
    got = [s['exp_avg'] for s in b['optimizer']['state'].values()]
    assert exp_avg and len(got) == len(exp_avg)
    for x, y in zip(exp_avg, got):
        torch.testing.assert_close(y, x, rtol=0, atol=0)


def test_test_tool_reports_metrics(srcnn):
    """tools/test.py evaluates a checkpoint with the config's test evaluator and dumps the metrics."""
    code, log = srcnn['test']
    assert code == 0, log[-3000:]
    metrics = json.loads(srcnn['metrics'].read_text())
    assert any('PSNR' in k for k in metrics), metrics


def test_missing_config_is_a_clear_error(tmp_path, monkeypatch):
    """tools/train.py (run in this process) names the missing file, in one line (the library's MissingDataError)."""
    monkeypatch.setattr(sys, 'argv', ['tools/train.py', str(tmp_path / 'nope.py')])
    with pytest.raises(SystemExit, match='^error: config file not found: .*nope.py'):
        runpy.run_path(str(ROOT / 'tools' / 'train.py'), run_name='__main__')


def _save_model_checkpoint(config: str, path: Path, **model_overrides) -> Path:
    """A training-style checkpoint ({'meta', 'state_dict'}) of ``config``'s model with random weights."""
    from mmengine.config import Config

    import iter_mm  # noqa: F401
    from mmagic.registry import MODELS
    from mmagic.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    model_cfg = Config.fromfile(str(ROOT / config)).model
    model_cfg.update(model_overrides)
    torch.manual_seed(0)
    torch.save({'meta': {'iter': 1}, 'state_dict': MODELS.build(model_cfg).state_dict()}, path)
    return path


def _run_test_tool(config: str, ckpt: Path, work: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, 'argv', ['tools/test.py', config, str(ckpt), '--work-dir', str(work)])
    runpy.run_path(str(ROOT / 'tools' / 'test.py'), run_name='__main__')


@pytest.mark.parametrize(
    'config, ckpt_config, says',
    [
        ('configs/iter/swinvqgan_tiny.py', 'configs/iter/iter_x4_tiny.py', 'config builds a Swin-VQGAN'),
        ('configs/iter/iter_x4_tiny.py', 'configs/iter/swinvqgan_tiny.py', 'stage I only'),
    ],
    ids=['iter-file-on-stage1-config', 'stage1-file-on-iter-config'],
)
def test_test_tool_refuses_another_models_checkpoint(tmp_path, monkeypatch, config, ckpt_config, says):
    """tools/test.py loads strictly, like tools/infer.py: a file of the other stage ends with the loader's message
    instead of metrics of an untrained network (MMEngine's ``load_from`` only warned)."""
    overrides = dict(stage1_checkpoint=None) if 'iter_x4' in ckpt_config else {}  # no stage-I file needed to build
    ckpt = _save_model_checkpoint(ckpt_config, tmp_path / 'other.pth', **overrides)
    with pytest.raises(SystemExit, match=says) as err:
        _run_test_tool(config, ckpt, tmp_path / 'work', monkeypatch)
    assert str(err.value).startswith(f'error: {ckpt}')


def test_test_tool_loads_its_own_checkpoint_strictly(tmp_path, monkeypatch):
    """The model's own stage-I training checkpoint (with the discriminator, which testing drops) loads with no
    warning, bitwise; evaluation then runs on the config's held-out photos."""
    from mmengine.runner import Runner

    ckpt = _save_model_checkpoint('configs/iter/swinvqgan_tiny.py', tmp_path / 'own.pth')
    loaded = {}
    original = Runner.test

    def spy(runner):
        loaded.update(runner.model.state_dict())
        return {}  # the weights are what this test checks; evaluation is covered elsewhere

    monkeypatch.setattr(Runner, 'test', spy)
    try:
        _run_test_tool('configs/iter/swinvqgan_tiny.py', ckpt, tmp_path / 'work', monkeypatch)
    finally:
        monkeypatch.setattr(Runner, 'test', original)
    saved = torch.load(ckpt, weights_only=False)['state_dict']
    assert loaded and all(torch.equal(v, saved[k]) for k, v in loaded.items())
    assert not any(k.startswith('discriminator.') for k in loaded) and any(
        k.startswith('discriminator.') for k in saved
    )


class _Started(Exception):
    """Raised instead of building the Runner: the tool got past its checks."""


def test_fresh_run_refuses_a_work_dir_with_checkpoints(tmp_path, monkeypatch, capsys):
    """tools/train.py without --resume into a work dir of an earlier run stops before writing anything (MMEngine
    would overwrite iter_N.pth and last_checkpoint and keep the rest); --resume and an empty work dir go on."""
    from mmengine.runner import Runner

    work = tmp_path / 'work'
    work.mkdir()
    (work / 'iter_2.pth').write_bytes(b'earlier run')
    (work / 'last_checkpoint').write_text(str(work / 'iter_2.pth'))
    monkeypatch.chdir(ROOT)

    def from_cfg(cfg):
        raise _Started

    monkeypatch.setattr(Runner, 'from_cfg', staticmethod(from_cfg))

    def train(*extra):
        monkeypatch.setattr(sys, 'argv', ['tools/train.py', 'configs/iter/swinvqgan_tiny.py', '--work-dir', *extra])
        runpy.run_path(str(ROOT / 'tools' / 'train.py'), run_name='__main__')

    with pytest.raises(SystemExit, match=r'already holds checkpoints of an earlier run \(iter_2.pth\).*--resume'):
        train(str(work))
    assert (work / 'iter_2.pth').read_bytes() == b'earlier run'
    with pytest.raises(_Started):
        train(str(work), '--resume')
    with pytest.raises(_Started):
        train(str(tmp_path / 'new'))
    with pytest.raises(_Started), pytest.warns(UserWarning, match='no checkpoint in'):  # said, then a fresh start
        train(str(tmp_path / 'new'), '--resume')


def test_refused_override_is_one_line(tmp_path, monkeypatch):
    """A refused override ends tools/train.py with its message (exit status 1), not a traceback."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(
        sys,
        'argv',
        [
            'tools/train.py',
            'configs/iter/swinvqgan_tiny.py',
            '--work-dir',
            str(tmp_path / 'w'),
            '--cfg-options',
            'data_root=/my/photos',
        ],
    )
    with pytest.raises(
        SystemExit,
        match=r'^error: data_root: a top-level variable.*\(command line: cfg_options: '
        r'--cfg-options\)$',
    ):
        runpy.run_path(str(ROOT / 'tools' / 'train.py'), run_name='__main__')
    assert not (tmp_path / 'w').exists()
