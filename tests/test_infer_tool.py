"""End-to-end tests of tools/infer.py on a tiny ITER config (random weights saved to a checkpoint)."""
import importlib.util
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location('iter_infer_tool', ROOT / 'tools' / 'infer.py')
infer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(infer)

TINY_CFG = ROOT / 'configs' / 'iter' / 'iter_x4_tiny.py'


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('infer')
    cfg = TINY_CFG
    torch.manual_seed(0)
    from mmagic.registry import MODELS

    from iter_mm.utils.config import inference_model_cfg, load_config
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
    return infer.main([inputs or str(setup['inp']), '-c', setup['cfg'], '-w', setup['ckpt'], '-o', str(out),
                       '--device', 'cpu', *extra])


def test_infer_end_to_end(setup, capsys):
    out = setup['tmp'] / 'out'
    assert _run(setup, out) == 1  # the corrupt file fails, the others are written
    err = capsys.readouterr().err
    assert 'corrupt.png' in err and 'alpha' not in err
    shapes = {'rgb.png': (48, 36, 3), 'gray.png': (20, 28), 'rgba.png': (32, 32, 4), 'deep.png': (24, 24, 3),
              'one.png': (4, 4, 3)}  # grey stays grey, alpha is kept (tests/test_photo_io.py: every kind)
    for name, shape in shapes.items():
        img = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
        assert img.shape == shape, name
        assert img.dtype == (np.uint16 if name == 'deep.png' else np.uint8), name
    assert not (out / 'corrupt.png').exists()
    # the written pixels are model.restore's output with the config's seed
    lq = cv2.imread(str(setup['inp'] / 'rgb.png'))[..., ::-1] / 255.0
    lq = torch.from_numpy(lq.copy()).permute(2, 0, 1)[None].float()
    ref = setup['net'].restore(lq, max_pixels=720 * 720)[0].permute(1, 2, 0).numpy()
    got = cv2.imread(str(out / 'rgb.png'))[..., ::-1] / 255.0
    assert np.abs(got - ref).max() <= 0.5 / 255 + 1e-6

    # no silent overwrite; --skip-existing restores only what is missing; --overwrite replaces; options reach restore
    with pytest.raises(SystemExit, match='^error: .*exist'):  # every refusal reads 'error: ...'
        _run(setup, out)
    before = (out / 'rgb.png').read_bytes()
    (out / 'gray.png').unlink()
    assert _run(setup, out, '--skip-existing', '--seed', '9') == 1  # the corrupt file still fails
    assert (out / 'rgb.png').read_bytes() == before and cv2.imread(str(out / 'gray.png')).shape[:2] == (20, 28)
    assert '4 existing output(s) kept' in capsys.readouterr().err
    assert _run(setup, out, '--skip-existing', inputs=str(setup['inp'] / 'rgb.png')) == 0
    assert 'every output exists' in capsys.readouterr().out
    assert _run(setup, out, '--overwrite', '--seed', '3', '--alpha', '0.2', '--steps', '4', '--tile', '8',
                '--tile-overlap', '8', '--color-correction', '--dtype', 'bf16',
                inputs=str(setup['inp'] / 'rgb.png')) == 0
    assert (out / 'rgb.png').read_bytes() != before


def test_infer_clear_errors(setup, tmp_path):
    with pytest.raises(SystemExit, match='missing'):
        infer.main([str(setup['inp'] / 'rgb.png'), '-c', setup['cfg'], '-w', setup['bad'], '-o', str(tmp_path)])
    with pytest.raises(SystemExit, match='not found'):
        infer.main([str(setup['inp'] / 'rgb.png'), '-c', setup['cfg'], '-w', str(tmp_path / 'none.pth'),
                    '-o', str(tmp_path)])
    with pytest.raises(SystemExit, match='no such file'):
        infer.main([str(tmp_path / 'nope.png'), '-c', setup['cfg'], '-w', setup['ckpt'], '-o', str(tmp_path)])
    with pytest.raises(SystemExit, match='own input'):
        infer.main([str(setup['inp'] / 'rgb.png'), '-c', setup['cfg'], '-w', setup['ckpt'],
                    '-o', str(setup['inp']), '--overwrite'])


