"""Inference benchmarks: ITER (paper scale, random weights) against MMagic's SwinIR and RRDBNet, bf16 / reference
kernel agreement on a trained model, and the peak host memory of one CPU restoration.

:func:`benchmark_inference` times each model's call (median of the timed calls after warm-up ones) and, for ITER,
the per-call breakdown (E_l, phi_e, phi_r, VQGAN decoder; forward hooks: during the timed calls on CPU, in
separate runs on CUDA where the hooks synchronise), the FLOPs of one call of each part, the GFLOP/s achieved and
the matmul peak of the part's dominant size (:mod:`iter_mm.evaluation.benchmark`). Without MMagic only ITER runs,
as the bare ``ITERNet`` through ``restore_image``. ``tools/benchmark_inference.py`` and
``tools/measure_memory.py`` are the command lines.
"""

from __future__ import annotations

import math
import resource
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch

from ..errors import InvalidOptionError
from .benchmark import PartTimer, count_part_flops, machine_facts, matmul_peak, profile_call, rss_bytes, submodule, sync

__all__ = [
    'InferenceBenchSettings',
    'benchmark_inference',
    'agreement',
    'mmagic_available',
    'BareITER',
    'build_iter',
    'dominant_gemms',
    'measure_restore_memory',
    'ITER_PARTS',
]

SWINIR_CFG = 'swinir/swinir_gan-x{s}s64w8d6e180_8xb4-lr1e-4-600k_df2k-ost.py'
RRDB_CFG = 'real_esrgan/realesrgan_c64b23g32_4xb12-lr1e-4-400k_df2k-ost.py'
ITER_PARTS = {'E_l': 'lq_encoder', 'phi_e': 'evaluator', 'phi_r': 'refiner', 'decoder': 'vqgan.decoder'}


@dataclass
class InferenceBenchSettings:
    """What :func:`benchmark_inference` runs (the defaults of ``tools/benchmark_inference.py``)."""

    size: int = 128  # LQ side in pixels
    scale: int = 4
    batch: int = 1  # images of one size per call
    steps: int = 8
    alpha: float = 0.7
    device: str = 'cpu'
    dtype: str = 'fp32'  # ITER's precision (bf16 / fp16 under autocast)
    baseline_dtype: str = 'fp32'  # SwinIR's and RRDBNet's
    cuda_graphs: bool = False
    repeats: int = 3
    warmup: int = 1
    models: List[str] = field(default_factory=lambda: ['iter', 'swinir', 'rrdbnet'])
    iter_config: Optional[str] = None
    seed: int = 0
    flops: bool = True  # count FLOPs and time the matmul peaks
    profile: int = 0  # ops of one profiled ITER call to report (0: no profile)
    interleave: bool = False  # alternate the models' timed calls


def mmagic_available() -> bool:
    """Whether MMagic (and so MMEngine / MMCV) can be imported; without it only ITER runs.

    Returns:
        bool: True when ``mmagic.registry`` imports.
    """
    try:
        import mmagic.registry  # noqa: F401
    except ImportError:
        return False
    return True


class BareITER(torch.nn.Module):
    """ITERModel's ``restore`` on an ``ITERNet`` alone, for a machine with PyTorch only (no MMagic).

    The same networks, sampling and options (:func:`iter_mm.models.inference.restore_image`).

    Args:
        net (torch.nn.Module): an ``ITERNet``, held as ``generator``.
    """

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.generator = net

    @torch.no_grad()
    def restore(self, lq: torch.Tensor, **options) -> torch.Tensor:
        """Super-resolve ``lq`` as ``ITERModel.restore`` does (without its loops and results).

        Args:
            lq (torch.Tensor): (B, 3, h, w) in [0, 1].
            **options: fields of :class:`~iter_mm.models.options.RestoreOptions`.

        Returns:
            torch.Tensor: (B, 3, h*s, w*s) in [0, 1].
        """
        from ..models.inference import restore_image
        from ..models.options import RestoreOptions

        return restore_image(self.generator, lq, RestoreOptions(**options))


