#!/usr/bin/env python
"""Time ITER (paper scale, random weights) against MMagic's real-world x4/x2 SwinIR and RRDBNet networks.

    python tools/benchmark_inference.py [--size 128] [--scale 4] [--steps 8] [--alpha 0.7] [--device cpu|cuda]
        [--dtype fp32|bf16|fp16] [--repeats 3] [--warmup 1] [--threads N] [--models iter swinir rrdbnet]

One process, one LQ size (a fixed random image, batch 1). Each model: ``--warmup`` untimed calls, then
``--repeats`` timed calls (CUDA synchronised); the median is reported. ITER runs through ``ITERModel.restore``
(adaptive refinement, sampling options from the flags). Its per-call breakdown (E_l, phi_e, phi_r, VQGAN decoder,
number of calls of each) comes from forward hooks: during the timed calls on CPU, in separate runs on CUDA (where
the hooks synchronise). No weights are loaded: timings only (random phi_e decides how many refinement steps run, and
with ``--alpha`` above its typical P(good) that is all ``--steps``: the worst case). SwinIR and RRDBNet are the
generators of MMagic's ``swinir_gan-x{s}s64w8d6e180`` and ``realesrgan_c64b23g32`` configs, random weights.
bf16/fp16 run under autocast (never the default). Prints ONE JSON object.
"""
from __future__ import annotations

import argparse
import json
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


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--size', type=int, default=128, help='LQ side in pixels')
    p.add_argument('--scale', type=int, default=4, choices=(2, 4))
    p.add_argument('--steps', type=int, default=RESTORE_DEFAULTS.steps)
    p.add_argument('--alpha', type=float, default=RESTORE_DEFAULTS.alpha)
    p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    p.add_argument('--dtype', default='fp32', choices=('fp32', 'bf16', 'fp16'))
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--threads', type=int, default=0, help='torch CPU threads (0 = leave as is)')
    p.add_argument('--models', nargs='+', default=['iter', 'swinir', 'rrdbnet'],
                   choices=('iter', 'swinir', 'rrdbnet'))
    p.add_argument('--iter-config', help='ITER model config (default: ITERModel with the paper-scale ITERNet)')
    p.add_argument('--seed', type=int, default=0)
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


def build_iter(args) -> torch.nn.Module:
    """ITER with random weights on purpose (timings only), through the one loader."""
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import iter_mm  # noqa: F401  (registers ITER; imports MMagic)
    from mmengine.registry import init_default_scope
    from iter_mm.models.inference import autocast_context
    init_default_scope('mmagic')
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    lq = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(args.seed)).to(device)

    result: dict = dict(
        size=args.size, scale=args.scale, out_size=args.size * args.scale, batch=1, device=args.device,
        device_name=torch.cuda.get_device_name(device) if device.type == 'cuda' else (platform.processor() or
                                                                                       platform.machine()),
        threads=torch.get_num_threads(), cpu_count=os.cpu_count(), dtype=args.dtype,
        autocast=args.dtype != 'fp32', torch=torch.__version__, warmup=args.warmup, repeats=args.repeats,
        steps=args.steps, alpha=args.alpha, weights='random', models={})

    def log(msg: str) -> None:
        print(f'[benchmark] {msg}', file=sys.stderr, flush=True)

    for name in args.models:
        log(f'{name}: building')
        if name == 'iter':
            model = build_iter(args).to(device).eval()
            opts = dict(alpha=args.alpha, steps=args.steps, seed=args.seed, dtype=args.dtype)
            fn = lambda: model.restore(lq, **opts)  # noqa: E731
            net = model.generator
        else:
            net = (_zoo_generator(SWINIR_CFG.format(s=args.scale)) if name == 'swinir' else
                   _zoo_generator(RRDB_CFG, upscale_factor=args.scale)).to(device).eval()

            def fn(net=net):
                with torch.no_grad(), autocast_context(args.dtype, device):
                    return net(lq)
        params = sum(p.numel() for p in net.parameters())
        log(f'{name}: {params / 1e6:.1f} M parameters, timing')
        # ITER's per-call breakdown: hooks on E_l, phi_e, phi_r, decoder. On CPU they cost nothing and ride
        # along the timed calls; on CUDA they synchronise, so they get their own runs after the timed ones.
        timer = None
        if name == 'iter':
            timer = CallTimer({k: _module(net, v) for k, v in ITER_PARTS.items()}, device)
        runs = []

        def timed(fn=fn):
            if timer is not None and device.type == 'cpu':
                timer.reset()
            t0 = time.perf_counter()
            fn()
            _sync(device)
            runs.append((dict(timer.seconds) if timer else {}, dict(timer.calls) if timer else {},
                         time.perf_counter() - t0))

        if timer is not None and device.type == 'cuda':
            timer.remove()
        times = time_calls(timed, device, args.warmup, args.repeats)
        entry = dict(median_s=statistics.median(times), times_s=times, params=params)
        if device.type == 'cuda':
            entry['peak_mem_mib'] = torch.cuda.max_memory_allocated(device) / 2**20
            torch.cuda.reset_peak_memory_stats(device)
        if timer is not None:
            if device.type == 'cuda':
                timer = CallTimer({k: _module(net, v) for k, v in ITER_PARTS.items()}, device)
                runs = []
                for _ in range(min(args.repeats, 3)):
                    timer.reset()
                    timed()
            runs = runs[-args.repeats:] if device.type == 'cpu' else runs
            timer.remove()
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
        result['models'][name] = entry
        log(f"{name}: median {entry['median_s']:.3f} s")
        del net, fn
        if name == 'iter':
            del model
        if device.type == 'cuda':
            torch.cuda.empty_cache()

    if 'iter' in result['models']:
        it = result['models']['iter']['median_s']
        for other in ('swinir', 'rrdbnet'):
            if other in result['models']:
                result[f'iter_over_{other}'] = it / result['models'][other]['median_s']
    print(json.dumps(result, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
