"""Initialising stages II+III from a released ITER file (``init_from``) and the stage-I checkpoint as one concept
(``stage1_checkpoint``: one name, derived from ``stage1_config`` unless given, checked once with one error type).

The authors' files are stood in for by random tensors under every key and shape of their manifests
(tests/test_checkpoint_conversion.py builds them); those tests skip only where the project's shared reference
folder (the authors' checkpoint manifests) is absent."""

import os.path as osp
import warnings
from pathlib import Path

import pytest
import torch
from iter_model_helpers import build, one_thread  # noqa: F401  (fixture)
from mmengine.config import Config
from test_checkpoint_conversion import random_official  # the authors' files from their manifests (random values)

import iter_mm  # noqa: F401  (registers everything)
from iter_mm.errors import CheckpointMismatchError, InvalidOptionError, MissingDataError
from iter_mm.utils.checkpoint import official_to_ours
from iter_mm.utils.init_from import MIN_SHARE, init_from_checkpoint
from mmagic.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / 'shared' / 'reference'


def released_x4_model():
    """The model of the shipped configs/iter/iter_x4_realsr.py (LPIPS off: no weight files), built on the meta
    device and materialised uninitialised, then zeroed: every tensor init_from loads differs from zero."""
    cfg = Config.fromfile(str(ROOT / 'configs' / 'iter' / 'iter_x4_realsr.py'))
    with torch.device('meta'):
        model = MODELS.build(dict(cfg.model, perceptual_loss=None, data_preprocessor=None))
    model = model.to_empty(device='cpu')
    with torch.no_grad():
        for t in model.state_dict().values():
            t.zero_()
    return model


# ------------------------------------------------------------------ init_from
def test_x4_run_starts_from_the_authors_x2_file(tmp_path):
    """The authors' x4 recipe on the shipped x4 config: every E_l / phi_e / phi_r tensor of ITER_x2.pth whose name
    and shape match is loaded, tensor by tensor; the rest (the x4 E_l's own layers) is named by module and left
    as it was; the VQGAN is not touched (it is the stage-I checkpoint's)."""
    official = random_official('iter_x2')
    path = tmp_path / 'ITER_x2.pth'
    torch.save({'params': official}, path)  # views of one pool: a small file
    model = released_x4_model()
    report = init_from_checkpoint(model.generator, str(path))
    ours = official_to_ours(official)
    after = model.generator.state_dict()
    loaded, kept = 0, set()
    for key, value in after.items():
        if key.startswith('vqgan.'):
            assert not value.any(), key
        elif key in ours and ours[key].shape == value.shape:
            assert torch.equal(value, ours[key]), key
            loaded += 1
        else:
            assert not value.any(), key
            kept.add('.'.join(key.split('.')[:3]))
    assert loaded == len(report.loaded) > 0
    assert kept == {'lq_encoder.model.2', 'lq_encoder.model.3', 'lq_encoder.model.4'}  # the x4 E_l's own layers
    assert 0.9 < report.share < 1  # phi_e, phi_r and the first E_l layers: 94% of the trainable parameters
    line = report.summary()
    assert '\n' not in line and f'init_from {path} (official ITER x2 (with vqgan.*))' in line
    for module in sorted(kept):
        assert module in line.split('kept initialised: ')[1].split('; unused')[0]
    assert 'lq_encoder.model.5 (2 tensors)' in line.split('unused from the file: ')[1]  # x2 E_l's last layer


def test_swinvqgan_file_is_refused_as_init(tmp_path):
    """A stage-I (Swin-VQGAN only) file given as the ITER initialisation is named for what it is."""
    path = tmp_path / 'ITER_swinvqgan.pth'
    torch.save({'params_ema': random_official('swinvqgan')}, path)
    model = build()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as info:
        init_from_checkpoint(model.generator, str(path))
    message = str(info.value)
    assert f'init_from {path}: official Swin-VQGAN' in message and 'stage I only' in message
    assert 'ITER_x2.pth' in message and 'stage1_checkpoint' in message
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing loaded


def test_file_of_another_network_is_refused(tmp_path):
    """The released x2 file into the tiny network: almost nothing matches by name and shape, so it is refused
    (stating the share and the threshold) rather than silently training from scratch."""
    path = tmp_path / 'ITER_x2.pth'
    torch.save({'params': random_official('iter_x2')}, path)
    model = build()
    with pytest.raises(
        CheckpointMismatchError,
        match=rf'match \(by name and shape\) only \d+\.\d% of the trainable '
        rf'parameters.* at least {MIN_SHARE:.0%}',
    ):
        init_from_checkpoint(model.generator, str(path))


def test_init_weights_applies_init_from_after_the_stage1_file(tmp_path):
    """ITERModel(init_from=...) loads at init_weights (when training starts): our own checkpoints work too."""
    source = build()
    with torch.no_grad():
        for p in source.generator.refiner.parameters():
            p.add_(1.0)
    path = tmp_path / 'ours.pth'
    torch.save({'meta': {}, 'state_dict': source.state_dict()}, path)
    model = build(init_from=str(path))
    model.init_weights()
    for k, v in model.generator.state_dict().items():
        if not k.startswith('vqgan.'):
            assert torch.equal(v, source.generator.state_dict()[k]), k


