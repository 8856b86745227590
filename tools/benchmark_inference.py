#!/usr/bin/env python
"""Time ITER (paper scale, random weights) against MMagic's real-world x4/x2 SwinIR and RRDBNet networks.

    python tools/benchmark_inference.py [--size 128] [--scale 4] [--batch 1] [--steps 8] [--alpha 0.7]
        [--device cpu|cuda] [--dtype fp32|bf16|fp16] [--cuda-graphs] [--repeats 3] [--warmup 1] [--threads N]
        [--models iter iter-ref swinir rrdbnet] [--interleave] [--no-flops] [--out JSON]
    python tools/benchmark_inference.py --agreement [--config CFG --checkpoint CKPT --lq-dir DIR]
        [--sampling NAME=VALUE ...] [--out JSON]

One process, one LQ size (a fixed random batch of ``--batch`` images of one size, default 1); ITER in ``--dtype``, SwinIR and RRDBNet in
``--baseline-dtype`` (fp32 unless given). Each model: ``--warmup`` untimed calls, then ``--repeats`` timed calls
(CUDA synchronised); the median is reported, per call (``median_s``: the latency of a batch) and as
``images_per_s``. ``--interleave`` builds all models first and alternates their timed
calls, so that other jobs on a shared machine slow them alike. ITER runs through ``ITERModel.restore``
(adaptive refinement, sampling options from the flags); ``iter-ref`` is the same model on the reference kernels
(plain PyTorch ops, ``iter_mm.models.archs.fast_ops.reference_kernels``); ``--cuda-graphs`` replays ITER's network
calls as CUDA graphs (captured during the warm-up calls, so give ``--warmup 1`` or more). Its per-call breakdown (E_l, phi_e,
phi_r, VQGAN decoder, number of calls of each) comes from forward hooks: during the timed calls on CPU, in separate
runs on CUDA (where the hooks synchronise). Per part the JSON also gives the FLOPs of one call (counted from the
shapes of the matmuls, convolutions and attention it ran, ``torch.utils.flop_counter``), the GFLOP/s achieved, and
the GFLOP/s of a plain matmul of the part's dominant size in the same dtype measured in the same run (the
machine's practical peak; on CPU the better of ``torch.matmul`` and oneDNN's linear), so one sees how close each
call is to the limit. No weights are loaded: timings only (random phi_e decides how many refinement steps run,
and with ``--alpha`` above its typical P(good) that is all ``--steps``: the worst case). SwinIR and RRDBNet are
the generators of MMagic's ``swinir_gan-x{s}s64w8d6e180`` and ``realesrgan_c64b23g32`` configs, random weights.
bf16/fp16 run under autocast (never the default). Prints ONE JSON object. On a machine with PyTorch only (no
MMagic / MMEngine / MMCV, e.g. a GPU box for a quick check) ``--models iter [iter-ref]`` runs the paper-scale
``ITERNet`` through the same ``restore_image``.

``--agreement`` restores every image of ``--lq-dir`` with a trained model three ways, fp32 (default kernels), fp32
reference kernels and bf16 autocast, and reports per image and overall: the fraction of identical final tokens and
S_l tokens and the PSNR of the bf16 image against fp32, and that the fp32 kernels give identical tokens and images
within 1e-4 of the reference (JSON to stdout and ``--out``).
"""
from __future__ import annotations

import argparse
import ast
import json
import math
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Sequence

import torch

if __package__ in (None, ''):  # run as a script from anywhere
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from iter_mm.models.options import DEFAULTS as RESTORE_DEFAULTS  # noqa: E402