def test_invalid_options_fail_at_parse_time(setup, tmp_path):
    """Bad restoration options: an argparse error (exit 2) from RestoreOptions' rules, before any model loads
    (the checkpoint does not even exist)."""
    for bad in (['--alpha', '1.5'], ['--steps', '0'], ['--tile', '0'], ['--tile-overlap', '-1'],
                ['--max-pixels', '-5'], ['--token-temperature', '-1'], ['--seed', 'abc']):
        with pytest.raises(SystemExit) as info:
            infer.main([str(setup['inp'] / 'rgb.png'), '-c', setup['cfg'], '-w', str(tmp_path / 'none.pth'),
                        '-o', str(tmp_path / 'o'), *bad])
        assert info.value.code == 2, bad
    assert not (tmp_path / 'o').exists()


def test_seed_none_draws_a_seed(setup, tmp_path, capsys):
    for text in ('none', 'None', 'NONE'):
        assert infer.restore_options(infer.parse_args(['x', '-c', 'c', '-w', 'w', '-o', 'o', '--seed', text])) \
            == dict(seed=None)
    assert infer.restore_options(infer.parse_args(['x', '-c', 'c', '-w', 'w', '-o', 'o', '--seed', '7'])) \
        == dict(seed=7)
    assert infer.restore_options(infer.parse_args(['x', '-c', 'c', '-w', 'w', '-o', 'o'])) == {}  # test_cfg's
    rgb = str(setup['inp'] / 'rgb.png')
    capsys.readouterr()
    assert _run(setup, tmp_path / 'a', '--seed', 'none', inputs=rgb) == 0
    seed = re.search(r'rgb\.png: seed (\d+) \(--seed \1 makes this result again\)', capsys.readouterr().err).group(1)
    assert _run(setup, tmp_path / 'b', '--seed', 'none', inputs=rgb) == 0
    assert (tmp_path / 'a' / 'rgb.png').read_bytes() != (tmp_path / 'b' / 'rgb.png').read_bytes()
    assert _run(setup, tmp_path / 'c', '--seed', seed, inputs=rgb) == 0  # the said seed makes it again
    assert (tmp_path / 'a' / 'rgb.png').read_bytes() == (tmp_path / 'c' / 'rgb.png').read_bytes()


def test_tiling_warnings(setup, tmp_path, capsys):
    """The tiny network's LQ grid is 8 px: overlap 16 on 16-px tiles is capped to 8, and tiles under 4 cells
    (32 px) a side are flagged with the cost for a 1000x1000 photo; sane values stay silent."""
    assert setup['net'].generator.lq_pad_multiple == 8
    rgb = str(setup['inp'] / 'rgb.png')
    assert _run(setup, tmp_path / 'a', '--tile', '16', '--tile-overlap', '16', inputs=rgb) == 0
    err = capsys.readouterr().err
    assert 'warning: --tile-overlap 16 is capped to 8' in err
    assert 'warning: tiles of 16 LQ px (--tile 16) are smaller than 4 x' in err and 'use --tile >= 32' in err
    assert _run(setup, tmp_path / 'b', '--max-pixels', '100', inputs=rgb) == 0
    err = capsys.readouterr().err
    assert 'tiles of 8 LQ px (--max-pixels 100)' in err and '15625 tiles in 15625 network call(s)' in err
    assert _run(setup, tmp_path / 'c', '--tile', '64', '--tile-overlap', '8', inputs=rgb) == 0
    assert 'warning' not in capsys.readouterr().err


def test_one_line_per_image_when_redirected(setup, tmp_path, capsys):
    """stdout not a terminal (capsys, a log file): one line per finished image with its sizes and seconds."""
    rgb, gray = str(setup['inp'] / 'rgb.png'), str(setup['inp'] / 'gray.png')
    assert infer.main([rgb, gray, '-c', setup['cfg'], '-w', setup['ckpt'], '-o', str(tmp_path), '--device',
                       'cpu']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f'[1/2] {rgb}: 9x12 -> 36x48, ') and lines[0].endswith(' s')
    assert lines[1].startswith(f'[2/2] {gray}: 7x5 -> 28x20, ')
    assert lines[2] == f'2/2 image(s) written to {tmp_path}'


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
