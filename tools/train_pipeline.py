"""Train all of ITER in one command: stage I (the Swin-VQGAN config the ITER config names) or a stage-I checkpoint
you give, then stages II+III on its frozen result, then the ITER config's test set; each stage in its own work dir
through MMagic's Runner (iter_mm.engine.pipeline).

    python tools/train_pipeline.py configs/iter/iter_x4_demo.py
    python tools/train_pipeline.py configs/iter/iter_x4_realsr.py --amp
    python tools/train_pipeline.py configs/iter/iter_x4_realsr.py --stage1-checkpoint ITER_swinvqgan.pth \
        --init-from ITER_x2.pth             # the authors' x4 recipe: released codebook, start from the x2 model
    python -m torch.distributed.run --nproc_per_node 4 tools/train_pipeline.py CONFIG --launcher pytorch

A finished stage is skipped and an interrupted one resumes, so rerunning the same command after a crash continues
where it stopped; a given stage-I checkpoint counts as a finished stage I. A stage's work dir records its model,
training data, stage-I checkpoint and initialisation (``pipeline_stage.json``): a rerun with other ones stops
instead of reusing the old result. The final ITER weights are also written weights-only to
``<ITER work dir>/weights.pth`` (tools/infer.py, compare_sr, the Inferencer); the summary is printed and written to
``<ITER work dir>/pipeline_summary.json``.
"""

import argparse
import os

from mmengine.config import DictAction

#: this tool's option for each library argument a refusal may name
FLAGS = dict(
    cfg_options='--cfg-options / --stage1-cfg-options',
    work_dir='--work-dir',
    amp='--amp',
    launcher='--launcher',
    stage1_checkpoint='--stage1-checkpoint',
    init_from='--init-from',
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train ITER stage I, then stages II+III, then test')
    parser.add_argument('config', help='ITER config (names its stage-I config as `stage1_config`)')
    parser.add_argument('--work-dir', help='root folder: stage I in WORK_DIR/<stage-I name>, ITER in WORK_DIR/<name>')
    parser.add_argument(
        '--stage1-checkpoint',
        metavar='CKPT',
        help="stage-I checkpoint (ours, or the authors' ITER_swinvqgan.pth): stage I is not trained",
    )
    parser.add_argument(
        '--init-from',
        metavar='CKPT',
        help='ITER checkpoint (ITER_x2.pth, ITER_x4.pth, ours) whose '
        'tensors of matching name and shape initialise stages II+III (docs/finetuning.md)',
    )
    parser.add_argument('--amp', action='store_true', help='mixed precision (CUDA fp16, CPU bf16) in both stages')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='overrides of the ITER config')
    parser.add_argument('--stage1-cfg-options', nargs='+', action=DictAction, help='overrides of the stage-I config')
    parser.add_argument('--skip-test', action='store_true', help='stop after training')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    # the heavy stack (MMEngine, MMagic, iter_mm) only after the arguments: --help and usage errors come at once
    from mmengine.dist import get_rank

    from iter_mm.engine.config_format import reuse_config_formatting
    from iter_mm.engine.pipeline import format_summary, run_pipeline

    reuse_config_formatting()  # this process formats its config text once (no output changes)
    summary = run_pipeline(
        args.config,
        args.work_dir,
        cfg_options=args.cfg_options,
        stage1_cfg_options=args.stage1_cfg_options,
        stage1_checkpoint=args.stage1_checkpoint,
        init_from=args.init_from,
        amp=args.amp,
        launcher=args.launcher,
        skip_test=args.skip_test,
    )
    if get_rank() == 0:
        print(format_summary(summary))


if __name__ == '__main__':
    try:
        main()
    except Exception as err:  # a refusal (ITERError): 'error: ...', exit status 1
        from iter_mm.errors import ITERError, cli_message

        if not isinstance(err, ITERError):
            raise
        raise SystemExit(cli_message(err, FLAGS)) from None
