"""Super-resolving files (iter_mm.apis.restore_files) and its command line tools/infer.py, end to end on a tiny
ITER config (random weights saved to a checkpoint)."""

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from tool_runner import error_line, run_tool

from iter_mm.apis.model_loader import CheckpointMismatchError
from iter_mm.apis.restore_files import load_restorer, plan_outputs, restore_file
from iter_mm.errors import InvalidOptionError, MissingDataError, OutputExistsError
from iter_mm.models.options import RestoreOptions
from iter_mm.utils.image_files import list_images
from iter_mm.utils.tiling import grid_tiles, planned_tiles

ROOT = Path(__file__).resolve().parents[1]
TINY_CFG = ROOT / 'configs' / 'iter' / 'iter_x4_tiny.py'


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('infer')
    cfg = TINY_CFG
    torch.manual_seed(0)
    from iter_mm.utils.config import inference_model_cfg, load_config
    from mmagic.registry import MODELS

    net = MODELS.build(inference_model_cfg(load_config(str(cfg)).model))
    ckpt = tmp / 'tiny.pth'
    torch.save({'state_dict': net.state_dict()}, ckpt)
    bad = tmp / 'bad.pth'
    sd = net.state_dict()
    sd.pop(next(k for k in sd if 'refiner' in k))
    torch.save({'state_dict': sd}, bad)

    inp = tmp / 'in'
    inp.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(inp / 'rgb.png'), rng.integers(0, 256, (12, 9, 3), dtype=np.uint8))
    cv2.imwrite(str(inp / 'gray.png'), rng.integers(0, 256, (5, 7), dtype=np.uint8))
    cv2.imwrite(str(inp / 'rgba.png'), rng.integers(0, 256, (8, 8, 4), dtype=np.uint8))
    cv2.imwrite(str(inp / 'deep.png'), rng.integers(0, 65536, (6, 6, 3), dtype=np.uint16))
    cv2.imwrite(str(inp / 'one.png'), rng.integers(0, 256, (1, 1, 3), dtype=np.uint8))
    (inp / 'corrupt.png').write_bytes(b'\x89PNG not really')
    return dict(tmp=tmp, cfg=str(cfg), ckpt=str(ckpt), bad=str(bad), inp=inp, net=net)


def _run(setup, out, *extra, inputs=None):
    return run_tool(
        'infer', inputs or setup['inp'], '-c', setup['cfg'], '-w', setup['ckpt'], '-o', out, '--device', 'cpu', *extra
    )


def test_infer_end_to_end(setup):
    out = setup['tmp'] / 'out'
    done = _run(setup, out)
    assert done.returncode == 1  # the corrupt file fails, the others are written
    assert 'corrupt.png' in done.stderr and 'alpha' not in done.stderr and 'warning' not in done.stderr
    shapes = {
        'rgb.png': (48, 36, 3),
        'gray.png': (20, 28),
        'rgba.png': (32, 32, 4),
        'deep.png': (24, 24, 3),
        'one.png': (4, 4, 3),
    }  # grey stays grey, alpha is kept (tests/test_photo_io.py: every kind)
    for name, shape in shapes.items():
        img = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
        assert img.shape == shape, name
        assert img.dtype == (np.uint16 if name == 'deep.png' else np.uint8), name
    assert not (out / 'corrupt.png').exists()
    # stdout is not a terminal: one line per finished image with its sizes and seconds, then the count
    lines = done.stdout.splitlines()
    rgb = str(setup['inp'] / 'rgb.png')
    row = next(line for line in lines if line.startswith(f'[5/6] {rgb}: '))
    assert row.startswith(f'[5/6] {rgb}: 9x12 -> 36x48, ') and row.endswith(' s')
    assert lines[-1].startswith(f'5/6 image(s) written to {out}; 1 failed:')
    # the written pixels are model.restore's output with the config's seed
    lq = cv2.imread(str(setup['inp'] / 'rgb.png'))[..., ::-1] / 255.0
    lq = torch.from_numpy(lq.copy()).permute(2, 0, 1)[None].float()
    ref = setup['net'].restore(lq, max_pixels=720 * 720)[0].permute(1, 2, 0).numpy()
    got = cv2.imread(str(out / 'rgb.png'))[..., ::-1] / 255.0
    assert np.abs(got - ref).max() <= 0.5 / 255 + 1e-6

    # no silent overwrite; --skip-existing restores only what is missing; --overwrite replaces; options reach restore
    line = error_line(_run(setup, out))  # every refusal reads 'error: ...'
    assert 'exist' in line and '--overwrite' in line and '--skip-existing' in line
    before = (out / 'rgb.png').read_bytes()
    (out / 'gray.png').unlink()
    done = _run(setup, out, '--skip-existing', '--seed', '9')
    assert done.returncode == 1  # the corrupt file still fails
    assert (out / 'rgb.png').read_bytes() == before and cv2.imread(str(out / 'gray.png')).shape[:2] == (20, 28)
    assert '4 existing output(s) kept' in done.stderr
    done = _run(
        setup,
        out,
        '--overwrite',
        '--seed',
        '3',
        '--alpha',
        '0.2',
        '--steps',
        '4',
        '--tile',
        '8',
        '--tile-overlap',
        '8',
        '--color-correction',
        '--dtype',
        'bf16',
        inputs=rgb,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / 'rgb.png').read_bytes() != before
    # the tiny network's LQ grid is 8 px: overlap 8 on 8-px tiles is capped to 0, and tiles under 4 cells (32 px)
    # a side are flagged with the cost for a 1000x1000 photo (sane values stay silent: the first run)
    assert 'warning: --tile-overlap 8 is capped to 0' in done.stderr
    assert 'warning: tiles of 8 LQ px (--tile 8) are smaller than 4 x' in done.stderr
    assert 'use --tile >= 32' in done.stderr


