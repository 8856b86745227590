"""ITERModel training: stage hand-over, every training loss term and the E_l Gumbel option."""

import math

import pytest
import torch
import torch.nn.functional as F
from iter_model_helpers import (  # noqa: F401  (fixtures: one_thread, ready, stage1_ckpt)
    N_CODES,
    ROOT,
    TINY_NET,
    TINY_VQGAN,
    build,
    down4,
    one_thread,
    ready,
    samples,
    stage1_ckpt,
    textures,
)
from mmengine.config import Config
from mmengine.optim import OptimWrapper

from iter_mm.models.editors.iter_model import majority_accuracy, masked_fraction_ce
from iter_mm.models.training_noise import TrainingNoise
from mmagic.registry import MODELS


# ----------------------------------------------------------------------------------------- hand-over
def test_init_weights_loads_and_freezes_vqgan(stage1_ckpt):
    model = build(str(stage1_ckpt))
    model.init_weights()
    saved = torch.load(stage1_ckpt, weights_only=True)['state_dict']
    for k, v in model.generator.vqgan.state_dict().items():
        assert torch.equal(v, saved['generator.' + k]), k
    assert not any(p.requires_grad for p in model.generator.vqgan.parameters())
    model.train()
    assert model.generator.lq_encoder.training and not model.generator.vqgan.training


def test_stage1_checkpoint_official_layout_and_full_iter_checkpoint(stage1_ckpt, tmp_path):
    """The authors' layout ({'params': ...} with generator.* aliases) and a full ITER checkpoint also work."""
    from iter_mm.utils.checkpoint import ours_to_official

    ours = {k[len('generator.') :]: v for k, v in torch.load(stage1_ckpt, weights_only=True)['state_dict'].items()}
    official = ours_to_official(ours)
    assert any(k.startswith('generator.') for k in official)  # the decoder alias of the authors' files
    torch.save({'params': official}, tmp_path / 'official.pth')
    full = build(str(stage1_ckpt))
    full.init_weights()
    torch.save({'state_dict': full.state_dict()}, tmp_path / 'full_iter.pth')
    for name in ('official.pth', 'full_iter.pth'):
        model = build(str(tmp_path / name))
        model.init_weights()
        for k, v in model.generator.vqgan.state_dict().items():
            assert torch.equal(v, ours[k]), (name, k)


def test_missing_stage1_checkpoint_is_a_clear_error(tmp_path):
    from iter_mm.errors import MissingDataError

    missing = tmp_path / 'nope' / 'vqgan.pth'
    with pytest.raises(MissingDataError, match='stage-I checkpoint not found.*nope/vqgan.pth'):
        build(str(missing)).init_weights()


def test_mismatched_stage1_checkpoint_is_a_clear_error(tmp_path):
    from iter_mm.errors import CheckpointMismatchError

    other = MODELS.build(dict(TINY_VQGAN, codebook_size=16))
    path = tmp_path / 'other.pth'
    torch.save({'state_dict': {'generator.' + k: v for k, v in other.state_dict().items()}}, path)
    with pytest.raises(
        CheckpointMismatchError,
        match=r'cannot load stage1_checkpoint .*other.pth .*into the frozen '
        r'VQGAN: .*shape mismatch',
    ):
        build(str(path)).init_weights()


def test_training_without_vqgan_weights_refuses():
    model = build(None)
    model.init_weights()
    gt = textures(1, 32)
    with pytest.raises(RuntimeError, match='frozen VQGAN has no trained weights'):
        model.forward_train(down4(gt), samples(gt))


def test_full_checkpoint_supplies_the_vqgan(ready):
    """A full ITER state dict loaded later wins over (and replaces the need for) the stage-I file."""
    fresh = build(None)
    fresh.load_state_dict(ready.state_dict())
    assert fresh._vqgan_ready
    gt = textures(2, 32)
    assert 'loss_refine_ce' in fresh.forward_train(down4(gt), samples(gt))
    partial = build(None)
    partial.load_state_dict({k: v for k, v in ready.state_dict().items() if 'vqgan' not in k}, strict=False)
    assert not partial._vqgan_ready


