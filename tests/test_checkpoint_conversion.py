"""Official <-> iter-mm checkpoint mapping against the authors' manifests (docs/faithfulness.md#checkpoint-layout)."""

import json
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from iter_mm.errors import CheckpointMismatchError
from iter_mm.models.archs import ITERNet, SwinVQGAN
from iter_mm.models.archs.swin import relative_position_index, shift_attention_mask
from iter_mm.utils import checkpoint as ckpt

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / 'shared' / 'reference'
COUNTS = {'swinvqgan': 71_103_843, 'iter_x4': 127_321_541, 'iter_x2': 129_995_461}
ENTRIES = {'swinvqgan': 640, 'iter_x4': 1818, 'iter_x2': 1836}


def manifest(name):
    """Entries of the authors' checkpoint from the shared reference, independent of the package's mapping data
    (else the converter would be checked against itself). The stage-I file holds the same tensors as the
    ``vqgan.*`` part of ITER_x4.pth, in the same order: its manifest is derived from that one."""
    source = 'iter_x4' if name == 'swinvqgan' else name
    path = SHARED / f'official_{source}.json'
    if not path.is_file():
        pytest.skip(f'independent reference {path} not available')
    entries = [(e['key'], tuple(e['shape']), e['dtype']) for e in json.loads(path.read_text())['entries']]
    if name == 'swinvqgan':
        entries = [(k[len('vqgan.') :], s, d) for k, s, d in entries if k.startswith('vqgan.')]
    return entries


def random_official(name, seed=0):
    """Random tensors under every manifest key; buffers take their true values, generator.* repeats decoder.*.

    Tensors are views into one random pool at key-dependent offsets (distinct values, no 500 MB of randn)."""
    entries = manifest(name)
    pool = torch.randn(
        max(torch.Size(s).numel() for _, s, _ in entries) + 10007, generator=torch.Generator().manual_seed(seed)
    )
    sd = OrderedDict()
    for i, (key, shape, dtype) in enumerate(entries):
        alias = key.replace('generator.', 'decoder.', 1)
        if alias != key:
            sd[key] = sd[alias]
        elif key.endswith('relative_position_index'):
            sd[key] = relative_position_index(8)
        elif key.endswith('attn_mask'):
            sd[key] = shift_attention_mask(32, 32, 8, 4)
        else:
            assert dtype == 'float32'
            start = (i * 7919) % 10007
            sd[key] = pool[start : start + torch.Size(shape).numel()].view(shape)
    return sd


def zeros_official(name):
    """Right keys and shapes, no memory (stride-0 views): for error-path tests."""
    return OrderedDict((k, torch.zeros(1, dtype=getattr(torch, d)).expand(s)) for k, s, d in manifest(name))


def our_key(official_key):
    """Hand-written expectation of the mapping (independent of PREFIX_MAP)."""
    for old, new in (
        ('token_refine_net.token_crit_net.', 'evaluator.'),
        ('token_refine_net.token_refine_net.', 'refiner.'),
    ):
        if official_key.startswith(old):
            return new + official_key[len(old) :]
    return official_key


@pytest.fixture(scope='module', params=['swinvqgan', 'iter_x4', 'iter_x2'])
def case(request):
    """(name, full-size network, random official state dict). Built on the meta device and materialised
    uninitialised (every tensor, buffers included, is then loaded from the state dict): seconds faster."""
    name = request.param
    with torch.device('meta'):
        net = SwinVQGAN() if name == 'swinvqgan' else ITERNet(scale=int(name[-1]))
    return name, net.to_empty(device='cpu'), random_official(name)


def test_parameter_count_and_manifest_size(case):
    name, net, official = case
    assert sum(p.numel() for p in net.parameters()) == COUNTS[name]
    assert len(official) == ENTRIES[name]


def test_official_converts_and_loads_strictly_in_place(case):
    name, net, official = case
    assert ckpt.detect_kind(official).layout == 'official'
    ours = ckpt.official_to_ours(official)
    ckpt.load_state_dict_strict(net, ours)
    loaded = net.state_dict()
    for key, value in official.items():
        if 'generator.' in key:
            continue
        assert torch.equal(loaded[our_key(key)], value), key


def test_round_trip_gives_manifest_order_and_tensors(case):
    name, net, official = case
    ckpt.load_state_dict_strict(net, ckpt.official_to_ours(official))
    back = ckpt.ours_to_official(net.state_dict())
    assert list(back) == [k for k, _, _ in manifest(name)]  # exact key order incl. generator aliases
    # the order also follows from our module order alone, without the packaged manifest
    assert list(ckpt.ours_to_official(net.state_dict(), manifest_order=False)) == list(back)
    for key, value in official.items():
        assert back[key].dtype == value.dtype and torch.equal(back[key], value), key
    assert ckpt.check_against_manifest(back, name) == []