def test_plan_outputs_never_overwrites_silently(setup, tmp_path):
    inp = setup['inp']
    paths = list_images([str(inp)])
    assert [Path(p).name for p in paths] == ['corrupt.png', 'deep.png', 'gray.png', 'one.png', 'rgb.png', 'rgba.png']
    plan = plan_outputs(paths, str(tmp_path), 'jpg')
    assert plan.kept == 0 and plan.todo[4] == (str(inp / 'rgb.png'), str(tmp_path / 'rgb.jpg'))
    (tmp_path / 'rgb.jpg').write_bytes(b'mine')
    with pytest.raises(OutputExistsError, match=r'1 output file\(s\) exist'):
        plan_outputs(paths, str(tmp_path), 'jpg')
    plan = plan_outputs(paths, str(tmp_path), 'jpg', skip_existing=True)
    assert plan.kept == 1 and len(plan.todo) == 5 and str(inp / 'rgb.png') not in dict(plan.todo)
    assert len(plan_outputs(paths, str(tmp_path), 'jpg', overwrite=True).todo) == 6
    with pytest.raises(InvalidOptionError, match='own input'):
        plan_outputs(paths, str(inp), overwrite=True)
    with pytest.raises(InvalidOptionError, match='share the output name'):  # rgb.png and rgb.jpg -> rgb.webp
        plan_outputs([str(inp / 'rgb.png'), str(tmp_path / 'rgb.jpg')], str(tmp_path / 'o'), 'webp')
    twin = tmp_path / 'twin'
    twin.mkdir()
    (twin / 'rgb.png').write_bytes((inp / 'rgb.png').read_bytes())
    with pytest.raises(InvalidOptionError, match=r"share the output name\(s\) \['rgb.png'\]"):
        plan_outputs([str(inp / 'rgb.png'), str(twin / 'rgb.png')], str(tmp_path / 'o'))


def test_infer_clear_errors(setup, tmp_path):
    with pytest.raises(CheckpointMismatchError, match='missing'):
        load_restorer(setup['cfg'], setup['bad'], torch.device('cpu'))
    with pytest.raises(FileNotFoundError, match='not found'):
        load_restorer(setup['cfg'], str(tmp_path / 'none.pth'), torch.device('cpu'))
    with pytest.raises(MissingDataError, match='no such file'):
        list_images([str(tmp_path / 'nope.png')])
    line = error_line(
        run_tool('infer', setup['inp'] / 'rgb.png', '-c', setup['cfg'], '-w', setup['bad'], '-o', tmp_path / 'o')
    )
    assert 'missing' in line and not (tmp_path / 'o').exists()


def test_restore_file_writes_what_restore_returns(setup, tmp_path):
    model = load_restorer(setup['cfg'], setup['ckpt'], torch.device('cpu'))
    res = restore_file(model, str(setup['inp'] / 'gray.png'), str(tmp_path / 'g.png'), dict(seed=5, steps=2))
    assert res.in_size == (7, 5) and res.out_size == (28, 20) and res.read_notes == [] == res.write_notes
    lq = torch.from_numpy(cv2.imread(str(setup['inp'] / 'gray.png'), cv2.IMREAD_GRAYSCALE) / 255.0).float()
    ref = model.restore(lq.expand(1, 3, 5, 7), seed=5, steps=2)[0].mean(0)
    got = cv2.imread(str(tmp_path / 'g.png'), cv2.IMREAD_UNCHANGED) / 255.0
    assert got.shape == (20, 28) and np.abs(got - ref.numpy()).max() <= 0.5 / 255 + 1e-3
    with pytest.raises(ValueError, match='not a readable image'):
        restore_file(model, str(setup['inp'] / 'corrupt.png'), str(tmp_path / 'c.png'))
    assert not (tmp_path / 'c.png').exists()