def test_tiny_config_loads_the_tiny_stage1_checkpoint(tmp_path):
    """iter_x4_tiny.py's VQGAN is swinvqgan_tiny.py's: an MMEngine checkpoint of that stage-I model (generator +
    discriminator, pickled log state as tools/train.py writes) is its stage1_checkpoint."""
    from mmengine.logging import HistoryBuffer

    cfg = Config.fromfile(str(ROOT / 'configs/iter/iter_x4_tiny.py'))
    stage1_cfg = Config.fromfile(str(ROOT / 'configs/iter/swinvqgan_tiny.py'))
    assert cfg.model.generator.vqgan.to_dict() == stage1_cfg.model.generator.to_dict()
    stage1 = MODELS.build(dict(stage1_cfg.model, data_preprocessor=None))  # (its preprocessor needs the scope)
    path = tmp_path / 'iter_300.pth'
    torch.save(
        {
            'meta': {'iter': 300},
            'state_dict': stage1.state_dict(),
            'message_hub': {'log_scalars': {'train/loss': HistoryBuffer([1.0], [1])}},
        },
        path,
    )
    model = MODELS.build(dict(cfg.model, stage1_checkpoint=str(path)))  # no LPIPS: builds without weight files
    model.init_weights()
    for k, v in model.generator.vqgan.state_dict().items():
        assert torch.equal(v, stage1.generator.state_dict()[k]), k
    grid = model.generator.lq_pad_multiple * model.generator.scale
    assert cfg.gt_crop % grid == 0


# ----------------------------------------------------------------------------------------- training
def test_train_step_updates_token_nets_never_vqgan(ready):
    model = ready
    model.train()
    before = {k: v.clone() for k, v in model.generator.state_dict().items()}
    wrapper = OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99)))
    gt = textures(2, 32)
    data = dict(inputs=[(x * 255).round() for x in down4(gt)], data_samples=[samples((g * 255).round()) for g in gt])
    log = model.train_step(data, wrapper)
    for key in (
        'loss_lq_ce',
        'loss_eval_lq',
        'loss_eval_refined_ce',
        'loss_refine_ce',
        'acc_lq',
        'acc_refine',
        'acc_eval',
        'acc_majority',
    ):
        assert key in log and math.isfinite(float(log[key])), key
    after = model.generator.state_dict()
    for name, p in model.generator.named_parameters():
        changed = not torch.equal(before[name], after[name])
        assert changed == (not name.startswith('vqgan.')), name


def _stub(model, monkeypatch, el_logits, eval_lq_logits, ref_logits, eval_ref_logits, gt_tokens, mask):
    """Replace every network output by fixed logits; record what phi_e / phi_r receive."""
    net, calls = model.generator, {'eval': [], 'ref': []}
    monkeypatch.setattr(net.vqgan, 'encode_indices', lambda img: gt_tokens)
    monkeypatch.setattr(net.lq_encoder, 'forward', lambda lq: el_logits)

    def evaluator(tokens, cond):
        calls['eval'].append((tokens.clone(), cond.clone()))
        return eval_lq_logits if len(calls['eval']) == 1 else eval_ref_logits

    def refiner(cond_tokens, cond_flag, tokens, keep):
        calls['ref'].append((cond_tokens.clone(), cond_flag.clone(), tokens.clone(), keep.clone()))
        return ref_logits

    monkeypatch.setattr(net.evaluator, 'forward', evaluator)
    monkeypatch.setattr(net.refiner, 'forward', refiner)
    model.train_noise = _FixedMask(mask)
    return calls


class _FixedMask(TrainingNoise):
    """The given training mask; the Gumbel noise from torch's global RNG."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.mask = mask

    def training_mask(self, batch, h, w, device=None):
        return self.mask


def _nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-position -log softmax(logits)[target], written out: (B, C, h, w), (B, h, w) -> (B, h, w)."""
    z = logits.double()
    lse = z.exp().sum(1).log()
    return lse - z.gather(1, target[:, None]).squeeze(1)


