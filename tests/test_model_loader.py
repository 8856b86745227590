"""The one model loader (iter_mm.apis.init_model) and every front end that uses it: the CLI (tools/infer.py and its
library, iter_mm.apis.restore_files), MMagic's Inferencer and the SR comparison (tools/compare_sr.py,
iter_mm.evaluation.sr_compare) accept the same files and refuse the wrong ones with the same error."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from tool_runner import error_line, run_tool

from iter_mm.apis.model_loader import CheckpointMismatchError, init_model
from iter_mm.utils.checkpoint import ours_to_official

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / 'configs' / 'iter' / 'iter_x4_tiny.py')
X2 = {'model.generator.scale': 2, 'model.generator.lq_encoder.scale': 2}


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('loader')
    torch.manual_seed(0)
    model = init_model(TINY, random_weights=True)
    net = model.generator.state_dict()
    vq = model.generator.vqgan.state_dict()
    official = ours_to_official(net)
    f = dict(
        ours=tmp / 'ours.pth',
        official=tmp / 'ITER_x4.pth',
        official_novq=tmp / 'ITER_x4_novq.pth',
        official_vq=tmp / 'ITER_swinvqgan.pth',
        vqgan_only=tmp / 'stage1.pth',
        x2=tmp / 'x2.pth',
        random=tmp / 'random.pth',
        training=tmp / 'training.pth',
        bare=tmp / 'bare.pth',
        truncated=tmp / 'truncated.pth',
        text=tmp / 'text.pth',
    )
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, f['ours'])
    torch.save(net, f['bare'])
    torch.save({'params': official}, f['official'])
    torch.save({'params': {k: v for k, v in official.items() if not k.startswith('vqgan.')}}, f['official_novq'])
    torch.save({'params_ema': ours_to_official(vq)}, f['official_vq'])
    torch.save({'state_dict': {'generator.' + k: v for k, v in vq.items()}}, f['vqgan_only'])
    torch.save({'state_dict': init_model(TINY, random_weights=True, cfg_options=dict(X2)).state_dict()}, f['x2'])
    torch.save({'state_dict': {'backbone.weight': torch.zeros(3, 3)}}, f['random'])
    from mmengine.logging import HistoryBuffer

    torch.save({'state_dict': model.state_dict(), 'message_hub': {'log': HistoryBuffer()}}, f['training'])
    f['truncated'].write_bytes(f['ours'].read_bytes()[:100_000])
    f['text'].write_text('not a checkpoint\n')
    inp = tmp / 'in'
    inp.mkdir()
    cv2.imwrite(str(inp / 'a.png'), np.random.default_rng(0).integers(0, 256, (24, 48, 3), dtype=np.uint8))
    f = {k: str(v) for k, v in f.items()}
    f.update(tmp=tmp, inp=inp, model=model)
    return f


def loader_error(path, **kw):
    with pytest.raises(CheckpointMismatchError) as info:
        init_model(TINY, path, **kw)
    return str(info.value)


# ------------------------------------------------------------------ the loader itself
def test_loader_accepts_every_layout_with_equal_weights(files):
    ref = files['model'].state_dict()
    for key, kw in (
        ('ours', {}),
        ('bare', {}),
        ('official', {}),
        ('official_novq', dict(stage1_checkpoint=files['official_vq'])),
        ('training', dict(allow_pickle=True)),
    ):
        model = init_model(TINY, files[key], **kw)
        assert model.vqgan_loaded and not model.training, key
        got = model.state_dict()
        assert got.keys() == ref.keys() and all(torch.equal(got[k], ref[k]) for k in ref), key


def test_loader_refuses_wrong_files_with_clear_errors(files):
    assert 'Swin-VQGAN checkpoint (stage I only' in loader_error(files['vqgan_only'])
    assert 'needs a full ITER checkpoint' in loader_error(files['vqgan_only'])
    assert 'ITER x2 (with vqgan.*) checkpoint, but the config builds an ITER x4 model' in loader_error(files['x2'])
    assert 'not an ITER or Swin-VQGAN checkpoint' in loader_error(files['random'])
    assert 'ITER_swinvqgan.pth' in loader_error(files['official_novq'])  # names the missing VQGAN file
    pickled = loader_error(files['training'])  # pickled objects: only when asked for
    assert 'holds pickled Python objects' in pickled and 'HistoryBuffer' in pickled and '\x1b' not in pickled
    for option in ('allow_pickle=True', "the Inferencer's extra_parameters", 'weights.pth'):
        assert option in pickled
    assert '--' not in pickled  # the library names its arguments; each tool adds its flag (error.arguments)
    assert "stage1_checkpoint='ITER_swinvqgan.pth'" in loader_error(files['official_novq'])
    for name, argument in (('training', 'allow_pickle'), ('official_novq', 'stage1_checkpoint')):
        with pytest.raises(CheckpointMismatchError) as info:
            init_model(TINY, files[name])
        assert info.value.arguments == (argument,)
    # a stage-I file with a file that holds its own VQGAN would silently replace those weights
    assert 'holds its own VQGAN weights (vqgan.*)' in loader_error(
        files['official'], stage1_checkpoint=files['official_vq']
    )
    with pytest.raises(ValueError, match='no checkpoint given'):
        init_model(TINY)
    with pytest.raises(FileNotFoundError, match='not found'):
        init_model(TINY, files['ours'] + '.missing')


@pytest.mark.parametrize('broken', ['truncated', 'text'])
def test_loader_calls_corrupt_files_unreadable_without_the_pickle_hint(files, broken):
    """A truncated checkpoint or another file named .pth is not readable; loading it unsafely would not help."""
    for allow_pickle in (False, True):
        error = loader_error(files[broken], allow_pickle=allow_pickle)
        assert f'cannot read checkpoint {files[broken]}: not a readable PyTorch checkpoint' in error
        assert 'pickle' not in error.replace('UnpicklingError', '') and 'unsafe' not in error


def test_loader_refuses_missing_and_misshapen_tensors(files):
    sd = files['model'].state_dict()
    dropped = dict(sd)
    dropped.pop(next(k for k in sd if 'refiner' in k))
    with pytest.raises(CheckpointMismatchError, match='1 missing'):
        init_model(TINY, {'state_dict': dropped})
    extra = dict(sd, **{'generator.refiner.extra': torch.zeros(1)})
    with pytest.raises(CheckpointMismatchError, match='1 unexpected'):
        init_model(TINY, {'state_dict': extra})


# ------------------------------------------------------------------ the front ends
def run_cli(files, ckpt, out, vqgan=None):
    """What tools/infer.py does with each file: the strict loader, then restore_file (iter_mm.apis.restore_files)."""
    from iter_mm.apis.restore_files import load_restorer, restore_file

    model = load_restorer(TINY, ckpt, torch.device('cpu'), stage1_checkpoint=vqgan)
    os.makedirs(out, exist_ok=True)
    restore_file(model, str(files['inp'] / 'a.png'), str(Path(out) / 'a.png'), dict(steps=2))


def run_inferencer(files, ckpt, out, **extra):
    from iter_mm.apis import MMagicInferencer

    sr = MMagicInferencer(
        'iter', model_config=TINY, model_ckpt=ckpt, device='cpu', extra_parameters=dict(steps=2, **extra)
    )
    sr.infer(img=str(files['inp'] / 'a.png'), result_out_dir=str(Path(out) / 'a.png'))


def run_compare(files, ckpt, out):
    """What tools/compare_sr.py does: build_sr_function, then SRComparison."""
    from iter_mm.apis.mmagic_models import build_sr_function
    from iter_mm.evaluation.sr_compare import SRComparison, build_metrics

    fn = build_sr_function('iter', TINY, ckpt, 4, restore_opts=dict(steps=2))
    SRComparison(str(files['inp']), str(out), save_images=True).run(
        dict(iter=fn), build_metrics(['niqe'], 0, {}, False)
    )


FRONT_ENDS = dict(cli=run_cli, inferencer=run_inferencer, compare=run_compare)


@pytest.mark.parametrize('front_end', sorted(FRONT_ENDS))
@pytest.mark.parametrize('wrong', ['vqgan_only', 'x2'])
def test_front_ends_refuse_wrong_files_with_the_loaders_error(files, tmp_path, front_end, wrong):
    expected = loader_error(files[wrong])
    with pytest.raises((SystemExit, ValueError)) as info:
        FRONT_ENDS[front_end](files, files[wrong], tmp_path / 'out')
    assert expected in str(info.value)
    assert not list(tmp_path.glob('out/**/*.png'))  # nothing written


def test_command_lines_end_with_the_loaders_error(files, tmp_path):
    """tools/infer.py and tools/compare_sr.py print the loader's message as their one error line, write nothing."""
    expected = loader_error(files['x2'])
    infer = run_tool('infer', files['inp'], '-c', TINY, '-w', files['x2'], '-o', tmp_path / 'cli', '--device', 'cpu')
    compare = run_tool(
        'compare_sr',
        '--input',
        files['inp'],
        '--out',
        tmp_path / 'compare',
        '--model',
        f'iter={TINY}:{files["x2"]}',
        '--metrics',
        'niqe',
        '--device',
        'cpu',
    )
    for proc in (infer, compare):
        assert expected in error_line(proc)
    assert not list(tmp_path.glob('**/*.png'))


