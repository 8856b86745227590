"""Distributed training and testing with 2 real processes on CPU (gloo), through the user's own commands.

Every launch goes through ``tools/dist_train.sh`` / ``tools/dist_test.sh`` (torchrun) with the shipped tiny
configs, changed only in data paths, iteration counts and an added probe hook (tests/dist_probe.py) that
records what each rank did. Stage I (``SwinVQGANModel``: generator and discriminator in separate DDP wrappers)
trains first; stages II+III (``ITERModel``) train on its checkpoint. ``find_unused_parameters`` stays False
as in the shipped configs, so an unused parameter would stop these runs with DDP's error.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
TIMEOUT = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        PORT=str(_free_port()),
        OMP_NUM_THREADS='1',
        PYTHONHASHSEED='0',
        PYTHONPATH=f'{TESTS}{os.pathsep}{os.environ.get("PYTHONPATH", "")}',
    )
    env.pop('CUDA_VISIBLE_DEVICES', None)
    return env


def _run(cmd, check=True, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f'{cmd} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}')
    return proc


def _test_in_process(cfg: Path, ckpt: Path, work: Path, out: Path, monkeypatch) -> dict:
    """``tools/test.py CONFIG CKPT`` with one process, run in this interpreter (no probe hook), with one thread
    as the launched processes (OMP_NUM_THREADS=1): float32 reductions, and so pyiqa's NIQE, depend on it."""
    import runpy

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(
        sys,
        'argv',
        [
            'tools/test.py',
            str(cfg),
            str(ckpt),
            '--work-dir',
            str(work),
            '--out',
            str(out),
            '--cfg-options',
            'custom_hooks=[]',
        ],
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runpy.run_path(str(ROOT / 'tools' / 'test.py'), run_name='__main__')
    finally:
        torch.set_num_threads(threads)
    return json.loads(out.read_text())


def _records(probe: Path, rank: int, event: str = None) -> list:
    lines = (probe / f'rank{rank}.jsonl').read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    return [r for r in rows if event is None or r['event'] == event]


def _write_images(folder: Path, count: int, size: tuple, seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(count):
        base = np.stack([np.sin(xx / (3 + i + c) + c) * 70 + np.cos(yy / (4 + i)) * 50 + 128 for c in range(3)], -1)
        img = np.clip(base + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f'{i:03d}.png'), img)


def _write_config(path: Path, base: str, body: str) -> Path:
    path.write_text(
        f"_base_ = ['{ROOT / base}']\n"
        "custom_imports = dict(imports=['iter_mm', 'dist_probe'], allow_failed_imports=False)\n" + body
    )
    return path


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    """8 training images (one sampler epoch = 2 ranks x batch 2 x 2 iterations) and 5 validation images."""
    root = tmp_path_factory.mktemp('dist_data')
    _write_images(root / 'train', 8, (80, 80), seed=0)
    _write_images(root / 'val', 5, (128, 192), seed=1)  # odd count: the val sampler pads one rank
    return root


def _val_body(data: Path) -> str:
    return (
        f"val_dataloader = dict(num_workers=0, dataset=dict(data_root='{data / 'val'}', indices=None))\n"
        'test_dataloader = val_dataloader\n'
    )


@pytest.fixture(scope='module')
def stage1(data, tmp_path_factory) -> dict:
    """Stage I, 2 processes x batch 2, 4 iterations, validation at the end; checkpoints every 2 iterations; an
    EMA generator (MMagic's EMA under separate DDP wrappers), which validation and test use."""
    root = tmp_path_factory.mktemp('stage1')
    probe = root / 'probe'
    cfg = _write_config(
        root / 'cfg_stage1.py',
        'configs/iter/swinvqgan_tiny.py',
        (
            f"train_dataloader = dict(batch_size=2, dataset=dict(data_root='{data / 'train'}'))\n"
            + _val_body(data)
            + 'train_cfg = dict(max_iters=4, val_interval=4)\n'
            'default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))\n'
            'model = dict(is_use_ema=True)  # EMA generator, updated by the wrapper-aware hook, used for validation\n'
            f"custom_hooks = [dict(type='DistProbeHook', out_dir='{probe}'), dict(type='WrapperAwareEMAHook',"
            " module_keys=('generator_ema',), interval=1, interp_cfg=dict(momentum=0.5))]\n"
            "test_evaluator = dict(type='Evaluator', metrics=[dict(type='PSNR', crop_border=4, convert_to='Y'),"
            " dict(type='SSIM', crop_border=4, convert_to='Y'), dict(type='CodebookUsage', codebook_size=128)])\n"
            'val_evaluator = test_evaluator\n'
        ),
    )
    work = root / 'work'
    proc = _run(['bash', 'tools/dist_train.sh', str(cfg), '2', '--work-dir', str(work)])
    return dict(cfg=cfg, work=work, probe=probe, log=proc.stdout + proc.stderr)


def _stage2_config(root: Path, data: Path, vqgan_ckpt: Path, probe: Path) -> Path:
    metrics = (
        "[dict(type='PSNR', crop_border=4, convert_to='Y'), dict(type='SSIM', crop_border=4, convert_to='Y'),"
        " dict(type='NIQE', input_order='CHW', convert_to='Y', crop_border=0),"
        " dict(type='PyIQAMetric', metric_name='niqe', prefix='pyiqa'),"
        " dict(type='TokenAccuracy'), dict(type='EvaluatorPrecisionRecall', alpha=0.7),"
        " dict(type='CodebookUsage', codebook_size=128)]"
    )
    return _write_config(
        root / 'cfg_stage2.py',
        'configs/iter/iter_x4_tiny.py',
        (
            f"model = dict(stage1_checkpoint='{vqgan_ckpt}', val_cfg=dict(alpha=0.7, schedule='linear'))\n"
            f"train_dataloader = dict(batch_size=2, dataset=dict(data_root='{data / 'train'}'))\n"
            + _val_body(data)
            + 'train_cfg = dict(max_iters=6, val_interval=6)\n'
            'default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))\n'
            f"custom_hooks = [dict(type='DistProbeHook', out_dir='{probe}', kill_after_iter=3)]\n"
            f"val_evaluator = dict(type='Evaluator', metrics={metrics})\n"
            'test_evaluator = val_evaluator\n'
        ),
    )


@pytest.fixture(scope='module')
def stage2(stage1, data, tmp_path_factory) -> dict:
    """Stages II+III on the stage-I checkpoint: killed (SIGKILL to the whole job) after iteration 3, then
    ``--resume`` to iteration 6 with validation at the end."""
    root = tmp_path_factory.mktemp('stage2')
    probe, work = root / 'probe', root / 'work'
    cfg = _stage2_config(root, data, stage1['work'] / 'iter_4.pth', probe)
    cmd = ['bash', 'tools/dist_train.sh', str(cfg), '2', '--work-dir', str(work)]
    killed = subprocess.run(
        cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT, start_new_session=True
    )  # own process group: the probe kills torchrun + workers
    first = {r: _records(probe, r) for r in (0, 1)}
    (probe / 'rank0.jsonl').rename(probe / 'killed_rank0.jsonl')
    (probe / 'rank1.jsonl').rename(probe / 'killed_rank1.jsonl')
    resumed = _run(cmd + ['--resume', '--cfg-options', 'custom_hooks.0.kill_after_iter=None'])
    return dict(cfg=cfg, work=work, probe=probe, killed=killed, first=first, log=resumed.stdout + resumed.stderr)


# ---------------------------------------------------------------------------------------------------- stage I
def test_stage1_ranks_stay_bitwise_equal(stage1):
    """(1) After 4 optimiser steps of G and D, every parameter and buffer (incl. spectral-norm vectors) of
    both ranks is bitwise equal."""
    s0, s1 = (torch.load(stage1['probe'] / f'rank{r}_state.pth') for r in (0, 1))
    assert s0.keys() == s1.keys() and any('discriminator' in k for k in s0)
    unequal = [k for k in s0 if not torch.equal(s0[k], s1[k])]
    assert not unequal, unequal[:5]
    ema = [k for k in s0 if k.startswith('generator_ema.')]
    assert ema and any(not torch.equal(s0[k], s0['generator.' + k[len('generator_ema.') :]]) for k in ema)
    init = torch.load(stage1['work'] / 'iter_2.pth', map_location='cpu', weights_only=False)['state_dict']
    assert init.keys() == s0.keys()  # the 2-process checkpoint has the 1-process keys (no generator.module.*)
    changed = [k for k in init if k in s0 and s0[k].is_floating_point() and not torch.equal(init[k], s0[k])]
    assert changed, 'weights did not change between iteration 2 and 4'


def test_stage1_ranks_read_disjoint_samples(stage1, data):
    """(3) One sampler epoch (2 iterations x 2 ranks x batch 2 = 8 images): each image read exactly once."""
    paths = []
    for rank in (0, 1):
        rows = _records(stage1['probe'], rank, 'iter')
        assert [r['iter'] for r in rows] == [0, 1, 2, 3]
        paths += [p for r in rows[:2] for p in r['paths']]
    assert sorted(Path(p).name for p in paths) == sorted(p.name for p in (data / 'train').iterdir())


def test_stage1_only_rank0_writes(stage1):
    """(4) Checkpoints, the log file and visualiser scalars are written by rank 0 only."""
    writes = {r: [e['target'] for e in _records(stage1['probe'], r, 'file_write')] for r in (0, 1)}
    assert sorted(Path(p).name for p in writes[0]) == ['iter_2.pth', 'iter_4.pth']
    assert writes[1] == []
    starts = {r: _records(stage1['probe'], r, 'start')[0] for r in (0, 1)}
    assert starts[0]['world_size'] == starts[1]['world_size'] == 2
    assert len(starts[0]['log_files']) == 1 and starts[1]['log_files'] == []
    assert _records(stage1['probe'], 0, 'vis_scalars') and not _records(stage1['probe'], 1, 'vis_scalars')
    assert 'Distributed launcher: pytorch' in stage1['log'] or 'world_size' in stage1['log'].lower()


def test_stage1_validation_equals_single_process(stage1, tmp_path, monkeypatch):
    """(5) 2-process validation (5 images, one rank padded) gives the metrics of a 1-process test of the
    same checkpoint: PSNR, SSIM and the codebook histogram collected over ranks."""
    val = {r: _records(stage1['probe'], r, 'val')[0]['metrics'] for r in (0, 1)}
    assert val[0] == val[1]
    single = _test_in_process(
        stage1['cfg'], stage1['work'] / 'iter_4.pth', tmp_path / 'w', tmp_path / 'single.json', monkeypatch
    )
    assert set(single) == set(val[0]) and len(single) == 4
    for key, value in single.items():
        assert val[0][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


def test_stage1_resume_restores_both_networks_on_every_rank(stage1, tmp_path):
    """``--resume`` of stage I with 2 processes (G and D in separate DDP wrappers) continues from ``iter_4.pth``:
    at the start of the resumed run every parameter and buffer of both ranks equals the checkpoint's, bitwise.
    (Before the fix the wrapped networks silently kept their initial weights.)"""
    probe = tmp_path / 'probe'
    work = tmp_path / 'work'
    work.mkdir()
    for name in ('iter_4.pth', 'last_checkpoint'):  # a copy: the stage-II fixture reads the original work dir
        (work / name).write_bytes((stage1['work'] / name).read_bytes())
    (work / 'last_checkpoint').write_text(str(work / 'iter_4.pth'))
    proc = _run(
        [
            'bash',
            'tools/dist_train.sh',
            str(stage1['cfg']),
            '2',
            '--work-dir',
            str(work),
            '--resume',
            '--cfg-options',
            'train_cfg.max_iters=5',
            'train_cfg.val_interval=100',
            f'custom_hooks.0.out_dir={probe}',
        ]
    )
    assert 'do not match' not in proc.stdout + proc.stderr
    ckpt = torch.load(work / 'iter_4.pth', map_location='cpu', weights_only=False)['state_dict']
    for rank in (0, 1):
        assert _records(probe, rank, 'train_start')[0]['iter'] == 4
        assert [r['iter'] for r in _records(probe, rank, 'iter')] == [4]
        start = torch.load(probe / f'rank{rank}_train_start.pth')
        assert start.keys() == ckpt.keys()
        differ = [k for k in ckpt if not torch.equal(start[k], ckpt[k])]
        assert not differ, (rank, differ[:5])


# ----------------------------------------------------------------------------------------------- stages II+III
def test_stage2_kill_and_resume_continue_from_last_checkpoint(stage2):
    """(4) SIGKILL of the whole job after iteration 3: both ranks had run iterations 0-2 (iter_2.pth saved);
    ``--resume`` restarts both ranks at iteration 2 and finishes at 6 with equal weights."""
    assert stage2['killed'].returncode == -9  # torchrun itself was killed
    for rank in (0, 1):
        assert [r['iter'] for r in stage2['first'][rank] if r['event'] == 'iter'][:3] == [0, 1, 2]
        assert not [r for r in stage2['first'][rank] if r['event'] == 'train_end']
        assert _records(stage2['probe'], rank, 'train_start')[0]['iter'] == 2
        assert [r['iter'] for r in _records(stage2['probe'], rank, 'iter')] == [2, 3, 4, 5]
    written = sorted(Path(e['target']).name for e in _records(stage2['probe'], 0, 'file_write'))
    assert written == ['iter_4.pth', 'iter_6.pth'] and not _records(stage2['probe'], 1, 'file_write')
    s0, s1 = (torch.load(stage2['probe'] / f'rank{r}_state.pth') for r in (0, 1))
    assert all(torch.equal(s0[k], s1[k]) for k in s0)
    ckpt = torch.load(stage2['work'] / 'iter_6.pth', map_location='cpu', weights_only=False)
    assert ckpt['meta']['iter'] == 6
    assert all(torch.equal(ckpt['state_dict'][k], s0[k]) for k in ckpt['state_dict'])


def test_stage2_losses_finite_and_tokens_learnt(stage2):
    for rank in (0, 1):
        for row in _records(stage2['probe'], rank, 'iter_done'):
            assert all(np.isfinite(v) for v in row['losses'].values()), row


def test_stage2_validation_and_dist_test_equal_single_process(stage2, tmp_path, monkeypatch):
    """(5) Validation under 2 processes, ``dist_test.sh`` with 2 processes and ``tools/test.py`` with one
    give the same values for every metric: PSNR/SSIM/NIQE (MMagic), pyiqa NIQE, token accuracy, phi_e
    precision/recall, codebook usage."""
    val = {r: _records(stage2['probe'], r, 'val')[0]['metrics'] for r in (0, 1)}
    assert val[0] == val[1]
    ckpt = str(stage2['work'] / 'iter_6.pth')
    single_out, dist_out = tmp_path / 'single.json', tmp_path / 'dist.json'
    _run(
        [
            'bash',
            'tools/dist_test.sh',
            str(stage2['cfg']),
            ckpt,
            '2',
            '--work-dir',
            str(tmp_path / 'w2'),
            '--out',
            str(dist_out),
            '--cfg-options',
            'custom_hooks=[]',
        ]
    )
    single = _test_in_process(stage2['cfg'], Path(ckpt), tmp_path / 'w1', single_out, monkeypatch)
    dist = json.loads(dist_out.read_text())
    assert len(single) >= 8 and set(single) == set(dist) == set(val[0])
    for key, value in single.items():
        assert dist[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
        assert val[0][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


# ------------------------------------------------------------------------------- 2 x batch b == 1 x batch 2b
@pytest.fixture(scope='module')
def one_step(tmp_path_factory) -> Path:
    """tests/ddp_one_step.py once with 1 process (batch 4; in this process, on one thread as the launched ones)
    and once with 2 processes (batch 2 each)."""
    import ddp_one_step

    out = tmp_path_factory.mktemp('one_step')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ddp_one_step.run(out)
    finally:
        torch.set_num_threads(threads)
    _run(
        [
            sys.executable,
            '-m',
            'torch.distributed.run',
            '--nproc_per_node',
            '2',
            '--master_port',
            _env()['PORT'],
            'tests/ddp_one_step.py',
            str(out),
        ]
    )
    return out


@pytest.mark.parametrize('dtype,rel_tol,abs_tol', [('float32', 1e-3, 1e-6), ('float64', 1e-9, 1e-15)])
@pytest.mark.parametrize('stage', ['stage1', 'stage2'])
def test_two_processes_equal_one_process_with_double_batch(one_step, stage, dtype, rel_tol, abs_tol):
    """(2) One SGD step with 2 processes x batch 2 updates the weights as 1 process x batch 4: for every tensor,
    max|w_2proc - w_1proc| <= rel_tol * max|update_1proc| + abs_tol. In float32 the two differ by the summation
    order of the gradients (measured: median 4e-5 / 1e-6 of the update for stage I / II, at most 3e-3 on
    tensors whose update is ~1e-5); in float64 the same code agrees to ~1e-12, which shows the difference
    is rounding, not a wrong loss normalisation (a 2x error in any term would be off by ~1).

    Stage I: generator (VQ, L1, SSIM, hinge GAN) and discriminator steps. Stages II+III: E_l CE, phi_e's
    class-balanced CE (Eq. 9, counts summed over processes), phi_e's CE on refined tokens, phi_r's
    masked-fraction CE and the L1 on E_l's Gumbel decode; masks and Gumbel noise are the same global draws.
    SGD rather than Adam: Adam's first step is about lr * sign(grad), which turns rounding noise of near-zero
    gradients into full-size updates; SGD's update is the gradient itself. The ranks are bitwise equal.
    """
    folder = one_step / dtype
    single, init = (torch.load(folder / f'w1_r0_{stage}{s}.pth') for s in ('', '_init'))
    r0, r1 = (torch.load(folder / f'w2_r{r}_{stage}.pth') for r in (0, 1))
    assert single.keys() == r0.keys() == r1.keys() == init.keys()
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    init2 = torch.load(folder / f'w2_r0_{stage}_init.pth')
    assert all(torch.equal(init2[k], init[k]) for k in init), 'both runs must start from the same weights'
    assert next(iter(single.values())).dtype == getattr(torch, dtype)
    for key, ref in single.items():
        if ref.is_floating_point():
            update = (ref - init[key]).abs().max().item()
            diff = (r0[key] - ref).abs().max().item()
            assert diff <= rel_tol * update + abs_tol, (key, diff, update)
    groups = (
        ('generator.', 'discriminator.')
        if stage == 'stage1'
        else ('generator.lq_encoder.', 'generator.evaluator.', 'generator.refiner.')
    )
    for group in groups:  # every trainable network moved
        assert any(
            (single[k] - init[k]).abs().max() > 1e-4
            for k in single
            if k.startswith(group) and single[k].is_floating_point()
        ), group


# ------------------------------------------------------------------------------------------------------ Slurm
FAKE_SRUN = r"""#!/usr/bin/env bash
# Stand-in for srun on one machine: records its arguments, then starts --ntasks copies of the command with
# the variables Slurm gives each task.
ntasks=1
echo "$@" > "$FAKE_SRUN_LOG"
while [ $# -gt 0 ]; do
  case "$1" in
    --ntasks=*) ntasks="${1#*=}"; shift ;;
    -p) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
pids=()
for ((i = 0; i < ntasks; i++)); do
  SLURM_PROCID=$i SLURM_NTASKS=$ntasks SLURM_LOCALID=$i SLURM_NODELIST=localhost "$@" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc
"""


def test_slurm_test_script_runs_two_tasks(stage1, tmp_path):
    """``tools/slurm_test.sh`` in MMagic's form starts one task per GPU with ``--launcher=slurm``; on a CPU
    machine (srun replaced by a local stand-in, 2 tasks) the tasks form a gloo group from Slurm's variables
    and give the metrics of a 1-process test."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text(FAKE_SRUN)
    (bin_dir / 'srun').chmod(0o755)
    env = _env()
    env.update(
        PATH=f'{bin_dir}{os.pathsep}{env["PATH"]}',
        GPUS='2',
        FAKE_SRUN_LOG=str(tmp_path / 'srun.txt'),
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=env['PORT'],
    )
    out = tmp_path / 'slurm.json'
    proc = subprocess.run(
        [
            'bash',
            'tools/slurm_test.sh',
            'gpu',
            'iter-test',
            str(stage1['cfg']),
            str(stage1['work'] / 'iter_4.pth'),
            '--work-dir',
            str(tmp_path / 'w'),
            '--out',
            str(out),
            '--cfg-options',
            'custom_hooks=[]',
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    srun_args = (tmp_path / 'srun.txt').read_text()
    assert '-p gpu --job-name=iter-test --gres=gpu:2 --ntasks=2 --ntasks-per-node=2' in srun_args
    assert '--launcher=slurm' in srun_args
    val = _records(stage1['probe'], 0, 'val')[0]['metrics']
    slurm = json.loads(out.read_text())
    assert set(slurm) == set(val)
    for key, value in val.items():
        assert slurm[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


def test_slurm_scripts_name_their_arguments():
    for script in ('tools/slurm_train.sh', 'tools/slurm_test.sh'):
        proc = subprocess.run(['bash', script, 'only-one'], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 2 and 'usage: bash ' + script in proc.stderr