def test_loss_terms_match_hand_computation(ready, monkeypatch):
    g = torch.Generator().manual_seed(3)
    b, h, w = 2, 4, 4
    el_logits = torch.randn(b, N_CODES, h, w, generator=g, requires_grad=True)
    gt_tokens = torch.randint(0, N_CODES, (b, h, w), generator=g)
    lq_tokens = el_logits.argmax(1)
    gt_tokens[0, :2] = lq_tokens[0, :2]  # some correct S_l tokens
    eval_lq = torch.randn(b, 2, h, w, generator=g, requires_grad=True)
    ref = torch.randn(b, N_CODES, h, w, generator=g, requires_grad=True)
    eval_ref = torch.randn(b, 2, h, w, generator=g, requires_grad=True)
    mask = torch.zeros(b, h, w)
    mask[0, :1] = 1  # 4 of 16 masked
    mask[1, 1:] = 1  # 12 of 16 masked
    calls = _stub(ready, monkeypatch, el_logits, eval_lq, ref, eval_ref, gt_tokens, mask)
    gt = textures(b, 32)
    losses = ready.forward_train(down4(gt), samples(gt))

    # E_l CE (Eq. 2)
    assert float(losses['loss_lq_ce']) == pytest.approx(float(_nll(el_logits, gt_tokens).mean()), rel=1e-5)
    # phi_r: mean_b[ masked fraction_b * mean_p CE ] = (4/16 * ce_0 + 12/16 * ce_1) / 2
    ce = _nll(ref, gt_tokens).mean((1, 2))
    assert float(losses['loss_refine_ce']) == pytest.approx(float((0.25 * ce[0] + 0.75 * ce[1]) / 2), rel=1e-5)
    # phi_e on S_l, class-balanced (Eq. 9): w_c = (1 - beta) / (1 - beta^n_c), weighted mean
    label = (lq_tokens == gt_tokens).long()
    n1 = int(label.sum())
    n0 = label.numel() - n1
    wc = [(1 - 0.9999) / (1 - 0.9999**n + 1e-8) for n in (n0, n1)]
    wi = torch.where(label == 1, wc[1], wc[0]).double()
    expect = (wi * _nll(eval_lq, label)).sum() / wi.sum()
    assert float(losses['loss_eval_lq']) == pytest.approx(float(expect), rel=1e-5)
    # phi_e on argmax(phi_r), plain CE with label [argmax == S_h]
    ref_tok = ref.argmax(1)
    expect = _nll(eval_ref, (ref_tok == gt_tokens).long()).mean()
    assert float(losses['loss_eval_refined_ce']) == pytest.approx(float(expect), rel=1e-5)

    # inputs of the networks (docs/faithfulness.md#token-networks, #network-calls-per-iteration): two phi_e calls, none
    # wasted
    assert len(calls['eval']) == 2 and len(calls['ref']) == 1
    assert torch.equal(calls['eval'][0][0], lq_tokens) and torch.equal(calls['eval'][0][1], lq_tokens)
    assert torch.equal(calls['eval'][1][0], ref_tok) and torch.equal(calls['eval'][1][1], lq_tokens)
    cond, flag, tokens, keep = calls['ref'][0]
    assert torch.equal(cond, lq_tokens) and torch.equal(tokens, gt_tokens) and torch.equal(keep, 1 - mask)
    assert torch.equal(flag, (eval_lq.argmax(1) == 0).float())
    # accuracies
    assert float(losses['acc_lq']) == pytest.approx(float((lq_tokens == gt_tokens).float().mean()))
    assert float(losses['acc_refine_masked']) == pytest.approx(
        float(((ref_tok == gt_tokens).float() * mask).sum() / 16)
    )
    counts = torch.bincount(gt_tokens.flatten())
    assert float(losses['acc_majority']) == pytest.approx(int(counts.max()) / 32)


def test_masked_fraction_ce_and_majority_helpers():
    logits = torch.zeros(1, 4, 1, 2)  # uniform: CE = log 4 everywhere
    mask = torch.tensor([[[1.0, 0.0]]])
    assert float(masked_fraction_ce(logits, torch.zeros(1, 1, 2, dtype=torch.long), mask)) == pytest.approx(
        0.5 * math.log(4)
    )
    assert float(majority_accuracy(torch.tensor([[1, 1, 2, 3]]))) == 0.5


def test_terms_switch_off(ready, monkeypatch):
    model = build(ready.stage1_checkpoint, lq_ce_weight=0, eval_lq_loss=None, eval_refined_ce_weight=0)
    model.init_weights()
    calls = []
    orig = model.generator.evaluator.forward
    monkeypatch.setattr(model.generator.evaluator, 'forward', lambda *a: calls.append(1) or orig(*a))
    gt = textures(2, 32)
    losses = model.forward_train(down4(gt), samples(gt))
    assert sorted(k for k in losses if k.startswith('loss')) == ['loss_refine_ce']
    assert len(calls) == 1  # only the call that builds phi_r's flag


@pytest.mark.parametrize('fixed', [True, False])
def test_el_gumbel_gradient_option(stage1_ckpt, fixed):
    """Fixed: the L1 / perceptual terms on E_l's Gumbel decode reach E_l. Official: they are constants."""
    torch.manual_seed(0)
    model = build(
        str(stage1_ckpt),
        pixel_loss=dict(type='L1Loss', loss_weight=1.0),
        perceptual_loss=dict(type='L1Loss', loss_weight=1.0),
        el_gumbel_grad=fixed,
        compute_inert_terms=True,
    )
    model.init_weights()
    gt = textures(2, 32)
    torch.manual_seed(7)
    losses = model.forward_train(down4(gt), samples(gt))
    assert losses['loss_pix'].requires_grad == fixed
    el_params = list(model.generator.lq_encoder.parameters())
    if fixed:
        for key in ('loss_pix', 'loss_perceptual'):
            grads = torch.autograd.grad(losses[key], el_params, allow_unused=True, retain_graph=True)
            assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0, key
    else:
        grads = torch.autograd.grad(losses['loss_perceptual'], el_params, allow_unused=True, retain_graph=True)
        assert all(g is None for g in grads)
    # the refined half of the perceptual term always trains phi_r
    ref_grads = torch.autograd.grad(
        losses['loss_perceptual'], list(model.generator.refiner.parameters()), allow_unused=True
    )
    assert sum(float(g.abs().sum()) for g in ref_grads if g is not None) > 0