def test_invalid_options_fail_at_parse_time(setup, tmp_path):
    """Bad restoration options: RestoreOptions' rules refuse them; the command line stops at parsing (exit 2),
    before any model loads (the checkpoint does not even exist)."""
    for bad in (
        dict(alpha=1.5),
        dict(steps=0),
        dict(tile=0),
        dict(tile_overlap=-1),
        dict(max_pixels=-5),
        dict(token_temperature=-1),
    ):
        with pytest.raises(ValueError):
            RestoreOptions(**bad)
    for bad in (['--alpha', '1.5'], ['--seed', 'abc']):
        done = run_tool(
            'infer',
            setup['inp'] / 'rgb.png',
            '-c',
            setup['cfg'],
            '-w',
            tmp_path / 'none.pth',
            '-o',
            tmp_path / 'o',
            *bad,
        )
        assert done.returncode == 2 and 'Traceback' not in done.stderr, bad
    assert not (tmp_path / 'o').exists()


def test_seed_none_draws_a_seed(setup, tmp_path):
    rgb = setup['inp'] / 'rgb.png'
    done = _run(setup, tmp_path / 'a', '--seed', 'NONE', inputs=rgb)
    assert done.returncode == 0, done.stderr[-3000:]
    seed = re.search(r'rgb\.png: seed (\d+) \(--seed \1 makes this result again\)', done.stderr).group(1)
    model = load_restorer(setup['cfg'], setup['ckpt'], torch.device('cpu'))
    restore_file(model, str(rgb), str(tmp_path / 'zero.png'), dict(seed=0))
    assert (tmp_path / 'a' / 'rgb.png').read_bytes() != (tmp_path / 'zero.png').read_bytes()
    restore_file(model, str(rgb), str(tmp_path / 'said.png'), dict(seed=int(seed)))  # the said seed makes it again
    assert (tmp_path / 'a' / 'rgb.png').read_bytes() == (tmp_path / 'said.png').read_bytes()


def test_tiling_rule_is_the_restoration_rule():
    """One rule (iter_mm.utils.tiling.grid_tiles) for restore_image and the tool's warnings: tiles rounded down to
    the network's grid (at least one cell), the overlap rounded up to it and capped at tile - grid."""
    assert grid_tiles(20, 5, 8) == (16, 8) and grid_tiles(16, 16, 8) == (16, 8) and grid_tiles(3, 0, 8) == (8, 0)
    assert grid_tiles(64, 8, 8) == (64, 8) and grid_tiles(64, 9, 8) == (64, 16)
    assert planned_tiles(None, 16, None, 8) is None
    assert planned_tiles(None, 16, 100, 8) == (8, 0) and planned_tiles(None, 16, 1000, 8) == (24, 16)
    assert planned_tiles(40, 16, 100, 8) == (40, 16)  # a given tile wins over the pixel budget


def test_tiling_warnings(setup, tmp_path):
    """Tiles from --max-pixels below 4 cells of the network's 8-px grid are flagged with the cost for a
    1000x1000 photo (--tile: the end-to-end run)."""
    assert setup['net'].generator.lq_pad_multiple == 8
    done = _run(setup, tmp_path / 'b', '--max-pixels', '100', inputs=setup['inp'] / 'rgb.png')
    assert done.returncode == 0
    assert 'tiles of 8 LQ px (--max-pixels 100)' in done.stderr
    assert '15625 tiles in 15625 network call(s)' in done.stderr


def test_quiet_tool_prints_surviving_warnings_as_one_line(capsys):
    """A warning the tools keep (e.g. the CPU memory tiling note) reads as their own ``warning:`` line, without
    Python's source file and line; the usual display is back afterwards."""
    import warnings

    from iter_mm.utils.quiet import quiet_tool
    from iter_mm.utils.tiling import MemoryTilingNote

    before = warnings.formatwarning
    with quiet_tool():  # (pytest records warnings instead of printing them: the format is checked directly)
        text = warnings.formatwarning('restored in tiles of 368x368', MemoryTilingNote, 'inference.py', 90)
    assert text == 'warning: restored in tiles of 368x368\n'
    assert warnings.formatwarning is before
    with pytest.warns(MemoryTilingNote, match='368x368'), quiet_tool():  # still recorded where recorded
        warnings.warn('restored in tiles of 368x368', MemoryTilingNote)