def build_iter(scale: int, config: Optional[str] = None) -> torch.nn.Module:
    """ITER with random weights on purpose (timings only), through the one loader.

    The model of ``config``, else ITERModel with the paper-scale ITERNet (without MMagic: the ``ITERNet`` in
    :class:`BareITER`).

    Args:
        scale (int): 2 or 4 (without ``config``).
        config (str, optional): an ITER config. Default: None.

    Returns:
        torch.nn.Module: a model with ``restore`` and ``generator``.

    Raises:
        InvalidOptionError: a config without MMagic.
    """
    if not mmagic_available():
        if config:
            raise InvalidOptionError(
                'an ITER config needs MMagic / MMEngine; without them only the paper-scale ITERNet runs'
            )
        from ..models.archs import ITERNet

        return BareITER(ITERNet(scale=scale))
    from mmengine.config import Config

    from ..apis import init_model

    if config:
        return init_model(config, random_weights=True)
    # every ITERNet default is the released configuration (docs/architecture.md)
    cfg = Config(
        dict(
            default_scope='mmagic',
            model=dict(
                type='ITERModel',
                generator=dict(type='ITERNet', scale=scale),
                eval_lq_loss=None,
                data_preprocessor=dict(type='DataPreprocessor', mean=[0.0] * 3, std=[255.0] * 3),
            ),
        )
    )
    return init_model(cfg, random_weights=True)


def dominant_gemms(net: torch.nn.Module, tokens: int) -> Dict[str, tuple]:
    """The part's largest matmul shape (M, K, N) for the matmul peak.

    The Swin MLP's fc1 of E_l, phi_e and phi_r (tokens x D x 4D); for the decoder the im2col GEMM of its 3x3 convs at a
    quarter of the output pixels (4 * tokens x 9 * C x C at C = twice the base width).

    Args:
        net (torch.nn.Module): an ``ITERNet``.
        tokens (int): token rows of the batched GEMMs.

    Returns:
        dict[str, tuple]: 'E_l', 'phi_e', 'phi_r', 'decoder' -> (M, K, N).
    """

    def fc1(mod: torch.nn.Module) -> tuple:
        lin = next(m for name, m in mod.named_modules() if name.endswith('mlp.fc1'))
        return tokens, lin.in_features, lin.out_features

    c = 2 * net.vqgan.decoder.blocks[-1].in_channels
    return {
        'E_l': fc1(net.lq_encoder),
        'phi_e': fc1(net.evaluator),
        'phi_r': fc1(net.refiner),
        'decoder': (min(4 * tokens * 16, 16384), 9 * c, c),
    }


def per_call_efficiency(
    fn: Callable[[], object],
    net: torch.nn.Module,
    seconds_per_call: Dict[str, float],
    s: InferenceBenchSettings,
    device: torch.device,
) -> Dict[str, dict]:
    """Per part: FLOPs of one call, GFLOP/s achieved, and the matmul peak of its dominant size in this run.

    Args:
        fn (callable): one restoration, without arguments.
        net (torch.nn.Module): the ``ITERNet`` it runs.
        seconds_per_call (dict[str, float]): measured seconds per call of each part.
        s (InferenceBenchSettings): the benchmark's settings (batch, size, scale, dtype).
        device (torch.device): where it runs.

    Returns:
        dict[str, dict]: part -> ``gflop_per_call``, ``achieved_gflops``, ``matmul`` (:func:`matmul_peak`) and
        ``fraction_of_peak``.
    """
    from ..models.inference import DTYPES

    flops = count_part_flops(fn, {k: submodule(net, v) for k, v in ITER_PARTS.items()})
    tokens = s.batch * (s.size * s.scale // net.vqgan.downscale) ** 2  # rows of the batched GEMMs
    dtype = DTYPES[s.dtype] or torch.float32
    out = {}
    for part, gemm in dominant_gemms(net, tokens).items():
        if part not in flops or part not in seconds_per_call:
            continue
        peak = matmul_peak(*gemm, dtype, device)
        achieved = flops[part] / seconds_per_call[part] / 1e9
        out[part] = dict(
            gflop_per_call=flops[part] / 1e9,
            achieved_gflops=achieved,
            matmul=peak,
            fraction_of_peak=achieved / peak['peak_gflops'],
        )
    return out


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.float() - b.float()).square().mean().item()
    return float('inf') if mse == 0 else 10 * math.log10(1 / mse)