SWINIR_CFG = 'swinir/swinir_gan-x{s}s64w8d6e180_8xb4-lr1e-4-600k_df2k-ost.py'
RRDB_CFG = 'real_esrgan/realesrgan_c64b23g32_4xb12-lr1e-4-400k_df2k-ost.py'
ITER_PARTS = {'E_l': 'lq_encoder', 'phi_e': 'evaluator', 'phi_r': 'refiner', 'decoder': 'vqgan.decoder'}
DEMO = dict(config='configs/iter/iter_x4_demo.py', checkpoint='work_dirs/demo/iter_x4_demo/weights.pth',
            lq_dir='work_dirs/demo/heldout_x4/lq')  # what tools/demo.py writes


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--size', type=int, default=128, help='LQ side in pixels')
    p.add_argument('--scale', type=int, default=4, choices=(2, 4))
    p.add_argument('--batch', type=int, default=1, help='images of one size per call (ITER: one batched restore)')
    p.add_argument('--steps', type=int, default=RESTORE_DEFAULTS.steps)
    p.add_argument('--alpha', type=float, default=RESTORE_DEFAULTS.alpha)
    p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    p.add_argument('--dtype', default='fp32', choices=('fp32', 'bf16', 'fp16'), help='ITER precision')
    p.add_argument('--cuda-graphs', action='store_true',
                   help='ITER on CUDA: replay the network calls as CUDA graphs (RestoreOptions.cuda_graphs; the '
                        'warm-up calls capture them; the per-part breakdown comes from eager runs)')
    p.add_argument('--baseline-dtype', default='fp32', choices=('fp32', 'bf16', 'fp16'),
                   help="SwinIR's and RRDBNet's precision (default fp32: ITER bf16 is compared with their fp32)")
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--threads', type=int, default=0, help='torch CPU threads (0 = leave as is)')
    p.add_argument('--models', nargs='+', default=['iter', 'swinir', 'rrdbnet'],
                   choices=('iter', 'iter-ref', 'swinir', 'rrdbnet'))
    p.add_argument('--iter-config', help='ITER model config (default: ITERModel with the paper-scale ITERNet)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--no-flops', action='store_true', help='skip the FLOP count and the matmul peaks')
    p.add_argument('--profile', type=int, default=0, metavar='N',
                   help='ITER: one more call under torch.profiler; the N ops with the most self time (device time '
                        'on CUDA) and the op/launch counts go to the JSON (where the remaining time goes)')
    p.add_argument('--interleave', action='store_true',
                   help='alternate the models\' timed calls (all built first), so that other jobs slow them alike')
    g = p.add_argument_group('--agreement: bf16 vs fp32 and default vs reference kernels on a trained model')
    g.add_argument('--agreement', action='store_true')
    g.add_argument('--config', default=DEMO['config'])
    g.add_argument('--checkpoint', default=DEMO['checkpoint'], help='loaded with allow_pickle (trusted files)')
    g.add_argument('--lq-dir', default=DEMO['lq_dir'])
    g.add_argument('--sampling', nargs='*', default=[], metavar='NAME=VALUE',
                   help="RestoreOptions over the config's test_cfg, e.g. token_temperature=1.0")
    p.add_argument('--out', help='also write the JSON here')
    args = p.parse_args(argv)
    if args.size < 8 or args.repeats < 1 or args.warmup < 0 or args.steps < 1 or not 0 <= args.alpha <= 1:
        p.error('need --size >= 8, --repeats >= 1, --warmup >= 0, --steps >= 1, 0 <= --alpha <= 1')
    if args.device == 'cuda' and not torch.cuda.is_available():
        p.error('--device cuda: no CUDA device visible')
    return args


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> List[float]:
    """Seconds of each of ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


class CallTimer:
    """Forward pre/post hooks that add up the wall time and count the calls of named sub-modules."""

    def __init__(self, modules: Dict[str, torch.nn.Module], device: torch.device) -> None:
        self.device, self.seconds, self.calls, self._t0, self._handles = device, defaultdict(float), \
            defaultdict(int), {}, []
        for name, mod in modules.items():
            self._handles.append(mod.register_forward_pre_hook(self._pre(name)))
            self._handles.append(mod.register_forward_hook(self._post(name)))

    def _pre(self, name: str):
        def hook(module, inputs):
            _sync(self.device)
            self._t0[name] = time.perf_counter()
        return hook

    def _post(self, name: str):
        def hook(module, inputs, output):
            _sync(self.device)
            self.seconds[name] += time.perf_counter() - self._t0.pop(name)
            self.calls[name] += 1
        return hook

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def _zoo_generator(rel: str, **overrides) -> torch.nn.Module:
    import mmagic
    from mmengine.config import Config
    from mmagic.registry import MODELS
    path = os.path.join(os.path.dirname(mmagic.__file__), '.mim', 'configs', rel)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MMagic config {rel} not found under {os.path.dirname(path)}")
    gen = dict(Config.fromfile(path).model.generator)
    gen.update(overrides)
    return MODELS.build(gen)


def _register_flop_formulas() -> None:
    """FLOP formulas for the kernels torch's FlopCounterMode does not know: oneDNN's fused linear/conv (the
    default CPU inference path) and CPU flash attention. Raw arguments: the overloads differ in argument order."""
    from torch.utils import flop_counter as fc
    ops = torch.ops

    def linear_flops(*args, out_val=None, **kwargs) -> int:  # X (..., K) -> out (..., N)
        return 2 * out_val.numel() * args[0].shape[-1]

    def conv_flops(*args, out_val=None, **kwargs) -> int:  # default (X, W, ...); binary (X|other, other|X, W, ...)
        w = args[1] if isinstance(args[7], str) else args[2]
        return 2 * out_val.numel() * w.shape[1] * w.shape[2] * w.shape[3]

    def sdpa_cpu_flops(q, k, v, *args, out_val=None, **kwargs) -> int:  # QK^T and PV
        return fc.sdpa_flop_count(q.shape, k.shape, v.shape)

    for target, formula in ((getattr(ops.mkldnn, '_linear_pointwise', None), linear_flops),
                            (getattr(ops.mkldnn, '_convolution_pointwise', None), conv_flops),
                            (getattr(ops.mkldnn, '_convolution_pointwise_', None), conv_flops),
                            (getattr(ops.aten, '_scaled_dot_product_flash_attention_for_cpu', None), sdpa_cpu_flops)):
        if target is not None and target not in fc.flop_registry:
            fc.register_flop_formula(target, get_raw=True)(formula)


def count_part_flops(fn: Callable[[], object], modules: Dict[str, torch.nn.Module]) -> Dict[str, float]:
    """FLOPs of one call of each named sub-module during ``fn()`` (mean over its calls)."""
    from torch.utils.flop_counter import FlopCounterMode
    _register_flop_formulas()
    flops, calls, start, handles = defaultdict(int), defaultdict(int), {}, []

    def pre(name: str):
        def hook(module, inputs) -> None:
            start[name] = counter.get_total_flops()
        return hook

    def post(name: str):
        def hook(module, inputs, output) -> None:
            flops[name] += counter.get_total_flops() - start[name]
            calls[name] += 1
        return hook

    with FlopCounterMode(display=False) as counter:
        for name, mod in modules.items():
            handles.append(mod.register_forward_pre_hook(pre(name)))
            handles.append(mod.register_forward_hook(post(name)))
        try:
            fn()
        finally:
            for h in handles:
                h.remove()
    return {k: flops[k] / calls[k] for k in modules if calls[k]}


def matmul_peak(m: int, k: int, n: int, dtype: torch.dtype, device: torch.device, repeats: int = 3) -> dict:
    """GFLOP/s of a plain (m, k) @ (k, n) matmul in ``dtype``: ``torch.matmul`` and, on CPU, oneDNN's linear
    (what the fused path runs); best of ``repeats`` after one warm-up."""
    a = torch.randn(m, k, device=device).to(dtype)
    w = torch.randn(n, k, device=device).to(dtype)
    flop = 2 * m * k * n
    fns = {'torch_matmul': lambda: torch.matmul(a, w.t())}
    if device.type == 'cpu' and hasattr(torch.ops.mkldnn, '_linear_pointwise'):
        fns['onednn_linear'] = lambda: torch.ops.mkldnn._linear_pointwise(a, w, None, 'none', [], '')
    out = dict(shape=[m, k, n], dtype=str(dtype).replace('torch.', ''))
    for name, f in fns.items():
        f()
        best = min(time_calls(f, device, 0, 1)[0] for _ in range(repeats))
        out[name] = flop / best / 1e9
    out['peak_gflops'] = max(v for key, v in out.items() if key in fns)
    return out


def dominant_gemms(net: torch.nn.Module, tokens: int) -> Dict[str, tuple]:
    """The part's largest matmul shape (M, K, N) for the matmul peak: the Swin MLP's fc1 of E_l, phi_e and phi_r
    (tokens x D x 4D); for the decoder the im2col GEMM of its 3x3 convs at a quarter of the output pixels
    (4 * tokens x 9 * C x C at C = twice the base width)."""
    def fc1(mod: torch.nn.Module) -> tuple:
        lin = next(m for name, m in mod.named_modules() if name.endswith('mlp.fc1'))
        return tokens, lin.in_features, lin.out_features
    c = 2 * net.vqgan.decoder.blocks[-1].in_channels
    return {'E_l': fc1(net.lq_encoder), 'phi_e': fc1(net.evaluator), 'phi_r': fc1(net.refiner),
            'decoder': (min(4 * tokens * 16, 16384), 9 * c, c)}


def mmagic_available() -> bool:
    """Whether MMagic (and so MMEngine / MMCV) can be imported; without it only ``--models iter`` runs."""
    try:
        import mmagic.registry  # noqa: F401
    except ImportError:
        return False
    return True


class BareITER(torch.nn.Module):
    """ITERModel's ``restore`` on an ``ITERNet`` alone, for a machine with PyTorch only (no MMagic): the same
    networks, sampling and options (:func:`iter_mm.models.inference.restore_image`)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.generator = net

    @torch.no_grad()
    def restore(self, lq: torch.Tensor, **options) -> torch.Tensor:
        from iter_mm.models.inference import restore_image
        from iter_mm.models.options import RestoreOptions
        return restore_image(self.generator, lq, RestoreOptions(**options))


