"""Train any MMagic model (ITER's or MMagic's own) with MMEngine's Runner.

    python tools/train.py configs/iter/iter_x4_realsr.py
    python tools/train.py configs/iter/iter_x4_realsr.py --stage1-checkpoint ITER_swinvqgan.pth --init-from ITER_x2.pth
    python tools/train.py mmagic::srcnn/srcnn_x4k915_1xb16-1000k_div2k.py --cfg-options ...
    bash tools/dist_train.sh configs/iter/iter_x4_realsr.py 4

Options follow MMagic's own tools/train.py: --work-dir, --resume [CKPT], --amp, --auto-scale-lr,
--cfg-options, --launcher none|pytorch|slurm; for ITER configs also --stage1-checkpoint (default: the final
checkpoint of the config's stage1_config) and --init-from (docs/finetuning.md). Without a GPU, distributed runs use
CPU processes and gloo, and --amp trains under bf16 autocast.
"""

import argparse
import os

from mmengine.config import DictAction

#: this tool's option for each library argument a refusal may name
FLAGS = {
    'resume': '--resume',
    'work_dir': '--work-dir',
    'cfg_options': '--cfg-options',
    'amp': '--amp',
    'auto_scale_lr': '--auto-scale-lr',
    'launcher': '--launcher',
    'stage1_checkpoint': '--stage1-checkpoint',
    'model.stage1_checkpoint': '--stage1-checkpoint',
    'init_from': '--init-from',
    'model.init_from': '--init-from',
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train an MMagic / iter-mm model')
    parser.add_argument('config', help="config file, or mmagic::<path> for a config of MMagic's zoo")
    parser.add_argument('--work-dir', help='directory for logs and checkpoints')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        default=None,
        metavar='CKPT',
        help='resume from CKPT, or (no value) from the latest checkpoint in the work dir',
    )
    parser.add_argument(
        '--stage1-checkpoint',
        metavar='CKPT',
        help='ITER: the frozen stage-I checkpoint (ours or the '
        "authors' ITER_swinvqgan.pth); default: the final checkpoint of the config's stage1_config",
    )
    parser.add_argument(
        '--init-from',
        metavar='CKPT',
        help='ITER: checkpoint (ITER_x2.pth, ITER_x4.pth, ours) whose '
        'tensors of matching name and shape initialise E_l, phi_e and phi_r',
    )
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision training')
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale the LR by the actual batch size')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, e.g. train_cfg.max_iters=1000 model.stage1_checkpoint=path.pth',
    )
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    # the heavy stack (MMEngine, MMagic, iter_mm) only after the arguments: --help and usage errors come at once
    from iter_mm.engine.config_format import reuse_config_formatting
    from iter_mm.engine.launch import check_data_folders, prepare_training, refuse_overwriting_checkpoints
    from iter_mm.engine.runner import ITERRunner
    from iter_mm.engine.stages import resolve_stage1_checkpoint, set_initialisation
    from iter_mm.utils.config import load_config

    reuse_config_formatting()  # this process formats its config text once (no output changes)
    cfg = load_config(args.config, args.cfg_options)
    prepare_training(
        cfg,
        args.config,
        launcher=args.launcher,
        work_dir=args.work_dir,
        amp=args.amp,
        auto_scale_lr=args.auto_scale_lr,
        resume=args.resume,
    )
    set_initialisation(cfg, args.stage1_checkpoint, args.init_from)
    check_data_folders(cfg)  # a wrong folder stops here, not after the Runner's config dump
    refuse_overwriting_checkpoints(cfg)  # a fresh run never mixes its checkpoints with an earlier run's
    resolve_stage1_checkpoint(cfg, args.config)  # an ITER config without its stage-I file stops here
    runner = ITERRunner.from_cfg(cfg)  # MMEngine's Runner, reading its own checkpoints on torch >= 2.6
    runner.train()


if __name__ == '__main__':
    try:
        main()
    except Exception as err:  # a refusal (ITERError): 'error: ...', exit status 1
        from iter_mm.errors import ITERError, cli_message

        if not isinstance(err, ITERError):
            raise
        raise SystemExit(cli_message(err, FLAGS)) from None
