"""The fast inference paths keep the outputs: fused oneDNN kernels, window-order token stream, lookups, subpixel
upsampling, channels_last GroupNorm, chunked token sampling and the caches, each against the reference (plain
PyTorch ops, ``reference_kernels``) or an independent formula; tokens identical, images within 1e-4."""

import json
import os

import pytest
import torch
import torch.nn.functional as F

from iter_mm.models import sampling as S
from iter_mm.models.archs import ITERNet, LQEncoder, SwinVQGAN, TokenEvaluationNet, TokenRefinementNet, fast_ops
from iter_mm.models.archs.fast_ops import call_cache, reference_kernels
from iter_mm.models.archs.swin import (
    GatedMlp,
    SwinLayers,
    WindowAttention,
    reorder,
    shift_attention_mask,
    window_order,
    window_partition,
)
from iter_mm.models.archs.vqgan import Upsample, VQGANResBlock
from iter_mm.models.inference import restore_image

CODES = 64
NET = dict(mid_dim=32, num_rstb=1, depth=2, window_size=4, num_heads=4)
LQ = dict(
    base_channels=16,
    feat_dim=32,
    codebook_size=CODES,
    swin_dim=32,
    swin_num_rstb=1,
    swin_depth=2,
    swin_window=4,
    swin_heads=4,
    norm_groups=8,
)
VQ = dict(
    nf=16,
    ch_mult=(1, 2, 2, 2),
    num_res_blocks=1,
    codebook_size=CODES,
    embed_dim=16,
    swin_dim=32,
    swin_window=4,
    swin_depth=2,
    swin_heads=4,
    norm_groups=8,
)
FUSED = fast_ops._MKLDNN  # the oneDNN kernels exist in this torch build


def both(fn):
    """fn() without autograd on the fast path and on the reference kernels."""
    with torch.no_grad():
        fast = fn()
        with reference_kernels():
            ref = fn()
    return fast, ref


def randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-trivial norm affines and attention biases (they start as ones / zeros / ~0); eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if 'relative_position_bias_table' in name:
                p.copy_(torch.randn(p.shape, generator=g))
            elif 'norm' in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5 + (1.0 if name.endswith('weight') else 0.0))
    return module.eval()


def tiny_iter(seed: int = 0) -> ITERNet:
    """A tiny ITERNet built from modules (no registry look-up)."""
    torch.manual_seed(seed)
    vqgan = SwinVQGAN(**VQ)
    with torch.no_grad():  # codes far enough apart that decoding a different token shows
        vqgan.quantize.embedding.weight.normal_()
    net = ITERNet(
        scale=4,
        vqgan=vqgan,
        lq_encoder=LQEncoder(scale=4, **LQ),
        evaluator=TokenEvaluationNet(codebook_size=CODES, **NET),
        refiner=TokenRefinementNet(codebook_size=CODES, **NET),
    )
    return randomize(net, seed)