def test_detect_kinds(case):
    name, net, official = case
    kind = ckpt.detect_kind(official)
    assert kind.family == ('swinvqgan' if name == 'swinvqgan' else 'iter')
    if name != 'swinvqgan':
        assert kind.scale == int(name[-1]) and kind.has_vqgan
        stripped = {k: v for k, v in official.items() if not k.startswith('vqgan.')}
        assert not ckpt.detect_kind(stripped).has_vqgan
        assert ckpt.detect_kind(ckpt.official_to_ours(official)).layout == 'ours'
        assert f'x{name[-1]}' in kind.name


def test_iter_without_vqgan_needs_separate_swinvqgan(case):
    name, net, official = case
    if name == 'swinvqgan':
        pytest.skip('ITER only')
    training_ckpt = {'params': OrderedDict((k, v) for k, v in official.items() if not k.startswith('vqgan.'))}
    with pytest.raises(ValueError, match="stage1_checkpoint='ITER_swinvqgan.pth'") as info:
        ckpt.convert_official(training_ckpt)
    assert info.value.arguments == ('stage1_checkpoint',)  # the tools add their flag
    vq = OrderedDict((k[len('vqgan.') :], v) for k, v in official.items() if k.startswith('vqgan.'))
    vq_file = {'params_ema': OrderedDict(('module.' + k, v) for k, v in vq.items()), 'params': {}}
    ours = ckpt.convert_official(training_ckpt, stage1_checkpoint=vq_file)  # params_ema preferred, module. stripped
    ckpt.load_state_dict_strict(net, ours)
    assert torch.equal(net.state_dict()['vqgan.quantize.embedding.weight'], official['vqgan.quantize.embedding.weight'])


def test_wrong_checkpoint_gives_clear_error(case):
    name, net, official = case
    if name != 'iter_x4':
        pytest.skip('once is enough')
    x2 = ckpt.official_to_ours(zeros_official('iter_x2'))
    with pytest.raises(CheckpointMismatchError) as err:
        ckpt.load_state_dict_strict(net, x2, source='ITER_x2.pth')
    msg = str(err.value)
    assert 'ITER_x2.pth' in msg and 'iter-mm ITER x2' in msg and 'ITERNet' in msg
    assert '234 missing' in msg and "252 unexpected: ['lq_encoder.model.2.0.weight'" in msg
    bad_shape = OrderedDict((k, torch.zeros(1).expand(v.shape)) for k, v in net.state_dict().items())
    bad_shape['refiner.code_emb.weight'] = torch.zeros(1).expand(256, 512, 1, 1)  # phi_e-sized embedding
    with pytest.raises(
        CheckpointMismatchError,
        match=r'1 shape mismatches: \['
        r"'refiner.code_emb.weight: checkpoint \(256, 512, 1, 1\) vs model \(256, 513, 1, 1\)'",
    ):
        ckpt.load_state_dict_strict(net, bad_shape)
    vq_only = ckpt.official_to_ours(zeros_official('swinvqgan'))
    with pytest.raises(CheckpointMismatchError, match='missing'):
        ckpt.load_state_dict_strict(net, vq_only)
    with pytest.raises(ValueError, match='unrecognised checkpoint'):
        ckpt.detect_kind({'conv.weight': torch.zeros(1)})
    with pytest.raises(ValueError, match='expected an official'):
        ckpt.official_to_ours(net.state_dict())


def test_differing_alias_follows_official_loader():
    sd = random_official('swinvqgan')
    key = 'generator.blocks.0.bias'
    sd[key] = sd[key] + 1
    with pytest.warns(UserWarning, match='differs'):
        ours = ckpt.official_to_ours(sd)
    assert torch.equal(ours['decoder.blocks.0.bias'], sd[key])
    assert not any(k.startswith('generator.') for k in ours)


def test_packaged_manifests_equal_shared_reference():
    for name in ckpt.MANIFESTS:
        packaged = [(k, s, d) for k, s, d, _ in ckpt.load_manifest(name)]
        assert packaged == manifest(name)


def test_load_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='not found'):
        ckpt.load_checkpoint_file(tmp_path / 'missing.pth')
    bad = tmp_path / 'corrupt.pth'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(RuntimeError, match='cannot read checkpoint'):
        ckpt.load_checkpoint_file(bad)
    with pytest.raises(ValueError, match='not a state dict'):
        ckpt.extract_state_dict({'params': {'a': 1}})


