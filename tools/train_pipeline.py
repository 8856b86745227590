"""Train all of ITER in one command: stage I (the Swin-VQGAN config the ITER config names), then stages II+III on
its frozen result, then the ITER config's test set; each stage in its own work dir through MMagic's Runner.

    python tools/train_pipeline.py configs/iter/iter_x4_demo.py
    python tools/train_pipeline.py configs/iter/iter_x4_realsr.py --amp
    python -m torch.distributed.run --nproc_per_node 4 tools/train_pipeline.py CONFIG --launcher pytorch
    srun ... python tools/train_pipeline.py CONFIG --launcher slurm

A finished stage (its ``iter_<max_iters>.pth`` exists) is skipped, an interrupted one resumes from its last
checkpoint, so rerunning the same command after a crash or a kill continues where it stopped. A stage's work dir
records its model, training data and stage-I checkpoint (``pipeline_stage.json``): a rerun with other ones stops
instead of reusing the old result (a longer ``max_iters`` continues the stage). The final ITER
weights are also written weights-only to ``<ITER work dir>/weights.pth`` (for tools/infer.py, compare_sr and the
Inferencer). The summary (paths, metrics, minutes per stage) is printed and written to
``<ITER work dir>/pipeline_summary.json``.
"""
import argparse
import copy
import json
import os
import os.path as osp
import time

from mmengine.config import DictAction
from mmengine.dist import get_rank

from iter_mm.engine.hooks import MetricsRecorderHook
from iter_mm.engine.launch import check_data_folders, prepare_training
from iter_mm.engine.stages import (check_stage_record, export_weights, final_checkpoint, stage1_config_path,
                                  stage_state, write_stage_record)
from iter_mm.engine.runner import ITERRunner
from iter_mm.errors import ITERError, cli_message
from iter_mm.utils.config import inference_model_cfg, load_config

#: this tool's option for each library argument a refusal may name
FLAGS = dict(cfg_options='--cfg-options / --stage1-cfg-options', work_dir='--work-dir', amp='--amp',
             launcher='--launcher')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train ITER stage I, then stages II+III, then test')
    parser.add_argument('config', help='ITER config (names its stage-I config as `stage1_config`)')
    parser.add_argument('--work-dir', help='root folder: stage I in WORK_DIR/<stage-I name>, ITER in WORK_DIR/<name>')
    parser.add_argument('--amp', action='store_true', help='mixed precision (CUDA fp16, CPU bf16) in both stages')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='overrides of the ITER config')
    parser.add_argument('--stage1-cfg-options', nargs='+', action=DictAction, help='overrides of the stage-I config')
    parser.add_argument('--skip-test', action='store_true', help='stop after training')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def _work_dir(root, cfg_path):
    return None if root is None else osp.join(root, osp.splitext(osp.basename(cfg_path.split('::')[-1]))[0])


def run_stage(cfg, name: str) -> dict:
    """Train ``cfg`` unless finished; resume when interrupted. Returns the stage's summary."""
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


def run_test(cfg, checkpoint: str) -> dict:
    """The ITER config's test set on the final checkpoint (training-only parts dropped, as tools/test.py)."""
    if cfg.get('test_dataloader') is None or cfg.get('test_evaluator') is None:
        return dict(stage='test', state='no test set in the config', minutes=0.0, metrics={})
    cfg = copy.deepcopy(cfg)
    cfg.model = inference_model_cfg(cfg.model)
    cfg.load_from, cfg.resume = checkpoint, False
    cfg.experiment_name = f'{cfg.get("experiment_name", "iter")}_test'
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper', 'param_scheduler', 'val_dataloader', 'val_cfg',
                'val_evaluator'):
        cfg[key] = None
    start = time.time()
    runner = ITERRunner.from_cfg(cfg)
    recorder = MetricsRecorderHook()
    runner.register_hook(recorder)
    metrics = runner.test() or recorder.metrics.get('test', {})
    return dict(stage='test', state='ran', minutes=(time.time() - start) / 60, metrics=dict(metrics))


def print_summary(stages: list, path: str) -> None:
    print('\n' + '=' * 30 + ' ITER pipeline ' + '=' * 30)
    for s in stages:
        what = {'done': 'finished earlier (skipped)', 'resume': 'resumed and finished', 'fresh': 'trained'}.get(
            s['state'], s['state'])
        print(f'{s["stage"]:<14} {what:<28} {s["minutes"]:6.1f} min   {s.get("checkpoint", "")}')
        for key, value in sorted(s['metrics'].items()):
            print(f'{"":<14} {key:<36} {value:.4f}' if isinstance(value, float) else f'{"":<14} {key}: {value}')
    print(f'summary: {path}')


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    stage1_path = stage1_config_path(cfg, args.config)
    if stage1_path is None:
        raise SystemExit(f'{args.config} names no stage-I config: add `stage1_config = \'swinvqgan_xxx.py\'` '
                         '(relative to the config\'s folder)')
    cfg1 = load_config(stage1_path, args.stage1_cfg_options)
    for c, path in ((cfg1, stage1_path), (cfg, args.config)):
        check_data_folders(c)  # a wrong folder stops here, not after a Runner's config dump
        prepare_training(c, path, launcher=args.launcher, work_dir=_work_dir(args.work_dir, path), amp=args.amp)

    if args.cfg_options and 'model.vqgan_ckpt' in args.cfg_options:
        raise SystemExit('--cfg-options model.vqgan_ckpt: the pipeline trains stages II+III on the stage-I checkpoint '
                         'it trains itself; to use a stage-I file of your own run tools/train.py on the ITER config')
    stages = [run_stage(cfg1, 'stage I')]
    cfg.model.vqgan_ckpt = final_checkpoint(cfg1)  # the frozen VQGAN of stages II+III
    stages.append(run_stage(cfg, 'stages II+III'))
    weights = osp.join(cfg.work_dir, 'weights.pth')  # weights only: tools/infer.py, compare_sr, Inferencer
    if get_rank() == 0:
        export_weights(final_checkpoint(cfg), weights)
    stages[-1]['weights'] = weights
    if not args.skip_test:
        stages.append(run_test(cfg, final_checkpoint(cfg)))
    if get_rank() == 0:
        path = osp.join(cfg.work_dir, 'pipeline_summary.json')
        with open(path, 'w') as f:
            json.dump(dict(config=args.config, stage1_config=stage1_path, stages=stages), f, indent=2)
        print_summary(stages, path)


if __name__ == '__main__':
    try:
        main()
    except ITERError as err:  # a refusal: 'error: ...', exit status 1
        raise SystemExit(cli_message(err, FLAGS)) from None
