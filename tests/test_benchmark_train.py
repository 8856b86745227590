"""The training benchmark (iter_mm.evaluation.train_benchmark, tools/benchmark_train.py) and the training
iterations it times: no network call that no loss needs."""

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from iter_model_helpers import (  # noqa: F401  (fixtures: one_thread, stage1_ckpt)
    ROOT,
    TINY_NET,
    build,
    down4,
    one_thread,
    samples,
    stage1_ckpt,
    textures,
)
from mmengine.optim import OptimWrapper, OptimWrapperDict
from tool_runner import run_tool

from iter_mm.evaluation import train_benchmark as bt
from iter_mm.utils.config import load_config
from mmagic.registry import MODELS
from mmagic.structures import DataSample

TINY_STAGE1 = str(ROOT / 'configs' / 'iter' / 'swinvqgan_tiny.py')
TINY_ITER = str(ROOT / 'configs' / 'iter' / 'iter_x4_tiny.py')
COUNTED = ('backward', 'optimizer_step')


def _counted_step(stage, model, data, wrapper, parts):
    """One ``train_step`` with the benchmark's timer attached -> (log_vars, calls of ``parts``)."""
    timer = bt.attach_timer(stage, model, wrapper, torch.device('cpu'))
    try:
        log = model.train_step(copy.deepcopy(data), wrapper)
    finally:
        timer.remove()
    return log, {k: timer.calls.get(k, 0) for k in parts}


def _params(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


@pytest.mark.parametrize('el_gumbel_grad', [True, False])
def test_iter_step_equals_the_authors_calls_with_fewer_calls(stage1_ckpt, el_gumbel_grad):
    """Our stage II+III iteration gives exactly the losses and parameter updates of the authors' call pattern
    (docs/faithfulness.md#network-calls-per-iteration: a full VQGAN forward for S_h, four phi_e passes), with 1 E_l, 2
    phi_e, 1 phi_r, the GT
    encoder only and one decode per image loss."""
    kwargs = dict(
        el_gumbel_grad=el_gumbel_grad,
        pixel_loss=dict(type='L1Loss', loss_weight=1.0),
        perceptual_loss=dict(type='L1Loss', loss_weight=0.5),  # in LPIPS's place: both decodes run
        compute_inert_terms=True,
    )  # the authors' constant terms too (else skipped: test_iter_model)
    ours = build(str(stage1_ckpt), **kwargs)
    ours.init_weights()
    authors = bt.authors_step_model_class()(generator=copy.deepcopy(TINY_NET), **kwargs)
    authors.load_state_dict(ours.state_dict())  # the same weights, frozen VQGAN included
    gt = textures(2, 32, seed=3)
    data = dict(inputs=[(x * 255).round() for x in down4(gt)], data_samples=[samples((g * 255).round()) for g in gt])
    before = _params(ours)
    parts = ('E_l', 'phi_e', 'phi_r', 'vqgan_encoder', 'vqgan_decoder') + COUNTED
    logs, after, calls = [], [], []
    for model in (ours, authors):
        model.train()
        wrapper = OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99)))
        torch.manual_seed(7)  # the training mask and the Gumbel noise
        log, n = _counted_step('23', model, data, wrapper, parts)
        logs.append(log)
        calls.append(n)
        after.append(_params(model))
    assert calls[0] == dict(E_l=1, phi_e=2, phi_r=1, vqgan_encoder=1, vqgan_decoder=2, backward=1, optimizer_step=1)
    assert calls[1] == dict(calls[0], phi_e=4, vqgan_decoder=3)  # + phi_e (b), (c) and the GT decode
    loss_keys = {k for k in logs[1] if k.startswith('loss')}
    assert loss_keys == {
        'loss',
        'loss_lq_ce',
        'loss_eval_lq',
        'loss_refine_ce',
        'loss_eval_refined_ce',
        'loss_pix',
        'loss_perceptual',
    }
    for k in loss_keys:
        assert torch.equal(logs[0][k].detach(), logs[1][k].detach()), k
    for k, p in after[0].items():
        assert torch.equal(p, after[1][k]), k
        # every trainable network moved (so the equality above compares real updates); the VQGAN did not
        assert torch.equal(p, before[k]) == k.startswith('generator.vqgan.'), k