def test_el_gumbel_option_keeps_the_loss_value(stage1_ckpt):
    """Both modes compute the same numbers (same RNG): only the gradient differs."""
    values = []
    for fixed in (True, False):
        model = build(
            str(stage1_ckpt),
            pixel_loss=dict(type='L1Loss', loss_weight=1.0),
            el_gumbel_grad=fixed,
            compute_inert_terms=True,
        )
        model.init_weights()
        gt = textures(2, 32)
        torch.manual_seed(11)
        values.append(float(model.forward_train(down4(gt), samples(gt))['loss_pix']))
    assert values[0] == pytest.approx(values[1], rel=1e-6)


def test_inert_terms_are_skipped_with_the_same_gradients(stage1_ckpt):
    """el_gumbel_grad=False: E_l's decode yields constants. By default it is not made (one decode per iteration
    less), E_l's Gumbel noise is still drawn (the same phi_r sample), and every gradient is that of the authors'
    terms; the perceptual value loses only the constant half: 0.5 * mean(E_l part), here 0.25 * loss_pix."""
    kwargs = dict(
        pixel_loss=dict(type='L1Loss', loss_weight=1.0),
        el_gumbel_grad=False,
        perceptual_loss=dict(type='L1Loss', loss_weight=0.5),
    )
    gt = textures(2, 32, seed=5)
    runs = []
    for inert in (True, False):
        model = build(str(stage1_ckpt), compute_inert_terms=inert, **kwargs)
        model.init_weights()
        decodes = []
        orig = model.generator.vqgan.decode_onehot
        model.generator.vqgan.decode_onehot = lambda x, _o=orig: decodes.append(1) or _o(x)
        torch.manual_seed(3)
        losses = model.forward_train(down4(gt), samples(gt))
        total = sum(v for k, v in losses.items() if k.startswith('loss'))
        params = [p for p in model.parameters() if p.requires_grad]
        grads = torch.autograd.grad(total, params)
        runs.append((losses, grads, len(decodes), torch.rand(1)))  # the RNG after the step
    (full, g_full, n_full, r_full), (skip, g_skip, n_skip, r_skip) = runs
    assert (n_full, n_skip) == (2, 1)
    assert 'loss_pix' not in skip and torch.equal(r_full, r_skip)
    for k in ('loss_lq_ce', 'loss_eval_lq', 'loss_refine_ce', 'loss_eval_refined_ce'):
        assert torch.equal(full[k], skip[k]), k
    assert float(full['loss_perceptual'] - skip['loss_perceptual']) == pytest.approx(
        0.25 * float(full['loss_pix']), rel=1e-5
    )
    for a, b in zip(g_full, g_skip):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert sum(float(g.abs().sum()) for g in g_skip) > 0


def test_bad_training_shapes(ready):
    gt = textures(1, 36)
    with pytest.raises(ValueError, match='must be a multiple of 16'):
        ready.forward_train(F.avg_pool2d(gt, 4), samples(gt))
    gt = textures(1, 32)
    with pytest.raises(ValueError, match='x scale 4 !='):
        ready.forward_train(F.avg_pool2d(gt, 2), samples(gt))


def test_short_training_beats_majority_token(stage1_ckpt):
    """E_l and phi_r learn: their token accuracy beats always predicting the most frequent token."""
    torch.manual_seed(0)
    model = build(str(stage1_ckpt))
    model.init_weights()
    model.train()
    wrapper = OptimWrapper(torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.9, 0.99)))
    gt = textures(4, 32, seed=5)
    data = dict(inputs=[(x * 255) for x in down4(gt)], data_samples=[samples(g * 255) for g in gt])
    first = model.train_step(data, wrapper)
    assert float(first['acc_lq']) < float(first['acc_majority'])  # untrained: below the baseline (0 vs 0.09)
    for _ in range(40):
        log = model.train_step(data, wrapper)
    base = float(log['acc_majority'])
    assert float(log['acc_lq']) > 2 * base  # measured: 1.0 vs 0.094
    assert float(log['acc_refine']) > 2 * base and float(log['acc_refine_masked']) > 2 * base  # 0.9 / 0.93
