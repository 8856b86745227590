"""Seconds per training iteration of ITER's stage I (Swin-VQGAN: G + D step) and stages II+III (E_l, phi_e, phi_r).

The models, losses and optimizer wrappers are built from the real configs and every iteration is the model's own
``train_step`` with MMEngine's optimizer wrapper, i.e. what ``tools/train.py`` runs per iteration in one process
(minus data loading and DDP), on one fixed random batch packed by MMagic's ``PackInputs``; weights are random
(the frozen stage-I VQGAN of stages II+III too): timings only. The LPIPS-VGG perceptual loss needs pretrained VGG
weights: ``perceptual='none'`` drops it, ``'l1'`` puts an L1 loss of the same weight in its place. ``amp``: on
CUDA MMEngine's ``AmpOptimWrapper`` (fp16), on CPU the project's ``AutocastOptimWrapper`` (bf16 autocast).

``authors23`` times the authors' stage II+III iteration as a pattern of calls on our networks (a full VQGAN
forward of the GT for S_h, four phi_e passes, one phi_r, the E_l decode without gradient), for a same-run
comparison with ``23``; it is not the authors' code (their per-call speed differs).

Per-part breakdown: forward hooks on the networks, each loss module and the data preprocessor, and wrapped
``backward`` / ``step`` / ``zero_grad`` of the optimizer wrappers, with the number of calls of each per iteration.
On CPU the hooks ride along the timed iterations; on CUDA they synchronise, so the totals come from un-hooked
iterations and the breakdown from up to 3 extra hooked ones. ``tools/benchmark_train.py`` is the command line.
"""

from __future__ import annotations

import copy
import os
import resource
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from ..errors import InvalidOptionError
from .benchmark import PartTimer, machine_facts, submodule, sync

__all__ = [
    'TrainBenchSettings',
    'benchmark_train',
    'authors_step_model_class',
    'replace_perceptual',
    'build_stage',
    'random_batch',
    'attach_timer',
    'StageRun',
    'run_stages',
    'STAGES',
]

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class TrainBenchSettings:
    """What :func:`benchmark_train` runs (the defaults of ``tools/benchmark_train.py``)."""

    stages: List[str] = field(default_factory=lambda: ['1', '23'])
    stage1_config: str = 'configs/iter/swinvqgan_df2k-ost.py'
    iter_config: str = 'configs/iter/iter_x4_realsr.py'
    stage1_options: dict = field(default_factory=dict)  # overrides of the stage-I config
    iter_options: dict = field(default_factory=dict)  # overrides of the ITER config (stages 23, authors23)
    gt_size: int = 320  # GT crop side (the authors: 320)
    batch: int = 4  # images per iteration (the authors: 4 per GPU)
    iters: int = 3  # timed iterations (median reported)
    warmup: int = 1  # untimed iterations first
    device: str = 'cpu'
    amp: bool = False
    perceptual: str = 'none'  # 'none' or 'l1' in place of LPIPS-VGG
    interleave: bool = False  # build every stage first and alternate their iterations
    seed: int = 0


STAGES = ('1', '23', 'authors23')
#: timed sub-modules (dotted paths in the training model) of each stage; absent ones are skipped
PARTS = {
    '1': {
        'vqgan_encoder': 'generator.encoder',
        'quantizer': 'generator.quantize',
        'vqgan_decoder': 'generator.decoder',
        'discriminator': 'discriminator',
        'data_preprocessor': 'data_preprocessor',
    },
    '23': {
        'E_l': 'generator.lq_encoder',
        'phi_e': 'generator.evaluator',
        'phi_r': 'generator.refiner',
        'vqgan_encoder': 'generator.vqgan.encoder',
        'vqgan_decoder': 'generator.vqgan.decoder',
        'data_preprocessor': 'data_preprocessor',
    },
}
PARTS['authors23'] = PARTS['23']
#: loss modules of the training models, timed as ``loss:<name>``
LOSSES = ('pixel_loss', 'ssim_loss', 'perceptual_loss', 'gan_loss', 'eval_lq_loss')
#: optimizer-wrapper methods timed as parts
OPTIM_PARTS = {'backward': 'backward', 'optimizer_step': 'step', 'zero_grad': 'zero_grad'}


