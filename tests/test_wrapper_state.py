"""Stage-I checkpoints under MMEngine's separate DDP wrapper (one process, gloo): the keys are plain, and they load
into the wrapped model through MMEngine's loader (``--resume``, ``load_from``) and torch's, from plain and from
older ``.module.`` checkpoints; the weights arrive, not only the key names."""

import socket

import pytest
import torch
import torch.distributed as dist
from iter_model_helpers import one_thread  # noqa: F401  (autouse: tiny networks on one thread)
from mmengine.model import MMSeparateDistributedDataParallel
from mmengine.runner.checkpoint import load_state_dict as mmengine_load_state_dict
from test_swinvqgan_model import _tiny_model_cfg

import iter_mm  # noqa: F401  (registers the plugin)
from mmagic.registry import MODELS


@pytest.fixture(scope='module')
def gloo_world():
    """A process group of one CPU process, as DDP needs; torn down after the module."""
    if dist.is_initialized():
        pytest.skip('a process group is already initialised in this process')
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _model(seed: int):
    torch.manual_seed(seed)
    return MODELS.build(_tiny_model_cfg())


def _wrapped(seed: int) -> MMSeparateDistributedDataParallel:
    return MMSeparateDistributedDataParallel(_model(seed))  # as the configs' model_wrapper_cfg


def _plain_state(seed: int) -> dict:
    return {k: v.clone() for k, v in _model(seed).state_dict().items()}


def _assert_holds(model: torch.nn.Module, expected: dict) -> None:
    """Every entry of ``expected`` is in ``model`` (plain key names), bitwise."""
    got = model.state_dict()
    assert got.keys() == expected.keys()
    differ = [k for k in expected if not torch.equal(got[k], expected[k])]
    assert not differ, differ[:5]


def test_wrapped_model_saves_plain_keys(gloo_world):
    wrapped = _wrapped(0)
    assert isinstance(wrapped.module.generator, torch.nn.parallel.DistributedDataParallel)
    keys = wrapped.module.state_dict().keys()
    assert any(k.startswith('generator.') for k in keys) and any(k.startswith('discriminator.') for k in keys)
    assert not [k for k in keys if '.module.' in k]
    assert keys == _model(0).state_dict().keys()


@pytest.mark.parametrize('legacy', [False, True], ids=['plain', 'module-keys'])
def test_mmengine_loader_fills_the_wrapped_networks(gloo_world, legacy):
    """What ``--resume`` and ``load_from`` do under DDP: MMEngine's ``load_state_dict`` on ``runner.model.module``.
    Before the fix every generator/discriminator key was 'unexpected' and the networks kept their initial weights."""
    source = _plain_state(1)
    if legacy:  # checkpoints of older versions held the wrapper's key names
        source = {
            k.replace('generator.', 'generator.module.', 1).replace('discriminator.', 'discriminator.module.', 1)
            if k.split('.')[0] in ('generator', 'discriminator')
            else k: v
            for k, v in source.items()
        }
    wrapped = _wrapped(0)
    messages = []
    mmengine_load_state_dict(wrapped.module, source, strict=False, logger=messages.append)
    assert not messages, messages  # no missing or unexpected key
    _assert_holds(wrapped.module, _plain_state(1))


def test_torch_loader_fills_the_wrapped_networks(gloo_world):
    wrapped = _wrapped(0)
    result = wrapped.module.load_state_dict(_plain_state(1), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    _assert_holds(wrapped.module, _plain_state(1))


def test_unwrapped_model_loads_module_keys(gloo_world):
    """A checkpoint with ``generator.module.*`` keys loads into a single-process model (test, inference)."""
    source = {
        (k.replace('generator.', 'generator.module.', 1) if k.startswith('generator.') else k): v
        for k, v in _plain_state(1).items()
    }
    model = _model(0)
    result = model.load_state_dict(source, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    _assert_holds(model, _plain_state(1))
