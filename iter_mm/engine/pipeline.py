"""All of ITER's training in one call: stage I (the Swin-VQGAN config the ITER config names) unless a stage-I
checkpoint is given, then stages II+III on its frozen result, then the ITER config's test set; each stage in its own
work dir through MMagic's Runner (``tools/train_pipeline.py`` is its command line).

A finished stage (its ``iter_<max_iters>.pth`` exists) is skipped, an interrupted one resumes from its last
checkpoint. A stage's work dir records its model, training data, stage-I checkpoint and initialisation
(:func:`iter_mm.engine.stages.stage_record`): a rerun with other ones is refused instead of reusing the old result.
A given stage-I checkpoint (ours, or the authors' ``ITER_swinvqgan.pth`` as it is) counts as a finished stage I.
"""

from __future__ import annotations

import copy
import json
import os.path as osp
import time
from typing import Optional

from mmengine.config import Config
from mmengine.dist import get_rank

from ..errors import InvalidOptionError
from .launch import check_data_folders, prepare_training
from .stages import (
    check_stage_record,
    export_weights,
    final_checkpoint,
    resolve_stage1_checkpoint,
    set_initialisation,
    stage1_config_path,
    stage_state,
    write_stage_record,
)

__all__ = ['run_pipeline', 'run_stage', 'run_test', 'format_summary', 'stage_work_dir']


def stage_work_dir(root: Optional[str], cfg_path: str) -> Optional[str]:
    """Work dir of a stage under a pipeline's root folder: ``<root>/<config name>``.

    Args:
        root (str, optional): the pipeline's root folder.
        cfg_path (str): the stage's config (``mmagic::`` allowed).

    Returns:
        str, optional: the work dir, or None without a root.
    """
    return None if root is None else osp.join(root, osp.splitext(osp.basename(cfg_path.split('::')[-1]))[0])


def run_stage(cfg: Config, name: str) -> dict:
    """Train ``cfg`` unless finished; resume when interrupted.

    Args:
        cfg (Config): the stage's prepared training config (see ``prepare_training``).
        name (str): the stage's name in the summary and messages.

    Returns:
        dict: ``stage``, ``work_dir``, ``checkpoint``, ``state`` ('fresh' / 'resume' / 'done'), ``minutes`` and
        ``metrics`` (the last validation).

    Raises:
        OutputExistsError: the work dir holds a stage trained with another model, data, stage I or initialisation.
    """
    from .hooks import MetricsRecorderHook
    from .runner import ITERRunner

    state = stage_state(cfg)
    check_stage_record(cfg, name)  # a stage trained on other data / model / stage-I file is not reused
    summary = dict(stage=name, work_dir=cfg.work_dir, checkpoint=final_checkpoint(cfg), state=state)
    if state == 'fresh' and get_rank() == 0:
        write_stage_record(cfg)
    if state == 'done':
        summary.update(minutes=0.0, metrics={})
        return summary
    cfg.resume, cfg.load_from = state == 'resume', None
    start = time.time()
    runner = ITERRunner.from_cfg(cfg)
    recorder = MetricsRecorderHook()
    runner.register_hook(recorder)
    runner.train()
    summary.update(minutes=(time.time() - start) / 60, metrics=recorder.metrics.get('val', {}))
    return summary


def run_test(cfg: Config, checkpoint: str) -> dict:
    """The ITER config's test set on the final checkpoint (training-only parts dropped, as tools/test.py).

    Args:
        cfg (Config): the ITER training config (not changed: a copy is tested).
        checkpoint (str): the checkpoint to test.

    Returns:
        dict: ``stage`` 'test', ``state`` ('ran', or why not), ``minutes`` and ``metrics``.
    """
    from ..utils.config import inference_model_cfg
    from .hooks import MetricsRecorderHook
    from .runner import ITERRunner

    if cfg.get('test_dataloader') is None or cfg.get('test_evaluator') is None:
        return dict(stage='test', state='no test set in the config', minutes=0.0, metrics={})
    cfg = copy.deepcopy(cfg)
    cfg.model = inference_model_cfg(cfg.model)
    cfg.load_from, cfg.resume = checkpoint, False
    cfg.experiment_name = f'{cfg.get("experiment_name", "iter")}_test'
    for key in (
        'train_dataloader',
        'train_cfg',
        'optim_wrapper',
        'param_scheduler',
        'val_dataloader',
        'val_cfg',
        'val_evaluator',
    ):
        cfg[key] = None
    start = time.time()
    runner = ITERRunner.from_cfg(cfg)
    recorder = MetricsRecorderHook()
    runner.register_hook(recorder)
    metrics = runner.test() or recorder.metrics.get('test', {})
    return dict(stage='test', state='ran', minutes=(time.time() - start) / 60, metrics=dict(metrics))