def authors_step_model_class():
    """:class:`ITERModel` subclass whose iteration makes the authors' network calls (defined lazily: MMagic).

    Returns:
        type: ``AuthorsStepITERModel``.
    """
    import torch.nn.functional as F

    from ..models.editors.iter_model import ITERModel, masked_fraction_ce
    from ..models.sampling import sample_training_mask

    class AuthorsStepITERModel(ITERModel):
        """The authors' stage II+III iteration (docs/faithfulness.md#stages-ii-and-iii-training) on our networks, for
        comparison only.

        Calls per iteration: a full VQGAN forward of the GT under no_grad (encoder, quantiser, decoder; only
        the indices S_h are used), E_l, phi_e four times ((a) [S_l, S_l] with grad, (b) the same under no_grad
        for phi_r's flag, (c) on a sample of phi_r's output with grad, unused, (d) on argmax(phi_r)), phi_r
        once, and the image decodes of the configured losses (E_l's under no_grad with ``el_gumbel_grad=False``,
        the authors' ``.long()`` cast). Losses, their order and the use of the global RNG (training mask, then
        Gumbel noise) are ITERModel's, so one iteration gives the same losses and updates as ``ITERModel``;
        the sample of (c) uses a private generator. The "unused GT encode" that issue 11 also lists is not
        made, so this is a lower bound of the authors' work.
        """

        def forward_train(self, inputs, data_samples=None, **kwargs):
            net = self.generator
            lq, gt = inputs, data_samples.gt_img
            with torch.no_grad():  # net_hq(gt): full forward, only the indices are used
                z_q, _, gt_tokens = net.vqgan.quantize(net.vqgan.encode(gt))
                net.vqgan.decode(z_q)
            el_logits = net.lq_encoder(lq)
            lq_tokens = el_logits.detach().argmax(1)
            b, h, w = gt_tokens.shape
            mask = sample_training_mask(b, h, w, device=lq.device).to(torch.float32)
            lq_good = (lq_tokens == gt_tokens).long()
            losses = {}
            if self.lq_ce_weight > 0:
                losses['loss_lq_ce'] = self.lq_ce_weight * F.cross_entropy(el_logits.float(), gt_tokens)
            eval_lq_logits = net.evaluator(lq_tokens, lq_tokens)  # (a)
            if self.eval_lq_loss is not None:
                losses['loss_eval_lq'] = self.eval_lq_loss(eval_lq_logits.float(), lq_good)
            with torch.no_grad():
                eval_lq_pred = net.evaluator(lq_tokens, lq_tokens).argmax(1)  # (b)
            cond_flag = (eval_lq_pred == 0).to(torch.float32)
            ref_logits = net.refiner(lq_tokens, cond_flag, gt_tokens, 1.0 - mask)
            n = ref_logits.shape[1]
            probs = ref_logits.detach().float().softmax(1).permute(0, 2, 3, 1).reshape(-1, n)
            gen = torch.Generator(lq.device).manual_seed(0)
            sampled = torch.multinomial(probs, 1, generator=gen).view(b, h, w)
            net.evaluator(sampled, lq_tokens)  # (c): with grad, unused
            ref_tokens = ref_logits.detach().argmax(1)
            if self.refine_ce_weight > 0:
                losses['loss_refine_ce'] = self.refine_ce_weight * masked_fraction_ce(ref_logits, gt_tokens, mask)
            eval_ref_logits = net.evaluator(ref_tokens, lq_tokens)  # (d)
            if self.eval_refined_ce_weight > 0:
                losses['loss_eval_refined_ce'] = self.eval_refined_ce_weight * F.cross_entropy(
                    eval_ref_logits.float(), (ref_tokens == gt_tokens).long()
                )
            losses.update(self._image_losses(el_logits, ref_logits, gt))
            return losses

    return AuthorsStepITERModel