def test_stage1_step_is_the_hand_written_iteration():
    """Stage I makes one generator forward, three discriminator calls (G term, real, fake) and three backward
    passes, as the authors' HQ iteration (docs/faithfulness.md#stage-i-training), and its updates equal that iteration
    written out."""
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(load_config(TINY_STAGE1).model))
    ref, init = copy.deepcopy(model), copy.deepcopy(model)
    g = torch.Generator().manual_seed(1)
    imgs = (torch.rand(2, 3, 32, 32, generator=g) * 255).round()
    data = dict(inputs=list(imgs), data_samples=[DataSample(gt_img=x.clone()) for x in imgs])

    def adam(net):
        return torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.99))

    wrapper = OptimWrapperDict(
        generator=OptimWrapper(adam(model.generator)), discriminator=OptimWrapper(adam(model.discriminator))
    )
    parts = (
        'vqgan_encoder',
        'quantizer',
        'vqgan_decoder',
        'discriminator',
        'backward:generator',
        'backward:discriminator',
        'optimizer_step:generator',
        'optimizer_step:discriminator',
    )
    log, calls = _counted_step('1', model.train(), data, wrapper, parts)
    assert calls == {
        'vqgan_encoder': 1,
        'quantizer': 1,
        'vqgan_decoder': 1,
        'discriminator': 3,
        'backward:generator': 1,
        'backward:discriminator': 2,
        'optimizer_step:generator': 1,
        'optimizer_step:discriminator': 1,
    }

    # the same iteration by hand: G losses with D frozen, one G update; D real and fake, one D update
    ref.train()
    opt_g, opt_d = adam(ref.generator), adam(ref.discriminator)
    x = imgs / 255.0
    rec, vq, _ = ref.generator(x)
    ref.discriminator.requires_grad_(False)
    loss_g = {
        'loss_vq': vq,
        'loss_pix': (rec - x).abs().mean(),
        'loss_ssim': ref.ssim_loss(rec, x),
        'loss_gan': -0.1 * ref.discriminator(rec).mean(),
    }
    sum(loss_g.values()).backward()
    opt_g.step()
    ref.discriminator.requires_grad_(True)
    loss_d_real = F.relu(1 - ref.discriminator(x)).mean()
    loss_d_real.backward()
    loss_d_fake = F.relu(1 + ref.discriminator(rec.detach())).mean()
    loss_d_fake.backward()
    opt_d.step()
    expected = dict(loss_g, loss_d_real=loss_d_real, loss_d_fake=loss_d_fake)
    assert set(log) == set(expected)
    for k, v in expected.items():
        assert torch.equal(log[k].detach(), v.detach()), k
    moved = set()
    for (k, p), q, p0 in zip(model.named_parameters(), ref.parameters(), init.parameters()):
        assert torch.equal(p, q), k
        moved |= {k.split('.')[0]} if not torch.equal(p, p0) else set()
    assert moved == {'generator', 'discriminator'}  # real updates were compared


def test_benchmark_reports_every_stage(tmp_path):
    """The tool times the real train_step of each stage on the tiny configs and prints one JSON object."""
    out = tmp_path / 'bench.json'
    done = run_tool(
        'benchmark_train',
        '--stage1-config',
        TINY_STAGE1,
        '--iter-config',
        TINY_ITER,
        '--gt-size',
        '32',
        '--batch',
        '1',
        '--iters',
        '2',
        '--warmup',
        '0',
        '--threads',
        '1',
        '--stages',
        '1',
        '23',
        'authors23',
        '--interleave',
        '--out',
        out,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout)  # stdout holds the JSON object and nothing else
    assert printed == json.loads(out.read_text())
    assert (printed['gt_size'], printed['batch'], printed['amp'], printed['interleave']) == (32, 1, False, True)
    assert all(e['peak_rss_mib'] > 0 for e in printed['stages'].values())
    s1, s23, a23 = (printed['stages'][k] for k in ('1', '23', 'authors23'))
    for entry in (s1, s23, a23):
        assert len(entry['times_s']) == len(entry['cpu_times_s']) == 2 and entry['median_s'] > 0 < entry['cpu_median_s']
        assert entry['breakdown_s']['total'] == pytest.approx(
            sum(v for k, v in entry['breakdown_s'].items() if k != 'total')
        )
        assert all(v > 0 for v in entry['seconds_per_call'].values())
    assert s1['calls_per_iter']['discriminator'] == 3 and s1['calls_per_iter']['backward:discriminator'] == 2
    assert {k: s23['calls_per_iter'][k] for k in ('E_l', 'phi_e', 'phi_r', 'vqgan_encoder', 'vqgan_decoder')} == dict(
        E_l=1, phi_e=2, phi_r=1, vqgan_encoder=1, vqgan_decoder=1
    )  # tiny config: L1 on E_l's decode only
    assert a23['calls_per_iter']['phi_e'] == 4 and a23['calls_per_iter']['vqgan_decoder'] == 2
    assert (s23['el_gumbel_grad'], a23['el_gumbel_grad']) == (True, False)
    assert set(s23['losses']) >= {
        'loss_lq_ce',
        'loss_eval_lq',
        'loss_refine_ce',
        'loss_eval_refined_ce',
        'loss_pix',
        'acc_lq',
    }
    assert printed['authors23_over_23'] == pytest.approx(a23['median_s'] / s23['median_s'])


def test_perceptual_replacement_and_bad_arguments():
    cfg = dict(perceptual_loss=dict(type='LPIPSLoss', loss_weight=0.7))
    assert bt.replace_perceptual(cfg, 'l1') == 'LPIPSLoss'
    assert cfg['perceptual_loss'] == dict(type='L1Loss', loss_weight=0.7, reduction='mean')
    cfg = dict(perceptual_loss=dict(type='LPIPSLoss'))
    assert bt.replace_perceptual(cfg, 'none') == 'LPIPSLoss' and cfg['perceptual_loss'] is None
    assert bt.replace_perceptual(dict(perceptual_loss=None), 'l1') is None
    for bad in (['--iters', '0'], ['--stages', '4'], ['--perceptual', 'lpips']):
        done = run_tool('benchmark_train', *bad)
        assert done.returncode == 2 and 'usage:' in done.stderr and not done.stdout, bad