def run_pipeline(
    config: str,
    work_root: Optional[str] = None,
    *,
    cfg_options: Optional[dict] = None,
    stage1_cfg_options: Optional[dict] = None,
    stage1_checkpoint: Optional[str] = None,
    init_from: Optional[str] = None,
    amp: bool = False,
    launcher: str = 'none',
    skip_test: bool = False,
) -> dict:
    """Train (or skip) stage I, train stages II+III, test; returns the summary.

    The summary is also written as ``<ITER work dir>/pipeline_summary.json``; the final weights, weights-only, as
    ``<ITER work dir>/weights.pth``.

    Args:
        config (str): ITER config (names its stage-I config as ``stage1_config`` unless a stage-I checkpoint is
            given).
        work_root (str, optional): root folder: stage I in ``<root>/<stage-I name>``, ITER in ``<root>/<name>``.
            Default: None (the configs' own work dirs).
        cfg_options (dict, optional): overrides of the ITER config. Default: None.
        stage1_cfg_options (dict, optional): overrides of the stage-I config. Default: None.
        stage1_checkpoint (str, optional): a stage-I checkpoint (ours or the authors' ``ITER_swinvqgan.pth``): stage
            I is then not trained. Also taken from the config's ``model.stage1_checkpoint``. Default: None.
        init_from (str, optional): ITER checkpoint initialising E_l / phi_e / phi_r (``ITERModel(init_from=)``).
            Default: None.
        amp (bool): mixed precision (CUDA fp16, CPU bf16) in every stage trained. Default: False.
        launcher (str): 'none', 'pytorch' or 'slurm'. Default: 'none'.
        skip_test (bool): stop after training. Default: False.

    Returns:
        dict: ``config``, ``stage1_config``, ``stages`` (per stage: work dir, checkpoint, state 'fresh' / 'resume'
        / 'done' / 'given', minutes, validation metrics) and ``summary`` (the JSON file).

    Raises:
        InvalidOptionError: the config names no stage-I config and no stage-I checkpoint is given.
        MissingDataError: a data folder, the stage-I config or checkpoint, or ``init_from`` does not exist.
        OutputExistsError: a stage's work dir holds a stage trained with other parts.
    """
    from ..utils.config import load_config

    cfg = load_config(config, cfg_options)
    set_initialisation(cfg, stage1_checkpoint, init_from)
    given = (cfg.get('model') or {}).get('stage1_checkpoint') or (cfg.get('model') or {}).get('vqgan_ckpt')
    stage1_path = stage1_config_path(cfg, config)
    if stage1_path is None and given is None:
        raise InvalidOptionError(
            f'{config} names no stage-I config and no stage-I checkpoint is given: add '
            "`stage1_config = 'swinvqgan_xxx.py'` (relative to the config's folder) or give "
            'a stage-I checkpoint (stage1_checkpoint)'
        )
    check_data_folders(cfg)  # a wrong folder stops here, not after a Runner's config dump
    prepare_training(cfg, config, launcher=launcher, work_dir=stage_work_dir(work_root, config), amp=amp)
    if given is None:
        cfg1 = load_config(stage1_path, stage1_cfg_options)
        check_data_folders(cfg1)
        prepare_training(cfg1, stage1_path, launcher=launcher, work_dir=stage_work_dir(work_root, stage1_path), amp=amp)
        stages = [run_stage(cfg1, 'stage I')]
        cfg.model.stage1_checkpoint = final_checkpoint(cfg1)  # the frozen VQGAN of stages II+III
    else:
        resolve_stage1_checkpoint(cfg, config)  # the given file must exist
        stages = [dict(stage='stage I', state='given', checkpoint=cfg.model.stage1_checkpoint, minutes=0.0, metrics={})]
    stages.append(run_stage(cfg, 'stages II+III'))
    weights = osp.join(cfg.work_dir, 'weights.pth')  # weights only: tools/infer.py, compare_sr, Inferencer
    if get_rank() == 0:
        export_weights(final_checkpoint(cfg), weights)
    stages[-1]['weights'] = weights
    if not skip_test:
        stages.append(run_test(cfg, final_checkpoint(cfg)))
    summary = dict(
        config=config, stage1_config=stage1_path, stages=stages, summary=osp.join(cfg.work_dir, 'pipeline_summary.json')
    )
    if get_rank() == 0:
        with open(summary['summary'], 'w') as f:
            json.dump({k: v for k, v in summary.items() if k != 'summary'}, f, indent=2)
    return summary


def format_summary(summary: dict) -> str:
    """The pipeline's summary as a table: one line per stage (state, minutes, checkpoint), its metrics below.

    Args:
        summary (dict): the result of :func:`run_pipeline`.

    Returns:
        str: the table, several lines.
    """
    lines = ['', '=' * 30 + ' ITER pipeline ' + '=' * 30]
    states = {
        'done': 'finished earlier (skipped)',
        'resume': 'resumed and finished',
        'fresh': 'trained',
        'given': 'given (not trained)',
    }
    for s in summary['stages']:
        what = states.get(s['state'], s['state'])
        lines.append(f'{s["stage"]:<14} {what:<28} {s["minutes"]:6.1f} min   {s.get("checkpoint", "")}')
        for key, value in sorted(s['metrics'].items()):
            lines.append(f'{"":<14} {key:<36} {value:.4f}' if isinstance(value, float) else f'{"":<14} {key}: {value}')
    lines.append(f'summary: {summary["summary"]}')
    return '\n'.join(lines)