# ----------------------------------------------------------------------------- token orders
@pytest.mark.parametrize('h,w,ws,s', [(8, 12, 4, 0), (8, 12, 4, 2), (16, 8, 8, 4)])
def test_window_order_is_roll_then_partition(h, w, ws, s):
    x = torch.randn(2, h * w, 5)
    grid = x.view(2, h, w, 5)
    ref = window_partition(torch.roll(grid, (-s, -s), (1, 2)) if s else grid, ws).reshape(2, h * w, 5)
    assert torch.equal(reorder(x, h, w, None, (ws, s)), ref)
    assert torch.equal(
        window_order(h, w, ws, s),
        reorder(torch.arange(h * w)[None, :, None].float(), h, w, None, (ws, s))[0, :, 0].long(),
    )
    assert torch.equal(reorder(ref, h, w, (ws, s), None), x)  # inverse: window reverse, then roll back
    other = (ws, ws // 2 if s == 0 else 0)  # block to block: one gather equals back to spatial and forward again
    assert torch.equal(reorder(ref, h, w, (ws, s), other), reorder(x, h, w, None, other))


# ----------------------------------------------------------------------------- attention
@pytest.mark.parametrize('batch', [1, 2])
def test_sdpa_inference_equals_plain_training_form(batch):
    torch.manual_seed(0)
    attn = WindowAttention(32, 4, 4)
    torch.nn.init.normal_(attn.relative_position_bias_table, std=1.0)
    mask = shift_attention_mask(8, 12, 4, 2)  # 6 windows
    x = torch.randn(batch * 6, 16, 32)
    res = torch.randn(batch * 6, 16, 32)
    assert attn.plain_attention()  # autograd records the trainable bias: the authors' plain form
    plain = attn(x, mask, residual=res)
    plain.sum().backward()
    assert attn.relative_position_bias_table.grad.abs().sum() > 0
    with torch.no_grad():
        assert not attn.plain_attention()
        sdpa = attn(x, mask, residual=res)
        with call_cache():
            again = attn(x, mask, residual=res)
            again = attn(x, mask, residual=res)  # bias + mask from the call's cache
    torch.testing.assert_close(sdpa, plain.detach(), rtol=1e-5, atol=1e-5)
    assert torch.equal(again, sdpa)


def test_bias_mask_built_once_per_call_scope():
    torch.manual_seed(1)
    attn = WindowAttention(16, 4, 2).eval()
    mask = shift_attention_mask(8, 8, 4, 2)
    x = torch.randn(4, 16, 16)
    with torch.no_grad():
        with call_cache():
            first = attn.bias_and_mask(mask)
            assert attn.bias_and_mask(mask) is first  # refinement steps reuse it
            out = attn(x, mask)
        assert attn.bias_and_mask(mask) is not attn.bias_and_mask(mask)  # outside a scope: built each time
        attn.relative_position_bias_table.data.add_(1.0)  # between calls, behind autograd's back
        with call_cache():
            changed = attn(x, mask)
            assert not torch.equal(attn.bias_and_mask(mask), first)
        with reference_kernels():
            ref = attn(x, mask)
    assert not torch.allclose(out, changed)
    torch.testing.assert_close(changed, ref, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- blocks and networks
def test_mlp_fused_gate_and_batched_path_equal_reference():
    torch.manual_seed(2)
    mlp = randomize(GatedMlp(16, 64), 2)
    x, r = torch.randn(2, 40, 16), torch.randn(2, 40, 16)
    fast1, ref1 = both(lambda: mlp(x[:1], residual=r[:1]))  # batch 1: gate folded into fc2's weight
    fast2, ref2 = both(lambda: mlp(x, residual=r))  # batch 2: gate multiplied in place
    torch.testing.assert_close(fast1, ref1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast2, ref2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast2[:1], fast1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ref2, r + mlp.fc2(mlp.act(mlp.fc1(x)) * mlp.attn(mlp.act(mlp.fc1(x)).mean(1, True))))


@pytest.mark.parametrize('grid', [(8, 8), (8, 12)])  # reference grid (stored mask) and another one
def test_swin_layers_fast_equals_reference_and_keeps_input(grid):
    torch.manual_seed(3)
    layers = randomize(SwinLayers(8, 16, num_rstb=2, depth=2, window_size=4, num_heads=2, input_resolution=(8, 8)), 3)
    x = torch.randn(2, 8, *grid)
    keep = x.clone()
    fast, ref = both(lambda: layers(x))
    assert torch.equal(x, keep)  # nothing in place on the caller's tensor
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    blk = layers.swin_blks[0].residual_group.blocks[1]  # the spatial API of a shifted block
    t = torch.randn(1, grid[0] * grid[1], 16)
    torch.testing.assert_close(*both(lambda: blk(t, grid)), rtol=1e-5, atol=1e-5)
    rstb = layers.swin_blks[1]
    torch.testing.assert_close(*both(lambda: rstb(t, grid)), rtol=1e-5, atol=1e-5)


def test_token_nets_lookups_equal_reference_and_logits_stay_fp32():
    torch.manual_seed(4)
    phi_e = randomize(TokenEvaluationNet(codebook_size=CODES, **NET), 4)
    phi_r = randomize(TokenRefinementNet(codebook_size=CODES, **NET), 5)
    s_l, s = torch.randint(0, CODES, (2, 2, 8, 12))
    flag = (torch.rand(2, 8, 12) > 0.6).float()
    keep = (torch.rand(2, 8, 12) > 0.4).float()
    keep_copy = keep.clone()
    for fast, ref in (both(lambda: phi_e(s, s_l)), both(lambda: phi_r(s_l, flag, s, keep))):
        torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
        assert torch.equal(fast.argmax(1), ref.argmax(1))
    assert torch.equal(keep, keep_copy)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        assert phi_r(s_l, flag, s, keep).dtype == torch.float32  # sampled logits: fp32 under autocast
        assert phi_e(s, s_l).dtype == torch.float32


def test_lq_encoder_fast_equals_reference():
    torch.manual_seed(6)
    enc = randomize(LQEncoder(scale=4, **LQ), 6)
    lq = torch.rand(2, 3, 16, 24)
    fast, ref = both(lambda: enc(lq))
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    assert torch.equal(fast.argmax(1), ref.argmax(1))
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        assert enc(lq).dtype == torch.float32


def test_subpixel_upsample_equals_nearest_then_conv():
    torch.manual_seed(7)
    up = Upsample(6)
    x = torch.randn(2, 6, 5, 7)
    ref = up.conv(F.interpolate(x, scale_factor=2.0, mode='nearest'))
    with torch.no_grad():
        fast = up(x)
    assert fast.shape == ref.shape
    torch.testing.assert_close(fast, ref.detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('shift', [0.0, 30.0])
def test_channels_last_group_norm_is_stable(shift):
    """Groups whose mean is large against their spread: the result stays as accurate as the NCHW kernel."""
    torch.manual_seed(8)
    gn = torch.nn.GroupNorm(4, 16, eps=1e-6)
    torch.nn.init.normal_(gn.weight)
    torch.nn.init.normal_(gn.bias)
    x = (torch.randn(2, 16, 9, 11) * 0.05 + shift * torch.randn(1, 16, 1, 1)).contiguous(
        memory_format=torch.channels_last
    )
    exact = F.group_norm(x.double(), 4, gn.weight.double(), gn.bias.double(), 1e-6)
    with torch.no_grad():
        fast = fast_ops.group_norm_act(x, gn)
        nchw = gn(x.contiguous())
    assert fast.is_contiguous(memory_format=torch.channels_last)
    assert (fast.double() - exact).abs().max() <= 2 * (nchw.double() - exact).abs().max() + 1e-6


def test_resblock_overwrite_input_only_when_allowed():
    torch.manual_seed(9)
    blk = randomize(VQGANResBlock(16, 16, norm_groups=4), 9)
    x = torch.randn(1, 16, 6, 6).contiguous(memory_format=torch.channels_last)
    keep = x.clone()
    fast, ref = both(lambda: blk(x))
    assert torch.equal(x, keep)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        out = blk(x.clone(), overwrite_input=True)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_vqgan_decode_fast_within_1e4_and_forward_unchanged():
    torch.manual_seed(10)
    vq = randomize(SwinVQGAN(**VQ), 10)
    with torch.no_grad():
        vq.quantize.embedding.weight.normal_()
    idx = torch.randint(0, CODES, (2, 8, 12))
    fast, ref = both(lambda: vq.decode_indices(idx))
    assert (fast - ref).abs().max() <= 1e-4
    img = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        rec_nograd = vq(img)[0]
    assert torch.equal(rec_nograd, vq(img)[0].detach())  # forward keeps the reference kernels (reconstruct)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        z = vq.encode(img)
        assert torch.equal(vq.quantize.indices(z), vq.quantize.indices(z.float()))  # fp32 distances


# ----------------------------------------------------------------------------- sampling
def one_pass_sample(logits, temperature, seeds, step):
    b, c, h, w = logits.shape
    u = S.hash_uniform(seeds, step, S.DRAW_TOKEN, (c, h, w))
    return (-torch.log(-torch.log(u)) + logits.float() / temperature).argmax(1)


@pytest.fixture
def one_thread():
    """Code blocks are taken on a single CPU thread only."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize('shape', [(1, 70, 16, 16), (3, 9, 5, 7)])
def test_chunked_token_sampling_equals_one_pass(shape, monkeypatch, one_thread):
    monkeypatch.setattr(S, '_TOKEN_CHUNK', 1000)  # several code blocks, a ragged last one
    torch.manual_seed(11)
    logits = torch.randn(*shape) * 3
    seeds = torch.arange(shape[0]) * 17 + 5
    for t in (1.0, 0.7):
        assert torch.equal(S.sample_tokens(logits, t, seeds, 4), one_pass_sample(logits, t, seeds, 4))
    logits[0, -1, 0, 0] = float('nan')  # argmax's rule: NaN is the maximum, also from a later block
    logits[0, :, 1, 1] = 1e30  # all equal after the noise: the first code wins
    assert torch.equal(S.sample_tokens(logits, 1.0, seeds, 4), one_pass_sample(logits, 1.0, seeds, 4))
    assert S.sample_tokens(logits, 1.0, seeds, 4)[0, 0, 0] == shape[1] - 1


# ----------------------------------------------------------------------------- whole restoration
@pytest.mark.parametrize('size', [(16, 16), (20, 28)])  # reference grid and a padded other grid
def test_restore_fast_equals_reference(size):
    net = tiny_iter(12)
    lq = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(12))
    with reference_kernels():
        ref = restore_image(net, lq, alpha=0.9, seed=3, return_intermediates=True)
    fast = restore_image(net, lq, alpha=0.9, seed=3, return_intermediates=True)
    assert (ref.start_step == 0).all()  # every step runs
    assert torch.equal(fast.lq_tokens, ref.lq_tokens) and torch.equal(fast.tokens, ref.tokens)
    assert torch.equal(fast.step_tokens, ref.step_tokens) and torch.equal(fast.step_keep, ref.step_keep)
    assert (fast.image - ref.image).abs().max() <= 1e-4
    one = restore_image(net, lq[1:], alpha=0.9, seed=3, return_result=True)  # batch 1 takes other kernels
    assert torch.equal(one.tokens, fast.tokens[1:])


def test_bf16_restore_with_call_cache_equals_without():
    net = tiny_iter(13)
    lq = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(13))
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        plain = S._adaptive_refine(net, lq, 0.9, 4, 1.0, 1.0, 'linear', None, 5, False)  # no cast cache
        with call_cache():
            cached = S._adaptive_refine(net, lq, 0.9, 4, 1.0, 1.0, 'linear', None, 5, False)
    assert torch.equal(plain.tokens, cached.tokens) and torch.equal(plain.image, cached.image)


def test_bf16_restore_runs_e_l_in_fp32():
    """Under bf16 autocast E_l runs in fp32 (S_l conditions every step: a flipped S_l token changes phi_e's keep
    mask and phi_r's condition), so S_l equals the fp32 run's; phi_e and phi_r run in bf16."""
    net = tiny_iter(17)
    lq = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(17))
    seen = {}

    def record(name):
        def hook(module, inputs):
            seen.setdefault(name, []).append((torch.is_autocast_enabled('cpu'), inputs[0].dtype))

        return hook

    handles = [getattr(net, n).register_forward_pre_hook(record(n)) for n in ('lq_encoder', 'refiner')]
    try:
        fp32 = restore_image(net, lq, steps=2, alpha=1.0, return_result=True)
        seen.clear()
        bf16 = restore_image(net, lq, steps=2, alpha=1.0, dtype='bf16', return_result=True)
    finally:
        for h in handles:
            h.remove()
    assert seen['lq_encoder'] == [(False, torch.float32)]
    assert all(enabled for enabled, _ in seen['refiner'])
    assert torch.equal(bf16.lq_tokens, fp32.lq_tokens)


# ----------------------------------------------------------------------------- benchmark FLOP count
def test_flop_count_sees_the_fused_kernels():
    from iter_mm.evaluation import benchmark as bench

    torch.manual_seed(14)
    layers = SwinLayers(8, 16, num_rstb=1, depth=2, window_size=4, num_heads=2, input_resolution=(8, 8)).eval()
    x = torch.randn(1, 8, 8, 8)
    flops = {}
    for name, ctx in (('fast', reference_kernels(False)), ('ref', reference_kernels())):
        with torch.no_grad(), ctx:
            flops[name] = bench.count_part_flops(lambda: layers(x), {'swin': layers})['swin']
    tokens, d = 64, 16
    per_block = 2 * tokens * d * (3 * d + d + 4 * d + 4 * d) + 4 * tokens * 16 * d  # linears + attention
    convs = 2 * tokens * 9 * (8 * 16 + 16 * 16 + 16 * 8)  # conv_in 8->16, the RSTB's conv, conv_out 16->8
    gate = 2 * 2 * (4 * d) * (4 * d // 16)  # the SE gate's two small linears
    assert flops['ref'] == 2 * (per_block + gate) + convs
    assert flops['fast'] == flops['ref'] + 2 * (2 * tokens * 4 * d)  # + the gate's token mean as a (1 x L) matmul
    peak = bench.matmul_peak(64, 32, 48, torch.float32, torch.device('cpu'))
    assert peak['shape'] == [64, 32, 48] and peak['peak_gflops'] >= peak['torch_matmul'] > 0


@pytest.mark.skipif(not FUSED, reason='no oneDNN kernels in this torch build')
def test_fused_kernels_are_taken_without_autograd_only():
    lin = torch.nn.Linear(8, 8)
    x = torch.randn(3, 8)
    with torch.no_grad():
        assert fast_ops.use_fused(x)
        with reference_kernels():
            assert not fast_ops.use_fused(x)
    assert not fast_ops.use_fused(x)  # autograd records
    out = fast_ops.linear(x, lin, act='gelu')
    assert out.requires_grad
    torch.testing.assert_close(out, F.gelu(lin(x)))


def test_benchmark_batches_images_of_one_size(one_thread):
    """``batch=N``: one restore of N images per timed call; the result gives the batch latency and images/s."""
    from iter_mm.errors import InvalidOptionError
    from iter_mm.evaluation.inference_benchmark import InferenceBenchSettings, benchmark_inference

    cfg = os.path.join(os.path.dirname(__file__), '..', 'configs', 'iter', 'iter_x4_tiny.py')
    common = dict(iter_config=cfg, size=16, models=['iter'], repeats=1, warmup=0, flops=False, steps=2, alpha=1.0)
    out = json.loads(json.dumps(benchmark_inference(InferenceBenchSettings(batch=3, profile=5, **common))))
    it = out['models']['iter']
    assert out['batch'] == 3 and it['images_per_s'] == pytest.approx(3 / it['median_s'])
    prof = it['profile']  # one profiled call: the costliest ops, most first
    assert len(prof['top']) == 5 and prof['time_kind'] == 'cpu' and prof['ops'] > 100
    assert [t['self_ms'] for t in prof['top']] == sorted((t['self_ms'] for t in prof['top']), reverse=True)
    assert it['calls'] == dict(E_l=1, phi_e=2, phi_r=2, decoder=1)  # batched: one call per step for all three
    with pytest.raises(InvalidOptionError, match='batch'):
        benchmark_inference(InferenceBenchSettings(batch=0, **common))


def test_benchmark_runs_iter_with_pytorch_only(tmp_path):
    """On a machine without MMagic / MMEngine / MMCV (e.g. a bare GPU box) the networks build from their own name
    table and the benchmark times the paper-scale ITERNet; SwinIR and RRDBNet (MMagic's) give a clear error."""
    import subprocess
    import sys

    tool = os.path.join(os.path.dirname(__file__), '..', 'tools', 'benchmark_inference.py')
    code = f"""
import sys
for name in ('mmcv', 'mmengine', 'mmagic'):
    sys.modules[name] = None  # as if not installed
sys.argv = ['benchmark_inference.py'] + sys.argv[1:]
import runpy
runpy.run_path({tool!r}, run_name='__main__')
"""
    common = [
        '--size',
        '16',
        '--steps',
        '2',
        '--alpha',
        '1.0',
        '--repeats',
        '1',
        '--warmup',
        '0',
        '--no-flops',
        '--threads',
        '1',
    ]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    done = subprocess.run(
        [sys.executable, '-c', code, *common, '--models', 'iter', '--batch', '2', '--out', 'b.json'],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)  # stdout holds the JSON object, also written to --out
    assert json.loads((tmp_path / 'b.json').read_text()) == out
    it = out['models']['iter']
    assert out['batch'] == 2 and it['params'] == 127321541  # the paper-scale x4 network
    assert it['calls'] == dict(E_l=1, phi_e=2, phi_r=2, decoder=1)
    bad = subprocess.run(
        [sys.executable, '-c', code, *common, '--models', 'iter', 'swinir'],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert bad.returncode != 0 and 'SwinIR and RRDBNet come from MMagic' in bad.stderr


def test_name_table_builds_networks_and_names_the_known_ones():
    """The registry the networks fall back to without MMagic: builds by type name, clear error otherwise."""
    from iter_mm.models.archs.registry import NameTable

    table = NameTable()
    table.register_module()(SwinLayers)
    layer = table.build(
        dict(
            type='SwinLayers',
            in_dim=8,
            swin_dim=16,
            num_rstb=1,
            depth=1,
            window_size=4,
            num_heads=2,
            input_resolution=(4, 4),
        )
    )
    assert isinstance(layer, SwinLayers)
    with pytest.raises(KeyError, match=r"'Nope' is not an ITER network .*only these build: \['SwinLayers'\]"):
        table.build(dict(type='Nope'))