def replace_perceptual(model_cfg: dict, mode: str) -> Optional[str]:
    """Drop the perceptual loss of ``model_cfg`` (mode 'none') or put L1 of its weight in its place ('l1').

    Args:
        model_cfg (dict): a model config (changed in place).
        mode (str): 'none' or 'l1'.

    Returns:
        str, optional: the type of the replaced loss, or None when the config had none.
    """
    loss = model_cfg.get('perceptual_loss')
    if not loss:
        return None
    model_cfg['perceptual_loss'] = (
        None if mode == 'none' else dict(type='L1Loss', loss_weight=loss.get('loss_weight', 1.0), reduction='mean')
    )
    return loss.get('type')


def build_stage(stage: str, s: TrainBenchSettings, device: torch.device):
    """Model, optimizer wrapper and config facts of one stage from its config, random weights.

    Args:
        stage (str): '1', '23' or 'authors23'.
        s (TrainBenchSettings): configs, options, perceptual mode and AMP.
        device (torch.device): where the model goes.

    Returns:
        tuple: (model in train mode, optim_wrapper, dict of config facts).
    """
    from mmengine.optim import build_optim_wrapper

    from mmagic.registry import MODELS

    from ..utils.config import enable_amp, load_config

    if stage == '1':
        cfg = load_config(s.stage1_config, s.stage1_options)
    else:
        cfg = load_config(s.iter_config, s.iter_options)
    model_cfg = copy.deepcopy(cfg.model)
    replaced = replace_perceptual(model_cfg, s.perceptual)
    if stage != '1':
        model_cfg['vqgan_ckpt'] = None  # random frozen VQGAN (marked ready below)
    if stage == 'authors23':
        model_cfg['el_gumbel_grad'] = False  # the authors' E_l decode is a constant (`.long()` cast)
        model_cfg['compute_inert_terms'] = True  # ... which they compute all the same
        model = authors_step_model_class()(**{k: v for k, v in model_cfg.items() if k != 'type'})
    else:
        model = MODELS.build(model_cfg)
    if stage != '1':
        # The model accepts a full state dict that holds every VQGAN tensor as its stage I (a full ITER
        # checkpoint): its own random one makes the frozen VQGAN "ready" through the public loading path.
        model.load_state_dict(model.state_dict())
    model.to(device).train()
    wrapper_type = 'OptimWrapper'
    if s.amp:
        wrapper_type = enable_amp(cfg, device=device.type)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    facts = dict(
        config=os.path.relpath(cfg.filename, _ROOT) if cfg.filename else None,
        perceptual_replaced=replaced,
        perceptual=s.perceptual if replaced else None,
        optim_wrapper=wrapper_type,
        scale=int(getattr(model.generator, 'scale', 1)) if stage != '1' else 1,
        el_gumbel_grad=getattr(model, 'el_gumbel_grad', None),
        cudnn_benchmark=bool(cfg.get('env_cfg', {}).get('cudnn_benchmark', False)),
    )
    return model, optim_wrapper, facts


