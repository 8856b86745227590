"""Measuring tools of the benchmarks: CUDA-synchronised timing, per-part timers, FLOP counts, matmul peaks,
profiles and the facts of the machine.

Used by :mod:`iter_mm.evaluation.inference_benchmark` and :mod:`iter_mm.evaluation.train_benchmark` (the
command lines ``tools/benchmark_inference.py`` and ``tools/benchmark_train.py``). PyTorch only: no MMagic needed.
"""

from __future__ import annotations

import os
import platform
import time
from collections import defaultdict
from typing import Callable, Dict, List, Optional

import torch

__all__ = [
    'sync',
    'submodule',
    'time_calls',
    'PartTimer',
    'count_part_flops',
    'matmul_peak',
    'profile_call',
    'machine_facts',
    'rss_bytes',
]


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on CPU.

    Args:
        device (torch.device): the device.
    """
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def rss_bytes() -> int:
    """The resident memory of this process now, in bytes (Linux ``/proc/self/statm``).

    Returns:
        int: resident bytes.
    """
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def submodule(root: torch.nn.Module, dotted: str) -> Optional[torch.nn.Module]:
    """The sub-module at the dotted path ``dotted`` of ``root``, None if absent.

    Args:
        root (torch.nn.Module): the module to look in.
        dotted (str): attribute path such as ``'generator.vqgan.decoder'``.

    Returns:
        torch.nn.Module, optional: the sub-module, or None.
    """
    for part in dotted.split('.'):
        root = getattr(root, part, None)
        if root is None:
            return None
    return root if isinstance(root, torch.nn.Module) else None


def time_calls(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> List[float]:
    """Seconds of each of ``repeats`` calls after ``warmup`` untimed ones.

    Args:
        fn (callable): the call, without arguments.
        device (torch.device): the device to synchronise before reading the clock.
        warmup (int): untimed calls first.
        repeats (int): timed calls.

    Returns:
        list[float]: ``repeats`` durations in seconds.
    """
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


class PartTimer:
    """Wall time and call count of named parts: forward hooks on modules, wrappers around bound methods.

    Timing synchronises CUDA before reading the clock. A timed module inside another timed one is counted in both
    (give disjoint parts).

    Args:
        device (torch.device): The device whose work is timed.
        modules (dict, optional): Name -> module, timed from the start. Default: None.
    """

    def __init__(self, device: torch.device, modules: Optional[Dict[str, torch.nn.Module]] = None) -> None:
        self.device = device
        self.seconds: Dict[str, float] = defaultdict(float)
        self.calls: Dict[str, int] = defaultdict(int)
        self._t0: Dict[str, List[float]] = defaultdict(list)
        self._undo: List[Callable[[], None]] = []
        for name, module in (modules or {}).items():
            self.add_module(name, module)

    def _start(self, name: str) -> None:
        sync(self.device)
        self._t0[name].append(time.perf_counter())

    def _stop(self, name: str) -> None:
        sync(self.device)
        self.seconds[name] += time.perf_counter() - self._t0[name].pop()
        self.calls[name] += 1

    def add_module(self, name: str, module: torch.nn.Module) -> None:
        """Time every forward call of ``module`` as ``name``.

        Args:
            name (str): the part's name.
            module (torch.nn.Module): the timed module (forward pre- and post-hooks).
        """
        pre = module.register_forward_pre_hook(lambda m, a: self._start(name))
        post = module.register_forward_hook(lambda m, a, o: self._stop(name))
        self._undo += [pre.remove, post.remove]

    def add_method(self, name: str, obj: object, attr: str) -> None:
        """Time ``obj.attr(...)`` (an instance attribute shadows the class method until :meth:`remove`).

        Args:
            name (str): the part's name.
            obj (object): the object whose method is timed.
            attr (str): the method's name.
        """
        original = getattr(obj, attr)

        def timed(*args, **kwargs):
            self._start(name)
            try:
                return original(*args, **kwargs)
            finally:
                self._stop(name)

        setattr(obj, attr, timed)
        self._undo.append(lambda: delattr(obj, attr))

    def reset(self) -> None:
        """Forget the times and call counts measured so far (the hooks stay)."""
        self.seconds.clear()
        self.calls.clear()

    def remove(self) -> None:
        """Take every hook and wrapper off again."""
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


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

    for target, formula in (
        (getattr(ops.mkldnn, '_linear_pointwise', None), linear_flops),
        (getattr(ops.mkldnn, '_convolution_pointwise', None), conv_flops),
        (getattr(ops.mkldnn, '_convolution_pointwise_', None), conv_flops),
        (getattr(ops.aten, '_scaled_dot_product_flash_attention_for_cpu', None), sdpa_cpu_flops),
    ):
        if target is not None and target not in fc.flop_registry:
            fc.register_flop_formula(target, get_raw=True)(formula)


def count_part_flops(fn: Callable[[], object], modules: Dict[str, torch.nn.Module]) -> Dict[str, float]:
    """FLOPs of one call of each named sub-module during ``fn()`` (mean over its calls).

    Counted from the shapes of the matmuls, convolutions and attention it ran (``torch.utils.flop_counter``).

    Args:
        fn (callable): the call, without arguments.
        modules (dict[str, torch.nn.Module]): name -> sub-module.

    Returns:
        dict[str, float]: name -> FLOPs per call, for the modules that ran.
    """
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
    """GFLOP/s of a plain (m, k) @ (k, n) matmul in ``dtype``.

    ``torch.matmul`` and, on CPU, oneDNN's linear (what the fused path runs); best of ``repeats`` after one warm-up.

    Args:
        m (int): rows of the left operand.
        k (int): inner dimension.
        n (int): columns of the result.
        dtype (torch.dtype): operand dtype.
        device (torch.device): where it runs.
        repeats (int): timed calls, the best counts. Default: 3.

    Returns:
        dict: ``shape``, ``dtype``, GFLOP/s per implementation and ``peak_gflops`` (the best).
    """
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


def profile_call(fn: Callable[[], object], device: torch.device, top: int) -> dict:
    """One call of ``fn`` under torch.profiler.

    Args:
        fn (callable): the call, without arguments.
        device (torch.device): its device (CUDA: device time and kernel launches are reported).
        top (int): how many ops to list.

    Returns:
        dict: ``wall_s``, ``time_kind``, ``ops`` (count), ``kernel_launches`` (CUDA, else None) and ``top``: the ``top``
        ops by self time, each with calls and milliseconds.
    """
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        fn()
        sync(device)
        wall = time.perf_counter() - t0
    events = prof.key_averages()
    on_gpu = device.type == 'cuda'

    def self_us(e) -> float:
        return float(getattr(e, 'self_device_time_total', 0.0) if on_gpu else e.self_cpu_time_total)

    ranked = sorted(events, key=self_us, reverse=True)[:top]
    launches = sum(e.count for e in events if e.key in ('cudaLaunchKernel', 'cuLaunchKernel', 'cudaLaunchKernelExC'))
    return dict(
        wall_s=wall,
        time_kind='device' if on_gpu else 'cpu',
        ops=sum(e.count for e in events),
        kernel_launches=launches if on_gpu else None,
        top=[dict(op=e.key, calls=e.count, self_ms=self_us(e) / 1e3) for e in ranked],
    )


def machine_facts(device: torch.device) -> dict:
    """Device name (the GPU's, or the CPU's), torch threads, CPU count and torch version of this run.

    Args:
        device (torch.device): the device of the run.

    Returns:
        dict: ``device_name``, ``threads``, ``cpu_count``, ``torch``.
    """
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else (platform.processor() or platform.machine())
    return dict(device_name=name, threads=torch.get_num_threads(), cpu_count=os.cpu_count(), torch=torch.__version__)