def agreement(config: str, checkpoint: str, lq_dir: str, overrides: Optional[dict] = None) -> dict:
    """Restore every image of ``lq_dir`` with a trained model three ways and compare them.

    The three ways are fp32 (default kernels), fp32 reference kernels and bf16 autocast; per image and overall: the
    fraction of identical final and S_l tokens and the PSNR of bf16 against fp32, and whether the fp32 kernels give the
    reference's tokens (and its images within 1e-4).

    Args:
        config (str): an ITER config.
        checkpoint (str): its checkpoint, loaded with ``allow_pickle`` (trusted files).
        lq_dir (str): folder of LQ images.
        overrides (dict, optional): ``RestoreOptions`` over the config's ``test_cfg``. Default: None.

    Returns:
        dict: the settings, overall figures and ``images`` (one row per image), JSON-ready.
    """
    import os.path as osp

    from ..apis import init_model
    from ..models.archs.fast_ops import reference_kernels
    from ..utils.image_files import folder_images
    from ..utils.image_io import read_image

    overrides = overrides or {}
    files = folder_images(lq_dir, 'LQ folder')
    model = init_model(config, checkpoint, allow_pickle=True).eval()
    opts = model.options('test', **overrides).sampling()  # the config's test_cfg over RestoreOptions' defaults
    images, tot = [], defaultdict(float)
    for f in files:
        lq = torch.from_numpy(read_image(osp.join(lq_dir, f))[0].transpose(2, 0, 1).copy())[None]
        t0 = time.perf_counter()
        fp32 = model.restore(lq, return_result=True, **overrides)
        t1 = time.perf_counter()
        with reference_kernels():
            ref = model.restore(lq, return_result=True, **overrides)
        t2 = time.perf_counter()
        bf16 = model.restore(lq, return_result=True, dtype='bf16', **overrides)
        t3 = time.perf_counter()
        row = dict(
            image=f,
            lq_size=list(lq.shape[-2:]),
            tokens=int(fp32.tokens.numel()),
            bf16_tokens_equal=(bf16.tokens == fp32.tokens).float().mean().item(),
            bf16_lq_tokens_equal=(bf16.lq_tokens == fp32.lq_tokens).float().mean().item(),
            bf16_psnr_vs_fp32=_psnr(bf16.image, fp32.image),
            fp32_vs_reference_tokens_identical=bool(
                torch.equal(fp32.tokens, ref.tokens) and torch.equal(fp32.lq_tokens, ref.lq_tokens)
            ),
            fp32_vs_reference_max_abs=(fp32.image - ref.image).abs().max().item(),
            seconds=dict(fp32=t1 - t0, reference=t2 - t1, bf16=t3 - t2),
        )
        images.append(row)
        n = row['tokens']
        tot['tokens'] += n
        tot['equal'] += row['bf16_tokens_equal'] * n
        tot['lq_equal'] += row['bf16_lq_tokens_equal'] * n
    return dict(
        mode='agreement',
        config=config,
        checkpoint=checkpoint,
        lq_dir=lq_dir,
        sampling=opts,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        bf16_tokens_equal=tot['equal'] / tot['tokens'],
        bf16_lq_tokens_equal=tot['lq_equal'] / tot['tokens'],
        bf16_psnr_vs_fp32_mean=statistics.mean(r['bf16_psnr_vs_fp32'] for r in images),
        fp32_vs_reference_tokens_identical=all(r['fp32_vs_reference_tokens_identical'] for r in images),
        fp32_vs_reference_max_abs=max(r['fp32_vs_reference_max_abs'] for r in images),
        images=images,
    )


