"""tools/train_pipeline.py: stage I, then stages II+III on its checkpoint, then the test set; finished stages are
skipped and an interrupted stage resumes. tools/train.py refuses an ITER config whose stage-I file is missing.

The tools run in this process (``runpy``, as ``python tools/...`` runs them), on one thread: a fresh interpreter
would spend ~10 s importing MMagic per run; tests/test_tools_train.py and tests/test_distributed.py run the
training tools in their own processes."""

import contextlib
import io
import json
import runpy
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TINY = 'configs/iter/iter_x4_tiny.py'


def _run_tool(argv) -> str:
    """``python tools/<argv[0]> ...`` in this process (cwd: the repository, one thread); returns what it printed
    (stdout and stderr, MMEngine's log included)."""
    out = io.StringIO()
    threads = torch.get_num_threads()
    try:
        with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            mp.chdir(ROOT)
            mp.setattr(sys, 'argv', list(argv))
            torch.set_num_threads(1)
            runpy.run_path(str(ROOT / argv[0]), run_name='__main__')
    except BaseException:
        print(out.getvalue()[-6000:])  # shown with the failure
        raise
    finally:
        torch.set_num_threads(threads)
    return out.getvalue()


@pytest.fixture(scope='module')
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('pipeline_data')
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:96]
    for split, count in (('train', 4), ('val', 2)):
        (root / split).mkdir()
        for i in range(count):
            base = np.stack([np.sin(xx / (4 + i + c)) * 70 + np.cos(yy / (5 + i)) * 50 + 128 for c in range(3)], -1)
            img = np.clip(base + rng.normal(0, 5, base.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / split / f'{i}.png'), img)
    return root


def _pipeline_args(photos: Path, work: Path) -> list:
    data = []
    for split, folder in (('train_dataloader', 'train'), ('val_dataloader', 'val'), ('test_dataloader', 'val')):
        data.append(f'{split}.dataset.data_root={photos / folder}')
    micro = [
        'train_cfg.max_iters=2',
        'train_cfg.val_interval=100',
        'default_hooks.checkpoint.interval=1',
        'train_dataloader.batch_size=2',
    ]
    return [
        'tools/train_pipeline.py',
        TINY,
        '--work-dir',
        str(work),
        '--cfg-options',
        *data,
        *micro,
        'model.test_cfg.steps=2',
        '--stage1-cfg-options',
        *data,
        *micro,
    ]