def build_iter(args) -> torch.nn.Module:
    """ITER with random weights on purpose (timings only), through the one loader (without MMagic: the paper-scale
    ``ITERNet`` in :class:`BareITER`)."""
    if not mmagic_available():
        if args.iter_config:
            raise SystemExit('--iter-config needs MMagic / MMEngine; without them only the paper-scale ITERNet runs')
        from iter_mm.models.archs import ITERNet
        return BareITER(ITERNet(scale=args.scale))
    from mmengine.config import Config

    from iter_mm.apis import init_model
    if args.iter_config:
        return init_model(args.iter_config, random_weights=True)
    # every ITERNet default is the released configuration (docs/architecture.md)
    cfg = Config(dict(default_scope='mmagic', model=dict(
        type='ITERModel', generator=dict(type='ITERNet', scale=args.scale), eval_lq_loss=None,
        data_preprocessor=dict(type='DataPreprocessor', mean=[0.] * 3, std=[255.] * 3))))
    return init_model(cfg, random_weights=True)


def _module(root: torch.nn.Module, dotted: str) -> torch.nn.Module:
    for part in dotted.split('.'):
        root = getattr(root, part)
    return root


def per_call_efficiency(fn: Callable[[], object], net: torch.nn.Module, seconds_per_call: Dict[str, float], args,
                        device: torch.device) -> Dict[str, dict]:
    """Per part: FLOPs of one call, GFLOP/s achieved, and the matmul peak of its dominant size in this run."""
    from iter_mm.models.inference import DTYPES
    flops = count_part_flops(fn, {k: _module(net, v) for k, v in ITER_PARTS.items()})
    tokens = args.batch * (args.size * args.scale // net.vqgan.downscale) ** 2  # rows of the batched GEMMs
    dtype = DTYPES[args.dtype] or torch.float32
    out = {}
    for part, gemm in dominant_gemms(net, tokens).items():
        if part not in flops or part not in seconds_per_call:
            continue
        peak = matmul_peak(*gemm, dtype, device)
        achieved = flops[part] / seconds_per_call[part] / 1e9
        out[part] = dict(gflop_per_call=flops[part] / 1e9, achieved_gflops=achieved, matmul=peak,
                         fraction_of_peak=achieved / peak['peak_gflops'])
    return out


def profile_call(fn: Callable[[], object], device: torch.device, top: int) -> dict:
    """One call of ``fn`` under torch.profiler: its wall time, the number of ops (and of CUDA kernel launches) and
    the ``top`` ops by self time (CUDA: device time), each with calls and milliseconds."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        fn()
        _sync(device)
        wall = time.perf_counter() - t0
    events = prof.key_averages()
    on_gpu = device.type == 'cuda'

    def self_us(e) -> float:
        return float(getattr(e, 'self_device_time_total', 0.0) if on_gpu else e.self_cpu_time_total)

    ranked = sorted(events, key=self_us, reverse=True)[:top]
    launches = sum(e.count for e in events if e.key in ('cudaLaunchKernel', 'cuLaunchKernel', 'cudaLaunchKernelExC'))
    return dict(wall_s=wall, time_kind='device' if on_gpu else 'cpu', ops=sum(e.count for e in events),
                kernel_launches=launches if on_gpu else None,
                top=[dict(op=e.key, calls=e.count, self_ms=self_us(e) / 1e3) for e in ranked])


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.float() - b.float()).square().mean().item()
    return float('inf') if mse == 0 else 10 * math.log10(1 / mse)


def agreement(args) -> dict:
    """bf16 vs fp32 and default vs reference kernels on a trained model (see the module docstring)."""
    import numpy as np
    from PIL import Image

    from iter_mm.apis import init_model
    from iter_mm.models.archs.fast_ops import reference_kernels
    model = init_model(args.config, args.checkpoint, allow_pickle=True).eval()
    files = sorted(f for f in os.listdir(args.lq_dir) if f.lower().endswith(('.png', '.jpg', '.jpeg', '.bmp')))
    if not files:
        raise SystemExit(f'no images in {args.lq_dir}')
    overrides = {}
    for item in args.sampling:
        name, _, value = item.partition('=')
        try:
            overrides[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[name] = value  # a string (e.g. schedule=cosine)
    opts = model.options('test', **overrides).sampling()  # the config's test_cfg over RestoreOptions' defaults
    images, tot = [], defaultdict(float)
    for f in files:
        arr = np.asarray(Image.open(os.path.join(args.lq_dir, f)).convert('RGB'))
        lq = torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float() / 255
        t0 = time.perf_counter()
        fp32 = model.restore(lq, return_result=True, **overrides)
        t1 = time.perf_counter()
        with reference_kernels():
            ref = model.restore(lq, return_result=True, **overrides)
        t2 = time.perf_counter()
        bf16 = model.restore(lq, return_result=True, dtype='bf16', **overrides)
        t3 = time.perf_counter()
        row = dict(
            image=f, lq_size=list(lq.shape[-2:]), tokens=int(fp32.tokens.numel()),
            bf16_tokens_equal=(bf16.tokens == fp32.tokens).float().mean().item(),
            bf16_lq_tokens_equal=(bf16.lq_tokens == fp32.lq_tokens).float().mean().item(),
            bf16_psnr_vs_fp32=_psnr(bf16.image, fp32.image),
            fp32_vs_reference_tokens_identical=bool(torch.equal(fp32.tokens, ref.tokens)
                                                    and torch.equal(fp32.lq_tokens, ref.lq_tokens)),
            fp32_vs_reference_max_abs=(fp32.image - ref.image).abs().max().item(),
            seconds=dict(fp32=t1 - t0, reference=t2 - t1, bf16=t3 - t2))
        images.append(row)
        n = row['tokens']
        tot['tokens'] += n
        tot['equal'] += row['bf16_tokens_equal'] * n
        tot['lq_equal'] += row['bf16_lq_tokens_equal'] * n
    return dict(
        mode='agreement', config=args.config, checkpoint=args.checkpoint, lq_dir=args.lq_dir, sampling=opts,
        threads=torch.get_num_threads(), torch=torch.__version__,
        bf16_tokens_equal=tot['equal'] / tot['tokens'], bf16_lq_tokens_equal=tot['lq_equal'] / tot['tokens'],
        bf16_psnr_vs_fp32_mean=statistics.mean(r['bf16_psnr_vs_fp32'] for r in images),
        fp32_vs_reference_tokens_identical=all(r['fp32_vs_reference_tokens_identical'] for r in images),
        fp32_vs_reference_max_abs=max(r['fp32_vs_reference_max_abs'] for r in images),
        images=images)


class _Bench:
    """One model of the benchmark: its call, the timed runs and (ITER) the per-part hooks."""

    def __init__(self, name: str, args, device: torch.device, lq: torch.Tensor, log: Callable[[str], None]):
        from iter_mm.models.inference import autocast_context
        log(f'{name}: building')
        self.name, self.device, self.is_iter, self.runs = name, device, name.startswith('iter'), []
        if self.is_iter:
            from iter_mm.models.archs.fast_ops import reference_kernels
            model = build_iter(args).to(device).eval()
            opts = self.opts = dict(alpha=args.alpha, steps=args.steps, seed=args.seed, dtype=args.dtype,
                                    cuda_graphs=args.cuda_graphs)

            def fn(ref: bool = name == 'iter-ref'):
                with reference_kernels(ref):
                    return model.restore(lq, **opts)
            self.net = model.generator
        else:
            net = (_zoo_generator(SWINIR_CFG.format(s=args.scale)) if name == 'swinir' else
                   _zoo_generator(RRDB_CFG, upscale_factor=args.scale)).to(device).eval()

            def fn():
                with torch.no_grad(), autocast_context(args.baseline_dtype, device):
                    return net(lq)
            self.net = net
        self.fn = fn
        self.params = sum(p.numel() for p in self.net.parameters())
        # ITER's per-call breakdown: hooks on E_l, phi_e, phi_r, decoder. On CPU they cost nothing and ride
        # along the timed calls; on CUDA they synchronise, so they get their own runs after the timed ones.
        self.timer = (CallTimer(self._parts(), device) if self.is_iter and device.type == 'cpu' else None)
        self.log = log

    def _parts(self) -> Dict[str, torch.nn.Module]:
        return {k: _module(self.net, v) for k, v in ITER_PARTS.items()}

    def timed(self) -> None:
        """One timed call; with hooks, the per-part seconds and calls of this call."""
        if self.timer is not None:
            self.timer.reset()
        t0 = time.perf_counter()
        self.fn()
        _sync(self.device)
        self.runs.append((dict(self.timer.seconds) if self.timer else {},
                          dict(self.timer.calls) if self.timer else {}, time.perf_counter() - t0))

    def finish(self, args) -> dict:
        times = [r[2] for r in self.runs]
        entry = dict(median_s=statistics.median(times), times_s=times, params=self.params)
        entry['images_per_s'] = args.batch / entry['median_s']
        if self.device.type == 'cuda':
            entry['peak_mem_mib'] = torch.cuda.max_memory_allocated(self.device) / 2**20
            torch.cuda.reset_peak_memory_stats(self.device)
        if self.is_iter:
            runs = self.runs
            if self.device.type == 'cuda':  # hooked runs of their own, eager (a graph replay calls no module)
                self.timer, self.runs = CallTimer(self._parts(), self.device), []
                graphs, self.opts['cuda_graphs'] = self.opts['cuda_graphs'], False
                for _ in range(min(args.repeats, 3)):
                    self.timed()
                self.opts['cuda_graphs'] = graphs
                runs = self.runs
            self.timer.remove()
            med = statistics.median
            breakdown = {k: med([r[0].get(k, 0.) for r in runs]) for k in ITER_PARTS}
            breakdown['total'] = med([r[2] for r in runs])
            breakdown['other'] = breakdown['total'] - sum(breakdown[k] for k in ITER_PARTS)
            entry['breakdown_s'] = breakdown
            entry['breakdown_runs'] = len(runs)
            entry['calls'] = {k: runs[-1][1].get(k, 0) for k in ITER_PARTS}
            entry['refine_steps_run'] = entry['calls']['phi_r']
            entry['seconds_per_call'] = {k: breakdown[k] / entry['calls'][k] for k in ITER_PARTS
                                         if entry['calls'][k]}
            if args.profile:
                self.log(f'{self.name}: profiling one call')
                entry['profile'] = profile_call(self.fn, self.device, args.profile)
            if not args.no_flops:
                self.log(f'{self.name}: counting FLOPs, timing matmul peaks')
                entry['per_call'] = per_call_efficiency(self.fn, self.net, entry['seconds_per_call'], args,
                                                        self.device)
        return entry


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.agreement:
        if not mmagic_available():
            raise SystemExit('--agreement loads a trained model through MMagic, which is not installed')
        import iter_mm  # noqa: F401
        return _emit(agreement(args), args.out)
    import iter_mm  # noqa: F401  (registers ITER; imports MMagic)
    if mmagic_available():
        from mmengine.registry import init_default_scope
        init_default_scope('mmagic')
    elif set(args.models) - {'iter', 'iter-ref'}:
        raise SystemExit(f'--models {" ".join(args.models)}: SwinIR and RRDBNet come from MMagic, which is not '
                         'installed; run --models iter (PyTorch only)')
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    if args.batch < 1 or args.size < 1 or args.profile < 0:
        raise SystemExit(f'--batch and --size must be >= 1 and --profile >= 0, got {args.batch}, {args.size} and '
                         f'{args.profile}')
    lq = torch.rand(args.batch, 3, args.size, args.size,
                    generator=torch.Generator().manual_seed(args.seed)).to(device)

    result: dict = dict(
        size=args.size, scale=args.scale, out_size=args.size * args.scale, batch=args.batch, device=args.device,
        device_name=torch.cuda.get_device_name(device) if device.type == 'cuda' else (platform.processor() or
                                                                                       platform.machine()),
        threads=torch.get_num_threads(), cpu_count=os.cpu_count(), dtype=args.dtype,
        baseline_dtype=args.baseline_dtype,
        autocast=args.dtype != 'fp32', torch=torch.__version__, warmup=args.warmup, repeats=args.repeats,
        steps=args.steps, alpha=args.alpha, cuda_graphs=args.cuda_graphs, weights='random', interleave=args.interleave,
        models={})

    def log(msg: str) -> None:
        print(f'[benchmark] {msg}', file=sys.stderr, flush=True)

    benches = [_Bench(name, args, device, lq, log) for name in args.models]
    for b in benches:  # warm-up, then the timed calls: model after model, or alternating with --interleave
        log(f'{b.name}: {b.params / 1e6:.1f} M parameters, timing')
        for _ in range(args.warmup):
            b.fn()
        _sync(device)
    order = ([b for _ in range(args.repeats) for b in benches] if args.interleave else
             [b for b in benches for _ in range(args.repeats)])
    for b in order:
        b.timed()
    for b in benches:
        result['models'][b.name] = b.finish(args)
        log(f"{b.name}: median {result['models'][b.name]['median_s']:.3f} s")

    for it_name in ('iter', 'iter-ref'):
        if it_name in result['models']:
            it = result['models'][it_name]['median_s']
            for other in ('swinir', 'rrdbnet'):
                if other in result['models']:
                    result[f"{it_name.replace('-', '_')}_over_{other}"] = it / result['models'][other]['median_s']
    if 'iter' in result['models'] and 'iter-ref' in result['models']:
        result['iter_ref_over_iter'] = result['models']['iter-ref']['median_s'] / result['models']['iter']['median_s']
    return _emit(result, args.out)


def _emit(result: dict, out: Optional[str]) -> int:
    """Print the JSON object; with ``--out`` also write it there."""
    text = json.dumps(result, indent=1)
    if out:
        with open(out, 'w') as f:
            f.write(text + '\n')
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