class _ModelBench:
    """One model of the benchmark: its call, the timed runs and (ITER) the per-part hooks."""

    def __init__(
        self, name: str, s: InferenceBenchSettings, device: torch.device, lq: torch.Tensor, log: Callable[[str], None]
    ) -> None:
        from ..models.inference import autocast_context

        log(f'{name}: building')
        self.name, self.s, self.device, self.is_iter, self.runs, self.log = (
            name,
            s,
            device,
            name.startswith('iter'),
            [],
            log,
        )
        if self.is_iter:
            from ..models.archs.fast_ops import reference_kernels

            model = build_iter(s.scale, s.iter_config).to(device).eval()
            opts = self.opts = dict(alpha=s.alpha, steps=s.steps, seed=s.seed, dtype=s.dtype, cuda_graphs=s.cuda_graphs)

            def fn(ref: bool = name == 'iter-ref'):
                with reference_kernels(ref):
                    return model.restore(lq, **opts)

            self.net = model.generator
        else:
            from ..apis.mmagic_models import zoo_generator

            net = (
                (
                    zoo_generator(SWINIR_CFG.format(s=s.scale))
                    if name == 'swinir'
                    else zoo_generator(RRDB_CFG, upscale_factor=s.scale)
                )
                .to(device)
                .eval()
            )

            def fn():
                with torch.no_grad(), autocast_context(s.baseline_dtype, device):
                    return net(lq)

            self.net = net
        self.fn = fn
        self.params = sum(p.numel() for p in self.net.parameters())
        # ITER's per-call breakdown: hooks on E_l, phi_e, phi_r, decoder. On CPU they cost nothing and ride
        # along the timed calls; on CUDA they synchronise, so they get their own runs after the timed ones.
        self.timer = PartTimer(device, self._parts()) if self.is_iter and device.type == 'cpu' else None

    def _parts(self) -> Dict[str, torch.nn.Module]:
        return {k: submodule(self.net, v) for k, v in ITER_PARTS.items()}

    def timed(self) -> None:
        """One timed call; with hooks, the per-part seconds and calls of this call."""
        if self.timer is not None:
            self.timer.reset()
        t0 = time.perf_counter()
        self.fn()
        sync(self.device)
        self.runs.append(
            (
                dict(self.timer.seconds) if self.timer else {},
                dict(self.timer.calls) if self.timer else {},
                time.perf_counter() - t0,
            )
        )

    def finish(self) -> dict:
        s = self.s
        times = [r[2] for r in self.runs]
        entry = dict(median_s=statistics.median(times), times_s=times, params=self.params)
        entry['images_per_s'] = s.batch / entry['median_s']
        if self.device.type == 'cuda':
            entry['peak_mem_mib'] = torch.cuda.max_memory_allocated(self.device) / 2**20
            torch.cuda.reset_peak_memory_stats(self.device)
        if not self.is_iter:
            return entry
        runs = self.runs
        if self.device.type == 'cuda':  # hooked runs of their own, eager (a graph replay calls no module)
            self.timer, self.runs = PartTimer(self.device, self._parts()), []
            graphs, self.opts['cuda_graphs'] = self.opts['cuda_graphs'], False
            for _ in range(min(s.repeats, 3)):
                self.timed()
            self.opts['cuda_graphs'] = graphs
            runs = self.runs
        self.timer.remove()
        med = statistics.median
        breakdown = {k: med([r[0].get(k, 0.0) for r in runs]) for k in ITER_PARTS}
        breakdown['total'] = med([r[2] for r in runs])
        breakdown['other'] = breakdown['total'] - sum(breakdown[k] for k in ITER_PARTS)
        entry['breakdown_s'] = breakdown
        entry['breakdown_runs'] = len(runs)
        entry['calls'] = {k: runs[-1][1].get(k, 0) for k in ITER_PARTS}
        entry['refine_steps_run'] = entry['calls']['phi_r']
        entry['seconds_per_call'] = {k: breakdown[k] / entry['calls'][k] for k in ITER_PARTS if entry['calls'][k]}
        if s.profile:
            self.log(f'{self.name}: profiling one call')
            entry['profile'] = profile_call(self.fn, self.device, s.profile)
        if s.flops:
            self.log(f'{self.name}: counting FLOPs, timing matmul peaks')
            entry['per_call'] = per_call_efficiency(self.fn, self.net, entry['seconds_per_call'], s, self.device)
        return entry


def benchmark_inference(s: InferenceBenchSettings, log: Callable[[str], None] = lambda msg: None) -> dict:
    """Time the models of ``s`` on one fixed random LQ batch; the result as one JSON-ready dict.

    Args:
        s (InferenceBenchSettings): models, sizes, device, dtype and repetitions.
        log (callable): progress messages. Default: a no-op.

    Returns:
        dict: the settings, machine facts and ``models`` (per model: median seconds, times, parameters, images/s; for
        ITER the per-part breakdown, and optionally profile and FLOP figures), plus speed ratios.

    Raises:
        InvalidOptionError: SwinIR / RRDBNet asked for without MMagic, or sizes below 1.
    """
    if mmagic_available():
        from mmengine.registry import init_default_scope

        init_default_scope('mmagic')
    elif set(s.models) - {'iter', 'iter-ref'}:
        raise InvalidOptionError(
            f'models {s.models}: SwinIR and RRDBNet come from MMagic, which is not '
            'installed; only ITER runs with PyTorch alone'
        )
    if s.batch < 1 or s.size < 1 or s.profile < 0:
        raise InvalidOptionError(
            f'batch and size must be >= 1 and profile >= 0, got {s.batch}, {s.size} and {s.profile}'
        )
    device = torch.device(s.device)
    torch.manual_seed(s.seed)
    lq = torch.rand(s.batch, 3, s.size, s.size, generator=torch.Generator().manual_seed(s.seed)).to(device)
    facts = machine_facts(device)
    result: dict = dict(
        size=s.size,
        scale=s.scale,
        out_size=s.size * s.scale,
        batch=s.batch,
        device=s.device,
        device_name=facts['device_name'],
        threads=facts['threads'],
        cpu_count=facts['cpu_count'],
        dtype=s.dtype,
        baseline_dtype=s.baseline_dtype,
        autocast=s.dtype != 'fp32',
        torch=torch.__version__,
        warmup=s.warmup,
        repeats=s.repeats,
        steps=s.steps,
        alpha=s.alpha,
        cuda_graphs=s.cuda_graphs,
        weights='random',
        interleave=s.interleave,
        models={},
    )
    benches = [_ModelBench(name, s, device, lq, log) for name in s.models]
    for b in benches:  # warm-up, then the timed calls: model after model, or alternating with interleave
        log(f'{b.name}: {b.params / 1e6:.1f} M parameters, timing')
        for _ in range(s.warmup):
            b.fn()
        sync(device)
    order = (
        [b for _ in range(s.repeats) for b in benches]
        if s.interleave
        else [b for b in benches for _ in range(s.repeats)]
    )
    for b in order:
        b.timed()
    models = result['models']
    for b in benches:
        models[b.name] = b.finish()
        log(f'{b.name}: median {models[b.name]["median_s"]:.3f} s')
    for it_name in ('iter', 'iter-ref'):
        for other in ('swinir', 'rrdbnet'):
            if it_name in models and other in models:
                result[f'{it_name.replace("-", "_")}_over_{other}'] = (
                    models[it_name]['median_s'] / models[other]['median_s']
                )
    if 'iter' in models and 'iter-ref' in models:
        result['iter_ref_over_iter'] = models['iter-ref']['median_s'] / models['iter']['median_s']
    return result


