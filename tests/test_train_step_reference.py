"""One training step of each stage against the authors' numbers (the train-step reference bundle).

The bundle (``reference/train_step`` of the project's shared folder, found through ``ITER_MM_SHARED`` or as the folder
``shared`` next to the repository) holds, for tiny float64 networks, the weights, the batch, the random draws and the
losses and gradients that the authors' training code computed. One ``train_step`` of iter-mm on the same inputs
must give the same losses and the gradient of every trainable parameter within 1e-9 relative; stage I also the
spectral-norm vectors after the step. The recipe is the bundle's README.
"""

import copy
import os
from pathlib import Path

import pytest
import torch
from iter_model_helpers import NoStepOptimWrapper
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.registry import init_default_scope

import iter_mm  # noqa: F401  (registers the plugin)
from iter_mm.models.training_noise import ReplayNoise
from mmagic.registry import MODELS
from mmagic.structures import DataSample

ROOT = Path(__file__).resolve().parents[1]
RTOL = 1e-9


def _bundle_dir() -> Path:
    shared = os.environ.get('ITER_MM_SHARED')
    return (Path(shared) if shared else ROOT.parent / 'shared') / 'reference' / 'train_step'


def _load(stage_file: str) -> dict:
    path = _bundle_dir() / stage_file
    if not path.is_file():
        pytest.skip(f'train-step reference bundle not found: {path} (set ITER_MM_SHARED to the shared folder)')
    return torch.load(path, weights_only=True)


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _build(b: dict):
    """The model of the stored config in float64 with the stored weights (derived Swin buffers rebuilt)."""
    init_default_scope('mmagic')
    model = MODELS.build(copy.deepcopy(b['model_cfg'])).double()
    sd = model.state_dict()
    assert set(b['weights']) - set(sd) == set()
    assert set(sd) - set(b['weights']) == set(b['derived_buffers'])
    for key, info in b['derived_buffers'].items():
        assert list(sd[key].shape) == list(info['shape']), key
        assert float(sd[key].double().sum()) == pytest.approx(info['sum'], rel=1e-12, abs=1e-12), key
    model.load_state_dict({**sd, **b['weights']}, strict=True)
    return model.train()


def _optim(params) -> OptimWrapper:
    """Backward only: the gradients of the step stay on the parameters."""
    return NoStepOptimWrapper(torch.optim.SGD(list(params), lr=0.0))


def _float_is_double(monkeypatch) -> None:
    """``Tensor.float()`` returns float64, as when the reference was computed: both codes cast to float32 in places
    (iter-mm's CEs, token embeddings and Gumbel inputs; pyiqa's SSIM window, outside iter-mm), ~1e-7 otherwise."""
    monkeypatch.setattr(
        torch.Tensor,
        'float',
        lambda self, memory_format=torch.preserve_format: self.to(torch.float64, memory_format=memory_format),
    )


def _replay(model, draws: dict) -> ReplayNoise:
    """The stored draws as the model's training noise: the mask rate and the mask uniforms go through iter-mm's
    own masking rule, the Exp(1) samples to the two Gumbel decodes (E_l's, then phi_r's)."""
    model.train_noise = ReplayNoise(
        draws['mask_rate_r'], draws['mask_uniforms'], [draws['gumbel_exp_el'], draws['gumbel_exp_ref']]
    )
    return model.train_noise


def _rel(a: torch.Tensor, b: torch.Tensor, denom: float) -> float:
    return float((a.double() - b.double()).norm()) / denom


def _check_grads(model, b: dict) -> None:
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    assert set(grads) == set(b['grads'])
    assert set(b['grads']) <= set(b['trainable'])
    group_max = {
        g: max(float(v.norm()) for k, v in b['grads'].items() if k.startswith(prefix))
        for g, prefix in b['grad_groups'].items()
    }
    worst = {}
    for name, ref in b['grads'].items():
        assert grads[name].dtype == torch.float64, name
        if name in b['near_zero_grads']:
            denom = max(m for g, m in group_max.items() if name.startswith(b['grad_groups'][g]))
        else:
            denom = float(ref.norm())
        worst[name] = _rel(grads[name], ref, denom)
    bad = {k: v for k, v in worst.items() if not v <= RTOL}
    assert not bad, f'{len(bad)} gradients off by more than {RTOL} relative, e.g. {sorted(bad.items())[:5]}'


def _check_losses(log_vars: dict, losses: dict) -> None:
    for key, ref in losses.items():
        got = float(torch.as_tensor(log_vars[key]).detach())
        assert abs(got - ref) <= RTOL * abs(ref), (key, got, ref)


def _data(b: dict, inputs_key: str) -> dict:
    meta = dict(gt_channel_order='rgb', img_channel_order='rgb')
    return dict(
        inputs=[x.double() for x in b['batch'][inputs_key]],
        data_samples=[DataSample(gt_img=x.double(), metainfo=meta) for x in b['batch']['gt']],
    )


def test_stage2_step_matches_the_authors(monkeypatch):
    b = _load('stage2.pt')
    model = _build(b)
    data = _data(b, 'lq')
    noise = _replay(model, b['draws'])
    keep = []  # what phi_r sees: 1 - the training mask
    model.generator.refiner.register_forward_pre_hook(lambda module, args: keep.append(args[3]))
    _float_is_double(monkeypatch)
    log_vars = model.train_step(data, _optim(p for p in model.parameters() if p.requires_grad))
    monkeypatch.undo()
    assert noise.exhausted  # every draw consumed
    assert len(keep) == 1 and torch.equal(1 - keep[0], b['draws']['mask'])
    _check_losses(log_vars, b['losses'])
    _check_grads(model, b)
    for key, value in b['token_accuracies'].items():
        assert float(torch.as_tensor(log_vars[key]).detach()) == pytest.approx(value, abs=1e-12), key


def test_stage1_step_matches_the_authors(monkeypatch):
    b = _load('stage1.pt')
    assert not b['draws']
    model = _build(b)
    data = _data(b, 'gt')
    optim = OptimWrapperDict(
        generator=_optim(model.generator.parameters()), discriminator=_optim(model.discriminator.parameters())
    )
    _float_is_double(monkeypatch)
    log_vars = model.train_step(data, optim)
    monkeypatch.undo()
    _check_losses(log_vars, b['losses'])
    generator_terms = ('loss_vq', 'loss_pix', 'loss_ssim', 'loss_perceptual', 'loss_gan')
    total = sum(float(torch.as_tensor(log_vars[k]).detach()) for k in generator_terms)
    assert abs(total - b['losses_extra']['generator_total']) <= RTOL * abs(b['losses_extra']['generator_total'])
    _check_grads(model, b)
    state = model.state_dict()
    for key, ref in b['discriminator_sn_after_step'].items():
        assert _rel(state[key], ref, float(ref.norm())) <= RTOL, key