def test_load_file_errors_tell_corrupt_files_from_pickled_ones(tmp_path):
    """Only torch's refusal of a pickled object suggests allow_pickle; a truncated, text or empty file is called
    unreadable. Messages carry no ANSI codes and are not cut inside a word."""
    from mmengine.logging import HistoryBuffer

    good, pickled = tmp_path / 'good.pth', tmp_path / 'pickled.pth'
    torch.save({'a': torch.zeros(3)}, good)
    torch.save({'a': torch.zeros(3), 'log': HistoryBuffer()}, pickled)
    broken = {
        'truncated.pth': (good.read_bytes()[: len(good.read_bytes()) // 2], 'central directory'),
        'text.pth': (b'not a checkpoint\n', 'UnpicklingError'),
        'empty.pth': (b'', 'the file is empty'),
    }
    for name, (data, reason) in broken.items():
        (tmp_path / name).write_bytes(data)
        for allow_pickle in (False, True):
            with pytest.raises(RuntimeError) as info:
                ckpt.load_checkpoint_file(tmp_path / name, allow_pickle)
            msg = str(info.value)
            assert 'not a readable PyTorch checkpoint (truncated, corrupt or another kind of file)' in msg, msg
            assert reason in msg and 'allow_pickle' not in msg and '--unsafe-load' not in msg, msg
    with pytest.raises(RuntimeError) as info:
        ckpt.load_checkpoint_file(pickled)
    msg = str(info.value)
    assert 'holds pickled Python objects' in msg and 'mmengine.logging.history_buffer.HistoryBuffer' in msg
    assert 'allow_pickle=True' in msg and '--unsafe-load' not in msg and '\x1b' not in msg  # tools add flags
    assert info.value.arguments == ('allow_pickle',)
    assert 'Please use' not in msg  # torch's own advice is left out, its reason kept whole
    assert ckpt.load_checkpoint_file(pickled, allow_pickle=True)['a'].shape == (3,)
    reason = ckpt._load_error_reason(RuntimeError('word ' * 100), limit=32)
    assert reason == 'RuntimeError: word word word word word word ...'


# --- tools/convert_official_ckpt.py on a tiny ITER ------------------------------------------------------------
def _convert(*args):
    """``python tools/convert_official_ckpt.py *args`` -> (exit status, stderr)."""
    from tool_runner import run_tool

    done = run_tool('convert_official_ckpt', *args)
    return done.returncode, done.stderr


def tiny_iter():
    net_cfg = dict(mid_dim=32, num_rstb=1, depth=2, window_size=4, num_heads=4, codebook_size=16)
    return ITERNet(
        scale=2,
        vqgan=dict(
            type='SwinVQGAN',
            nf=16,
            ch_mult=(1, 1, 2, 2),
            num_res_blocks=1,
            codebook_size=16,
            embed_dim=8,
            swin_dim=16,
            swin_window=4,
            swin_depth=2,
            swin_heads=2,
        ),
        lq_encoder=dict(
            type='LQEncoder',
            base_channels=16,
            feat_dim=16,
            codebook_size=16,
            swin_dim=16,
            swin_num_rstb=1,
            swin_depth=2,
            swin_window=4,
            swin_heads=2,
        ),
        evaluator=dict(type='TokenEvaluationNet', **net_cfg),
        refiner=dict(type='TokenRefinementNet', **net_cfg),
    )


def test_convert_tool_round_trip(tmp_path):
    from mmengine.runner import load_checkpoint

    torch.manual_seed(0)
    net = tiny_iter()
    official = ckpt.ours_to_official(net.state_dict())
    assert [k for k in official if k.startswith('vqgan.')][:1] == ['vqgan.encoder.blocks.0.weight']
    train_ckpt, vq_ckpt = tmp_path / 'ITER_x2.pth', tmp_path / 'ITER_swinvqgan.pth'
    torch.save({'params': {k: v for k, v in official.items() if not k.startswith('vqgan.')}}, train_ckpt)
    torch.save({'params': {k[6:]: v for k, v in official.items() if k.startswith('vqgan.')}}, vq_ckpt)
    dst = tmp_path / 'out' / 'iter_x2_mm.pth'

    code, err = _convert(train_ckpt, dst)
    assert code == 2 and '--stage1-checkpoint ITER_swinvqgan.pth' in err and not dst.exists()
    assert _convert(train_ckpt, dst, '--stage1-checkpoint', vq_ckpt)[0] == 0
    out = torch.load(dst, weights_only=True)
    assert set(out) == {'meta', 'state_dict'} and out['meta']['converted_from'] == 'ITER_x2.pth'
    assert all(k.startswith('generator.') for k in out['state_dict'])

    class Wrapper(torch.nn.Module):  # what our MMagic models hold: the network as self.generator
        def __init__(self):
            super().__init__()
            self.generator = tiny_iter()

    model = Wrapper()
    load_checkpoint(model, str(dst), map_location='cpu', strict=True)
    for k, v in net.state_dict().items():
        assert torch.equal(model.generator.state_dict()[k], v), k

    code, err = _convert(train_ckpt, dst, '--stage1-checkpoint', vq_ckpt)
    assert code == 2 and 'exists; pass --force' in err  # no silent overwrite
    code, err = _convert(train_ckpt, dst, '--vqgan', vq_ckpt, '--force')  # the deprecated name
    assert code == 0 and '--vqgan is deprecated' in err

    rev = tmp_path / 'official_again.pth'
    assert _convert(dst, rev, '--reverse')[0] == 0
    back = torch.load(rev, weights_only=True)['params']
    assert list(back) == list(official)
    assert all(torch.equal(back[k], v) for k, v in official.items())
    code, err = _convert(train_ckpt, tmp_path / 'x.pth', '--reverse')
    assert code == 2 and 'already an official' in err
    code, err = _convert(dst, tmp_path / 'y.pth')
    assert code == 2 and 'use --reverse' in err
    code, err = _convert(tmp_path / 'nope.pth', tmp_path / 'z.pth')
    assert code == 2 and 'not found' in err