def _maxrss() -> int:
    """Peak RSS of this process in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_restore_memory(size: int, scale: int = 4, steps: int = 1, dtype: str = 'fp32', threads: int = 0) -> dict:
    """Peak host memory (RSS) of one CPU restoration of a random (1, 3, size, size) LQ without tiling.

    By the paper-scale ``ITERNet(scale)`` (random weights, every step runs), in this process (``ru_maxrss`` only grows:
    run one size per fresh process).

    Args:
        size (int): LQ side in pixels.
        scale (int): 2 or 4. Default: 4.
        steps (int): refinement steps. Default: 1.
        dtype (str): 'fp32', 'bf16' or 'fp16'. Default: 'fp32'.
        threads (int): torch threads (0: leave as is). Default: 0.

    Returns:
        dict: the RSS after the build, the peak, their difference per LQ pixel (the figure behind
        ``iter_mm.utils.tiling.CALL_BYTES_PER_HR_PIXEL``) and, per network and decoder block, by how much its calls
        raised the peak.
    """
    from ..models.archs import ITERNet
    from ..models.inference import restore_image

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = ITERNet(scale=scale).eval()
    lq = torch.rand(1, 3, size, size)
    built, built_peak = rss_bytes(), _maxrss()
    rises: dict = {}

    def hooks(name: str, module: torch.nn.Module) -> None:
        state = {}

        def pre(_m, _a):
            state['before'], state['rss'] = _maxrss(), rss_bytes()

        def post(_m, _a, _o):
            cur = rises.setdefault(name, dict(calls=0, max_rise_mb=0.0, rss_in_mb=0.0))
            cur['calls'] += 1
            cur['max_rise_mb'] = max(cur['max_rise_mb'], (_maxrss() - state['before']) / 2**20)
            cur['rss_in_mb'] = max(cur['rss_in_mb'], state['rss'] / 2**20)

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)

    for name in ('lq_encoder', 'evaluator', 'refiner'):
        hooks(name, getattr(net, name))
    hooks('decoder', net.vqgan.decoder)
    for k, blk in enumerate(net.vqgan.decoder.blocks):
        hooks(f'decoder.blocks.{k}.{type(blk).__name__}', blk)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = restore_image(net, lq, alpha=1.0, steps=steps, max_pixels=None, tile=None, dtype=dtype)
    wall, peak = time.perf_counter() - t0, _maxrss()
    return dict(
        size=size,
        scale=scale,
        steps=steps,
        dtype=dtype,
        threads=torch.get_num_threads(),
        out_shape=list(out.shape),
        wall_s=round(wall, 1),
        rss_after_build_mb=round(built / 2**20),
        peak_before_call_mb=round(built_peak / 2**20),
        peak_rss_mb=round(peak / 2**20),
        call_mb=round((peak - built) / 2**20),
        call_kb_per_lq_pixel=round((peak - built) / size**2 / 1024, 1),
        parts={k: {kk: round(vv, 1) for kk, vv in v.items()} for k, v in rises.items()},
    )