# ------------------------------------------------------------------ one name for the stage-I checkpoint
def test_old_names_of_the_stage1_checkpoint_still_work_with_a_warning(tmp_path):
    from iter_mm.apis import init_model

    with pytest.warns(DeprecationWarning, match='vqgan_ckpt is deprecated'):
        model = build(vqgan_ckpt='stage1.pth')
    assert model.stage1_checkpoint == 'stage1.pth'
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert build(vqgan_ckpt=None).stage1_checkpoint is None  # e.g. a stored model_cfg: builds, no warning
        assert build('stage1.pth').stage1_checkpoint == 'stage1.pth'
    with pytest.raises(InvalidOptionError, match='name different files'), pytest.warns(DeprecationWarning):
        build('a.pth', vqgan_ckpt='b.pth')
    tiny = str(ROOT / 'configs' / 'iter' / 'iter_x4_tiny.py')
    with pytest.warns(DeprecationWarning, match='vqgan is deprecated'), pytest.raises(CheckpointMismatchError):
        init_model(tiny, {'state_dict': {}}, vqgan=str(tmp_path / 'stage1.pth'))


def test_inferencer_takes_the_stage1_checkpoint_under_both_names(tmp_path):
    """The Inferencer's loading parameter is ``stage1_checkpoint``; ``vqgan`` still works, with a warning."""
    from iter_mm.apis import MMagicInferencer, init_model
    from iter_mm.utils.checkpoint import ours_to_official

    tiny = str(ROOT / 'configs' / 'iter' / 'iter_x4_tiny.py')
    net = init_model(tiny, random_weights=True).generator
    official = ours_to_official(net.state_dict())
    novq, vq = tmp_path / 'ITER_x4.pth', tmp_path / 'ITER_swinvqgan.pth'
    torch.save({'params': {k: v for k, v in official.items() if not k.startswith('vqgan.')}}, novq)
    torch.save({'params_ema': ours_to_official(net.vqgan.state_dict())}, vq)
    make = lambda **extra: MMagicInferencer(
        'iter',
        model_config=tiny,
        model_ckpt=str(novq),
        device='cpu',  # noqa
        extra_parameters=extra,
    )
    with warnings.catch_warnings():
        warnings.simplefilter('error', DeprecationWarning)
        make(stage1_checkpoint=str(vq))
    with pytest.warns(DeprecationWarning, match='vqgan is deprecated'):
        make(vqgan=str(vq))


def test_reference_bundle_model_cfg_still_builds():
    """The train-step reference stores a model_cfg with the old ``vqgan_ckpt=None``."""
    path = SHARED / 'train_step' / 'stage2_model_cfg.py'
    if not path.is_file():
        pytest.skip(f'{path} is not available')
    cfg = Config.fromfile(str(path))
    assert 'vqgan_ckpt' in cfg.model
    assert MODELS.build(cfg.model).stage1_checkpoint is None


def test_stage1_checkpoint_is_derived_from_stage1_config_and_checked_once(tmp_path):
    """No shipped ITER config types its stage-I path; it is the final checkpoint of its stage-I config's run.
    Missing (derived or given) it is one MissingDataError, before any work, and the same type from ITERModel."""
    from iter_mm.engine.stages import derived_stage1_checkpoint, resolve_stage1_checkpoint
    from iter_mm.utils.config import load_config

    for name, stage1, iters in (
        ('iter_x4_realsr.py', 'swinvqgan_df2k-ost', 400_000),
        ('iter_x2_realsr.py', 'swinvqgan_df2k-ost', 400_000),
        ('iter_x4_tiny.py', 'swinvqgan_tiny', 300),
        ('iter_x4_demo.py', 'swinvqgan_demo', 800),
    ):
        path = str(ROOT / 'configs' / 'iter' / name)
        cfg = Config.fromfile(path)
        assert cfg.model.stage1_checkpoint is None and 'vqgan_ckpt' not in cfg.model, name
        assert derived_stage1_checkpoint(cfg, path) == osp.join('work_dirs', stage1, f'iter_{iters}.pth'), name
    tiny = str(ROOT / 'configs' / 'iter' / 'iter_x4_tiny.py')
    (tmp_path / 'stage1.py').write_text(
        f"_base_ = ['{ROOT}/configs/iter/swinvqgan_tiny.py']\n"
        f"work_dir = '{tmp_path / 's1'}'\ntrain_cfg = dict(max_iters=7)\n"
    )
    cfg = load_config(tiny)
    cfg.stage1_config = str(tmp_path / 'stage1.py')
    with pytest.raises(
        MissingDataError,
        match=rf"model.stage1_checkpoint='{tmp_path}/s1/iter_7.pth' \(the final "
        rf'checkpoint of stage1_config {tmp_path}/stage1.py\)',
    ):
        resolve_stage1_checkpoint(cfg, tiny)
    (tmp_path / 's1').mkdir()
    (tmp_path / 's1' / 'iter_7.pth').write_bytes(b'')
    assert resolve_stage1_checkpoint(cfg, tiny) == str(tmp_path / 's1' / 'iter_7.pth')
    assert cfg.model.stage1_checkpoint == str(tmp_path / 's1' / 'iter_7.pth')
    old = load_config(tiny, {'model.vqgan_ckpt': str(tmp_path / 'given.pth')})  # the deprecated name, given
    with pytest.warns(DeprecationWarning), pytest.raises(MissingDataError, match=r'given.pth\' \(given\)'):
        resolve_stage1_checkpoint(old, tiny)
    resumed = load_config(tiny)
    resumed.resume = True  # the VQGAN comes from the resumed checkpoint
    assert resolve_stage1_checkpoint(resumed, tiny) is None
    with pytest.raises(MissingDataError, match='stage-I checkpoint not found'):
        build(str(tmp_path / 'nope.pth')).init_weights()