def random_batch(stage: str, gt_size: int, batch: int, scale: int, seed: int) -> dict:
    """One collated batch as the dataloader delivers it: ``PackInputs`` of random uint8 images, pseudo-collated.

    Stage I reconstructs its input (``img`` = ``gt``); stages II+III get an LQ of ``gt_size / scale``.

    Args:
        stage (str): '1', '23' or 'authors23'.
        gt_size (int): GT side in pixels.
        batch (int): images in the batch.
        scale (int): upscaling factor (stages II+III).
        seed (int): seed of the images.

    Returns:
        dict: ``inputs`` (list of (3, h, w) uint8) and ``data_samples``.

    Raises:
        InvalidOptionError: ``gt_size`` is not a multiple of ``scale`` (stages II+III).
    """
    from mmengine.dataset import pseudo_collate

    from mmagic.registry import TRANSFORMS

    pack = TRANSFORMS.build(dict(type='PackInputs'))
    rng = np.random.RandomState(seed)
    items = []
    for _ in range(batch):
        gt = rng.randint(0, 256, (gt_size, gt_size, 3), dtype=np.uint8)
        if stage == '1':
            img = gt.copy()
        else:
            if gt_size % scale:
                raise InvalidOptionError(f'GT size {gt_size} is not a multiple of the scale {scale}')
            img = rng.randint(0, 256, (gt_size // scale, gt_size // scale, 3), dtype=np.uint8)
        items.append(pack(dict(gt=gt, img=img, gt_channel_order='rgb', img_channel_order='rgb', scale=scale)))
    return pseudo_collate(items)


def _wrappers(optim_wrapper) -> Dict[str, object]:
    from mmengine.optim import OptimWrapperDict

    if isinstance(optim_wrapper, OptimWrapperDict):
        return dict(optim_wrapper.items())
    return {'': optim_wrapper}


def attach_timer(stage: str, model: torch.nn.Module, optim_wrapper, device: torch.device) -> PartTimer:
    """Hooks on the stage's networks, loss modules and optimizer-wrapper methods.

    Args:
        stage (str): '1', '23' or 'authors23' (the parts of :data:`PARTS`).
        model (torch.nn.Module): the stage's model.
        optim_wrapper (OptimWrapper | OptimWrapperDict): its optimizer wrapper(s).
        device (torch.device): where it runs.

    Returns:
        PartTimer: the timer, attached.
    """
    timer = PartTimer(device)
    for name, path in PARTS[stage].items():
        mod = submodule(model, path)
        if mod is not None:
            timer.add_module(name, mod)
    for name in LOSSES:
        mod = getattr(model, name, None)
        if isinstance(mod, torch.nn.Module):
            timer.add_module(f'loss:{name}', mod)
    for key, wrapper in _wrappers(optim_wrapper).items():
        for part, attr in OPTIM_PARTS.items():
            timer.add_method(f'{part}:{key}' if key else part, wrapper, attr)
    return timer


class StageRun:
    """One stage's model, optimizer wrapper and fixed batch; runs and times ``train_step`` iterations.

    Args:
        stage (str): '1', '23' or 'authors23'.
        s (TrainBenchSettings): the benchmark's settings.
        device (torch.device): where it runs.
    """

    def __init__(self, stage: str, s: TrainBenchSettings, device: torch.device) -> None:
        torch.manual_seed(s.seed)
        self.stage, self.device = stage, device
        self.model, self.optim_wrapper, self.facts = build_stage(stage, s, device)
        if device.type == 'cuda':
            torch.backends.cudnn.benchmark = self.facts['cudnn_benchmark']
            torch.cuda.reset_peak_memory_stats(device)
        self.batch = random_batch(stage, s.gt_size, s.batch, self.facts['scale'], s.seed)
        self.trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        # CPU: the hooks ride along the timed iterations; CUDA: they synchronise, so they get extra iterations
        self.timer = attach_timer(stage, self.model, self.optim_wrapper, device) if device.type == 'cpu' else None
        self.runs: List[tuple] = []

    def iteration(self, timer: Optional[PartTimer] = None) -> tuple:
        """One ``train_step``.

        Args:
            timer (PartTimer, optional): the hooks to read. Default: None (the run's own, CPU only).

        Returns:
            tuple: (seconds, (part seconds, part calls), log_vars, process CPU seconds).
        """
        timer = timer or self.timer
        data = copy.deepcopy(self.batch)  # untimed: the preprocessor may modify it
        if timer is not None:
            timer.reset()
        sync(self.device)
        t0, c0 = time.perf_counter(), time.process_time()
        log_vars = self.model.train_step(data, self.optim_wrapper)
        sync(self.device)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        parts = (dict(timer.seconds), dict(timer.calls)) if timer is not None else ({}, {})
        return total, parts, log_vars, cpu

    def timed(self) -> float:
        """One iteration, kept for :meth:`summary`.

        Returns:
            float: its seconds.
        """
        self.runs.append(self.iteration())
        return self.runs[-1][0]

    def summary(self, parts_iters: int) -> dict:
        """The stage's JSON entry (medians); on CUDA first ``parts_iters`` hooked iterations for the breakdown.

        Args:
            parts_iters (int): hooked iterations on CUDA.

        Returns:
            dict: config facts, median and all times, peak memory, the per-part breakdown, calls and losses.
        """
        totals = [r[0] for r in self.runs]
        cpu = [r[3] for r in self.runs]
        entry = dict(
            self.facts,
            median_s=statistics.median(totals),
            times_s=totals,
            cpu_median_s=statistics.median(cpu),
            cpu_times_s=cpu,
            trainable_params=self.trainable,
        )
        parts_runs = self.runs
        if self.device.type == 'cuda':
            entry['peak_mem_mib'] = torch.cuda.max_memory_allocated(self.device) / 2**20
            timer = attach_timer(self.stage, self.model, self.optim_wrapper, self.device)
            parts_runs = [self.iteration(timer) for _ in range(parts_iters)]
            timer.remove()
            entry['breakdown_runs'] = len(parts_runs)
        else:
            self.timer.remove()
            # the process's peak resident memory so far (Linux reports KiB)
            entry['peak_rss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        med = statistics.median
        names = sorted({k for r in parts_runs for k in r[1][0]})
        breakdown = {k: med([r[1][0].get(k, 0.0) for r in parts_runs]) for k in names}
        hooked_total = med([r[0] for r in parts_runs])
        calls = {k: parts_runs[-1][1][1].get(k, 0) for k in names}
        log_vars = self.runs[-1][2]
        entry.update(
            breakdown_s=dict(breakdown, other=hooked_total - sum(breakdown.values()), total=hooked_total),
            calls_per_iter=calls,
            seconds_per_call={k: breakdown[k] / calls[k] for k in names if calls[k]},
            forward_parts_s=sum(breakdown[k] for k in names if k.split(':')[0] not in OPTIM_PARTS),
            logged=sorted(log_vars),
            losses={k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in log_vars.items()},
        )
        return entry

    def close(self) -> None:
        """Free the model and optimizer wrapper (and CUDA's cached memory)."""
        del self.model, self.optim_wrapper
        if self.device.type == 'cuda':
            torch.cuda.empty_cache()


def run_stages(s: TrainBenchSettings, device: torch.device, log: Callable[[str], None]) -> Dict[str, dict]:
    """Each stage in turn (or, with ``interleave``, all built first and their iterations alternated).

    Args:
        s (TrainBenchSettings): the benchmark's settings.
        device (torch.device): where it runs.
        log (callable): progress messages.

    Returns:
        dict[str, dict]: stage -> :meth:`StageRun.summary`.
    """
    entries: Dict[str, dict] = {}
    groups = [s.stages] if s.interleave else [[stage] for stage in s.stages]
    for group in groups:
        runs = {}
        for stage in group:
            runs[stage] = StageRun(stage, s, device)
            log(f'stage {stage}: {runs[stage].trainable / 1e6:.1f} M trainable parameters')
        for i in range(s.warmup):
            for stage, run in runs.items():
                run.iteration()
                log(f'stage {stage}: warm-up {i + 1}/{s.warmup} done')
        for i in range(s.iters):
            for stage, run in runs.items():
                log(f'stage {stage}: iteration {i + 1}/{s.iters}: {run.timed():.3f} s')
        for stage, run in runs.items():
            entries[stage] = run.summary(min(s.iters, 3))
            run.close()
    return entries


def benchmark_train(s: TrainBenchSettings, log: Callable[[str], None] = lambda msg: None) -> dict:
    """Time the stages of ``s``; the result as one JSON-ready dict (medians, breakdown, losses per stage).

    Args:
        s (TrainBenchSettings): stages, configs, batch, device and repetitions.
        log (callable): progress messages. Default: a no-op.

    Returns:
        dict: the settings, machine facts and ``stages``, plus ``authors23_over_23`` when both ran.
    """
    device = torch.device(s.device)
    facts = machine_facts(device)
    result: dict = dict(
        gt_size=s.gt_size,
        batch=s.batch,
        device=s.device,
        device_name=facts['device_name'],
        threads=facts['threads'],
        cpu_count=facts['cpu_count'],
        amp=s.amp,
        torch=torch.__version__,
        warmup=s.warmup,
        iters=s.iters,
        interleave=s.interleave,
        weights='random (frozen stage-I VQGAN of stages II+III included)',
        data='one fixed random uint8 batch (PackInputs + pseudo_collate), no data loading timed',
        stages={},
    )
    result['stages'] = stages = run_stages(s, device, log)
    if '23' in stages and 'authors23' in stages:
        result['authors23_over_23'] = stages['authors23']['median_s'] / stages['23']['median_s']
    return result
