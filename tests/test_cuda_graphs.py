"""CUDA-graph replay of the networks (iter_mm.models.cuda_graphs): the bookkeeping, with a CPU stand-in for the
capture, and on a CUDA machine the real capture. A replay must give what the eager call gives for the *current*
inputs and weights, capture once per signature, and keep alive what the graph reads."""

import pytest
import torch
from test_speed_paths import tiny_iter

from iter_mm.models import cuda_graphs as G
from iter_mm.models import sampling as S
from iter_mm.models.archs import fast_ops
from iter_mm.models.archs.swin import reorder_index
from iter_mm.models.inference import restore_image


def stand_in_capture(fn, inputs):
    """What capture_cuda does, without CUDA: the output is computed into a static buffer from the static inputs;
    replay recomputes it from whatever the buffers hold then."""
    retained = []
    with fast_ops.retaining(retained), fast_ops.call_cache():
        output = fn(*inputs)

    def replay():
        with fast_ops.call_cache():
            output.copy_(fn(*inputs))

    return G.Captured(replay, inputs, output, (tuple(retained),))


def refine(net, lq, runner=None, **kw):
    args = dict(
        alpha=0.9,
        steps=4,
        token_temperature=1.0,
        mask_temperature=1.0,
        schedule='linear',
        generator=None,
        seed=5,
        return_intermediates=False,
    )
    args.update(kw)
    with torch.no_grad(), fast_ops.call_cache():
        return S._adaptive_refine(net, lq, *args.values(), runner)


def test_replays_equal_eager_calls_and_capture_once_per_signature():
    net = tiny_iter(3)
    runner = G.GraphRunner(capture=stand_in_capture)
    lqs = [torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(k)) for k in range(3)]
    for k, lq in enumerate(lqs):
        eager, graphed = refine(net, lq), refine(net, lq, runner)
        assert torch.equal(eager.tokens, graphed.tokens) and torch.equal(eager.lq_tokens, graphed.lq_tokens)
        assert torch.equal(eager.image, graphed.image)
        assert runner.captures == 4  # E_l, phi_e, phi_r, decoder: captured by the first image, replayed after
    assert not torch.equal(refine(net, lqs[0], runner).tokens, refine(net, lqs[1], runner).tokens)


def test_new_signature_captures_anew():
    net = tiny_iter(4)
    runner = G.GraphRunner(capture=stand_in_capture)
    lq = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    refine(net, lq, runner)
    assert runner.captures == 4
    with torch.no_grad():  # an in-place weight update (as load_state_dict does): the version changes
        net.refiner.conv_out[2].bias.add_(3.0)
    assert torch.equal(refine(net, lq, runner).tokens, refine(net, lq).tokens)
    assert runner.captures == 5  # phi_r only
    big = torch.rand(2, 3, 32, 16, generator=torch.Generator().manual_seed(5))  # another batch and size
    graphed, eager = refine(net, big, runner), refine(net, big)
    assert torch.equal(graphed.tokens, eager.tokens) and torch.equal(graphed.image, eager.image)
    assert runner.captures == 9
    with torch.autocast('cpu', dtype=torch.bfloat16):  # autocast is part of the signature (E_l stays fp32)
        graphed, eager = refine(net, big, runner), refine(net, big)
    assert torch.equal(graphed.tokens, eager.tokens)
    assert runner.captures == 12


def test_output_is_a_fresh_tensor_and_old_graphs_are_dropped():
    net = tiny_iter(5)
    runner = G.GraphRunner(capture=stand_in_capture, max_graphs=2)
    x = torch.randint(0, 64, (1, 8, 8))
    with torch.no_grad():
        first = runner(net.evaluator, net.evaluator, x, x)
        first.add_(100.0)  # the caller's tensor, not the graph's buffer
        again = runner(net.evaluator, net.evaluator, x, x)
        assert torch.allclose(again, net.evaluator(x, x), atol=1e-6, rtol=0) and runner.captures == 1
        for side in (12, 16):
            y = torch.randint(0, 64, (1, side, side))
            runner(net.evaluator, net.evaluator, y, y)
    assert runner.captures == 3 and len(runner.graphs) == 2
    with pytest.raises(RuntimeError, match='no_grad'):
        runner(net.evaluator, net.evaluator, x, x)


def test_capture_keeps_the_module_level_cached_tensors_it_reads():
    net = tiny_iter(6)
    held = []

    def capture(fn, inputs):
        entry = stand_in_capture(fn, inputs)
        held.append(entry.keep_alive[0])
        return entry

    runner = G.GraphRunner(capture=capture)
    tokens = torch.randint(0, 64, (1, 12, 12))  # 12x12: not the blocks' reference grid, so the mask is computed
    with torch.no_grad():
        runner(net.evaluator, net.evaluator, tokens, tokens)
    kept = held[0]
    index = reorder_index(12, 12, None, (4, 0), tokens.device)
    assert any(t is index for t in kept)  # the gather index of the first block
    assert any(t.dim() == 3 and t.shape[1:] == (16, 16) for t in kept)  # a shift mask (nW, N, N)


def test_option_is_a_no_op_off_cuda():
    net = tiny_iter(7)
    lq = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(7))
    plain = restore_image(net, lq, steps=3, return_result=True)
    graphed = restore_image(net, lq, steps=3, cuda_graphs=True, return_result=True)
    assert torch.equal(plain.tokens, graphed.tokens) and torch.equal(plain.image, graphed.image)
    assert net not in G._RUNNERS


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
@pytest.mark.parametrize('dtype', ['fp32', 'bf16'])
def test_real_cuda_graphs_equal_eager(dtype):
    net = tiny_iter(8).cuda()
    for k in range(3):  # the first call captures, the later ones replay with new inputs
        lq = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(k)).cuda()
        eager = restore_image(net, lq, steps=4, dtype=dtype, return_result=True)
        graphed = restore_image(net, lq, steps=4, dtype=dtype, cuda_graphs=True, return_result=True)
        assert torch.equal(eager.tokens, graphed.tokens)
        assert (eager.image - graphed.image).abs().max().item() < 1e-4
    assert G.graph_runner(net).captures == 4