@pytest.fixture(scope='module')
def pipeline(photos, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp('pipeline_work')
    return dict(work=work, first=_run_tool(_pipeline_args(photos, work)))


def _summary(work: Path) -> dict:
    return json.loads((work / 'iter_x4_tiny' / 'pipeline_summary.json').read_text())


def test_pipeline_trains_both_stages_then_tests(pipeline):
    work = pipeline['work']
    assert (work / 'swinvqgan_tiny' / 'iter_2.pth').is_file()
    assert (work / 'iter_x4_tiny' / 'iter_2.pth').is_file()
    stages = _summary(work)['stages']
    assert [s['state'] for s in stages] == ['fresh', 'fresh', 'ran']
    assert {'PSNR', 'SSIM', 'NIQE'} <= set(stages[2]['metrics'])
    assert 'ITER pipeline' in pipeline['first']
    # the ITER checkpoint holds the stage-I VQGAN it was trained on
    s1 = torch.load(work / 'swinvqgan_tiny' / 'iter_2.pth', map_location='cpu', weights_only=False)['state_dict']
    s2 = torch.load(work / 'iter_x4_tiny' / 'iter_2.pth', map_location='cpu', weights_only=False)['state_dict']
    key = next(k for k in s1 if k.startswith('generator.encoder.'))
    assert torch.equal(s1[key], s2[key.replace('generator.', 'generator.vqgan.', 1)])
    weights = torch.load(work / 'iter_x4_tiny' / 'weights.pth', map_location='cpu', weights_only=True)
    assert weights['state_dict'].keys() == s2.keys()  # weights-only export for the inference tools


def test_final_model_super_resolves(pipeline, photos, tmp_path):
    """The pipeline's ITER checkpoint restores an image to 4x its size through tools/infer.py."""
    lq = tmp_path / 'lq'
    lq.mkdir()
    cv2.imwrite(str(lq / 'small.png'), cv2.imread(str(photos / 'val' / '0.png'))[:20, :28])
    out = tmp_path / 'out'
    from tool_runner import run_tool

    done = run_tool(
        'infer',
        lq,
        '-c',
        TINY,
        '-w',
        pipeline['work'] / 'iter_x4_tiny' / 'weights.pth',
        '-o',
        out,
        '--steps',
        '2',
        '--device',
        'cpu',
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert cv2.imread(str(out / 'small.png')).shape == (80, 112, 3)


def test_rerun_skips_finished_and_resumes_interrupted(pipeline, photos):
    """Stage II loses its final checkpoint (as if killed after iteration 1): the rerun skips stage I, resumes
    stage II from iter_1.pth and finishes it."""
    work = pipeline['work']
    stage2 = work / 'iter_x4_tiny'
    (stage2 / 'iter_2.pth').unlink()
    (stage2 / 'last_checkpoint').write_text(str(stage2 / 'iter_1.pth'))
    before = (work / 'swinvqgan_tiny' / 'iter_2.pth').stat().st_mtime_ns
    log = _run_tool(_pipeline_args(photos, work) + ['--skip-test'])
    stages = _summary(work)['stages']
    assert [s['state'] for s in stages] == ['done', 'resume']
    assert (stage2 / 'iter_2.pth').is_file()
    assert (work / 'swinvqgan_tiny' / 'iter_2.pth').stat().st_mtime_ns == before
    assert 'iter_1.pth' in log  # MMEngine logs what it resumed from


def _replace_option(args: list, old: str, new: str) -> list:
    return [new if a == old else a for a in args]


def test_rerun_with_other_data_or_stage1_stops(pipeline, photos, tmp_path):
    """The work dirs record what each stage was trained with: a rerun on other training data stops instead of
    skipping stage I; a longer stage I resumes, and then stages II+III (trained on the old stage-I file) stop;
    a stage-I checkpoint given in the ITER options must exist."""
    import shutil

    work = tmp_path / 'work'
    shutil.copytree(pipeline['work'], work)
    args = _pipeline_args(photos, work) + ['--skip-test']
    other_data = _replace_option(
        args,
        f'train_dataloader.dataset.data_root={photos / "train"}',
        f'train_dataloader.dataset.data_root={photos / "val"}',
    )
    with pytest.raises(SystemExit, match=r'stage I in .*swinvqgan_tiny was trained with other training data'):
        _run_tool(other_data)
    stage1_args = args[args.index('--stage1-cfg-options') :]
    longer = args[: args.index('--stage1-cfg-options')] + _replace_option(
        stage1_args, 'train_cfg.max_iters=2', 'train_cfg.max_iters=3'
    )
    with pytest.raises(
        SystemExit,
        match=r'stages II\+III in .*iter_x4_tiny was trained with another stage-I '
        r'checkpoint',
    ):
        _run_tool(longer)
    assert (work / 'swinvqgan_tiny' / 'iter_3.pth').is_file()  # stage I did continue
    own = args[: args.index('--stage1-cfg-options')] + ['model.stage1_checkpoint=mine.pth'] + stage1_args
    with pytest.raises(
        SystemExit,
        match=r"error: stage-I checkpoint not found: model.stage1_checkpoint='mine.pth' "
        r'\(given\)',
    ):
        _run_tool(own)


def test_record_without_checkpoint_does_not_block(tmp_path):
    """A first start that failed before its first checkpoint (a mistyped folder, missing weights) left only the
    record: the corrected rerun trains (the record is rewritten) instead of being refused."""
    from mmengine.config import Config

    from iter_mm.engine.stages import STAGE_RECORD, check_stage_record, write_stage_record
    from iter_mm.errors import OutputExistsError

    cfg = Config(
        dict(
            work_dir=str(tmp_path / 'w'),
            train_cfg=dict(max_iters=2),
            model=dict(type='M'),
            train_dataloader=dict(dataset=dict(data_root='typo')),
        )
    )
    write_stage_record(cfg)
    cfg.train_dataloader.dataset.data_root = 'photos'
    check_stage_record(cfg, 'stage I')  # no checkpoint: nothing to protect
    (tmp_path / 'w' / 'last_checkpoint').write_text('iter_1.pth')
    with pytest.raises(OutputExistsError, match='stage I in .* was trained with other training data'):
        check_stage_record(cfg, 'stage I')
    assert (tmp_path / 'w' / STAGE_RECORD).is_file()


def test_train_refuses_missing_stage1_and_names_the_command(tmp_path, monkeypatch):
    """tools/train.py (run in this process) stops before building anything when the stage-I checkpoint it is given
    does not exist, and says how to make or give one."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(
        sys,
        'argv',
        [
            'tools/train.py',
            TINY,
            '--work-dir',
            str(tmp_path / 'w'),
            '--stage1-checkpoint',
            str(tmp_path / 'missing.pth'),
        ],
    )
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(ROOT / 'tools' / 'train.py'), run_name='__main__')
    message = str(exc.value.code)
    assert message.startswith(f"error: stage-I checkpoint not found: model.stage1_checkpoint='{tmp_path}")
    assert 'tools/train_pipeline.py' in message and 'ITER_swinvqgan.pth' in message
    assert not (tmp_path / 'w').exists()  # stopped before the Runner made anything


def _official_tiny_files(tmp: Path) -> dict:
    """The tiny config's Swin-VQGAN and a tiny x2 ITER network, random, saved in the authors' format
    ({'params_ema' / 'params': ...}, token_refine_net.*, generator.* decoder aliases)."""
    from iter_mm.apis import init_model
    from iter_mm.utils.checkpoint import ours_to_official

    torch.manual_seed(1)
    vq = init_model(TINY, random_weights=True).generator.vqgan.state_dict()
    x2 = init_model(
        TINY, random_weights=True, cfg_options={'model.generator.scale': 2, 'model.generator.lq_encoder.scale': 2}
    ).generator
    files = dict(vq=tmp / 'ITER_swinvqgan.pth', x2=tmp / 'ITER_x2.pth')
    torch.save({'params_ema': ours_to_official(vq)}, files['vq'])
    x2_official = ours_to_official(x2.state_dict())
    torch.save({'params': {k: v for k, v in x2_official.items() if not k.startswith('vqgan.')}}, files['x2'])
    return dict(files, vq_sd=vq, x2_sd=x2.state_dict())


def test_pipeline_with_a_released_stage1_skips_stage1_and_starts_from_x2(photos, tmp_path):
    """The authors' recipe on the tiny config: their Swin-VQGAN file as the frozen stage I (not trained again) and
    their x2 ITER file as the start of the x4 stages II+III; both in the authors' format. A rerun treats the given
    stage I as finished; another stage-I file is refused (the record)."""
    files = _official_tiny_files(tmp_path)
    work = tmp_path / 'work'
    args = _pipeline_args(photos, work)
    args = args[: args.index('--stage1-cfg-options')] + [
        '--skip-test',
        '--stage1-checkpoint',
        str(files['vq']),
        '--init-from',
        str(files['x2']),
    ]
    log = _run_tool(args)
    stages = _summary(work)['stages']
    assert [s['state'] for s in stages] == ['given', 'fresh']
    assert stages[0]['checkpoint'] == str(files['vq'])
    assert not (work / 'swinvqgan_tiny').exists()  # stage I was not trained
    assert 'given (not trained)' in log
    # one log line: what init_from loaded, and by module what it did not (the x4 E_l's own layers)
    line = next(x for x in log.splitlines() if f'init_from {files["x2"]}' in x)
    assert 'official ITER x2' in line and 'kept initialised: lq_encoder.model.2' in line
    state = torch.load(work / 'iter_x4_tiny' / 'iter_2.pth', map_location='cpu', weights_only=False)['state_dict']
    for k, v in files['vq_sd'].items():  # the frozen VQGAN is the given file's, untouched by training
        assert torch.equal(state['generator.vqgan.' + k], v), k
    rerun = _run_tool(args)
    assert [s['state'] for s in _summary(work)['stages']] == ['given', 'done']
    assert 'ITER pipeline' in rerun
    other = tmp_path / 'other_vq.pth'
    other.write_bytes(files['vq'].read_bytes())
    with pytest.raises(SystemExit, match=r'stages II\+III in .* was trained with another stage-I checkpoint'):
        _run_tool(_replace_option(args, str(files['vq']), str(other)))


def test_demo_colour_error_by_hand(tmp_path):
    """tools/demo.py's colour error: mean over images of the mean |per-channel mean difference| (0-255)."""
    from iter_mm.evaluation import demo_report as demo

    (tmp_path / 'gt').mkdir()
    (tmp_path / 'pred').mkdir()
    gt = np.full((8, 8, 3), 100, np.uint8)
    cv2.imwrite(str(tmp_path / 'gt' / 'a.png'), gt)
    cv2.imwrite(str(tmp_path / 'pred' / 'a.png'), gt + np.array([6, 0, 3], np.uint8))  # |6|+|0|+|3| / 3 = 3
    cv2.imwrite(str(tmp_path / 'gt' / 'b.png'), gt)
    cv2.imwrite(str(tmp_path / 'pred' / 'b.png'), gt - 1)  # 1
    assert demo.colour_error(str(tmp_path / 'pred'), str(tmp_path / 'gt')) == pytest.approx(2.0)