def test_front_ends_accept_the_authors_file(files, tmp_path):
    """The authors' released layout (params, token_refine_net.*, generator.* aliases) works directly, and gives
    the same pixels as our checkpoint of the same weights."""
    run_cli(files, files['ours'], tmp_path / 'ours')
    ref = cv2.imread(str(tmp_path / 'ours' / 'a.png'))
    run_cli(files, files['official'], tmp_path / 'cli')
    done = run_tool(
        'infer',
        files['inp'],
        '-c',
        TINY,
        '-w',
        files['official_novq'],
        '--vqgan',
        files['official_vq'],
        '-o',
        tmp_path / 'cli_vq',
        '--device',
        'cpu',
        '--steps',
        '2',
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_inferencer(files, files['official'], tmp_path / 'inferencer')
    run_inferencer(files, files['official_novq'], tmp_path / 'inferencer_vq', vqgan=files['official_vq'])
    run_inferencer(files, files['training'], tmp_path / 'inferencer_pickle', allow_pickle=True)
    run_compare(files, files['official'], tmp_path / 'compare')
    for out in ('cli', 'cli_vq', 'inferencer', 'inferencer_vq', 'inferencer_pickle', 'compare/images/iter'):
        assert np.array_equal(cv2.imread(str(tmp_path / out / 'a.png')), ref), out


# ------------------------------------------------------------------ configs build with no other call first
def test_configs_build_in_a_fresh_process():
    """``MODELS.build(load_config(cfg).model)`` with no init_default_scope first, for every config whose model
    needs no pretrained files; the paper configs (LPIPS) build for inference through the loader."""
    code = f"""
import glob, os
from mmagic.registry import MODELS
from iter_mm.utils.config import load_config
from iter_mm.apis import init_model
def pretrained(cfg):  # LPIPS / VGG losses load pretrained files
    if isinstance(cfg, dict):
        return cfg.get('type') in ('LPIPSLoss', 'PerceptualLoss') or any(pretrained(v) for v in cfg.values())
    return isinstance(cfg, (list, tuple)) and any(pretrained(v) for v in cfg)
built = []
for path in sorted(glob.glob({str(ROOT / 'configs' / 'iter')!r} + '/*.py')):
    cfg = load_config(path)
    if pretrained(cfg.model):
        continue
    MODELS.build(cfg.model)
    built.append(os.path.basename(path))
for name in ('iter_x4_realsr.py', 'iter_x2_realsr.py'):
    model = init_model({str(ROOT / 'configs' / 'iter')!r} + '/' + name, random_weights=True)
    built.append(name + ':x%d' % model.generator.scale)
print(built)
"""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    built = out.stdout.strip().splitlines()[-1]
    for name in ('swinvqgan_tiny.py', 'iter_x4_tiny.py', 'iter_x4_realsr.py:x4', 'iter_x2_realsr.py:x2'):
        assert name in built
