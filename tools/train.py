"""Train any MMagic model (ITER's or MMagic's own) with MMEngine's Runner.

    python tools/train.py configs/iter/iter_x4_realsr.py
    python tools/train.py mmagic::srcnn/srcnn_x4k915_1xb16-1000k_div2k.py --cfg-options ...
    bash tools/dist_train.sh configs/iter/iter_x4_realsr.py 4

Options follow MMagic's own tools/train.py: --work-dir, --resume [CKPT], --amp, --auto-scale-lr,
--cfg-options, --launcher none|pytorch|slurm. Without a GPU, distributed runs use CPU processes and gloo, and
--amp trains under bf16 autocast.
"""
import argparse
import os
import os.path as osp

from mmengine.config import DictAction

from iter_mm.engine.launch import check_data_folders, prepare_training, refuse_overwriting_checkpoints
from iter_mm.engine.runner import ITERRunner
from iter_mm.engine.stages import check_stage1_checkpoint, stage1_config_path
from iter_mm.errors import ITERError, MissingDataError, cli_message
from iter_mm.utils.config import load_config

#: this tool's option for each library argument a refusal may name
FLAGS = {'resume': '--resume', 'work_dir': '--work-dir', 'cfg_options': '--cfg-options', 'amp': '--amp',
         'auto_scale_lr': '--auto-scale-lr', 'launcher': '--launcher',
         'model.vqgan_ckpt': '--cfg-options model.vqgan_ckpt=PATH'}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train an MMagic / iter-mm model')
    parser.add_argument('config', help='config file, or mmagic::<path> for a config of MMagic\'s zoo')
    parser.add_argument('--work-dir', help='directory for logs and checkpoints')
    parser.add_argument(
        '--resume', nargs='?', const='auto', default=None, metavar='CKPT',
        help='resume from CKPT, or (no value) from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision training')
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale the LR by the actual batch size')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. train_cfg.max_iters=1000 model.vqgan_ckpt=path.pth')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def _stage1_commands(cfg, cfg_path: str) -> str:
    """The commands that make a missing stage-I checkpoint (``model.vqgan_ckpt``)."""
    ckpt, stage1 = cfg.model.vqgan_ckpt, stage1_config_path(cfg, cfg_path)
    make = (f'python tools/train.py {osp.relpath(stage1) if "::" not in stage1 else stage1}' if stage1 else
            'python tools/train.py <the Swin-VQGAN config of this model>')
    default_dir = osp.join('work_dirs', osp.splitext(osp.basename(stage1.split('::')[-1]))[0]) if stage1 else None
    if osp.normpath(osp.dirname(ckpt) or '.') != (osp.normpath(default_dir) if default_dir else None):
        make += f' --work-dir {osp.dirname(ckpt) or "."}'
    return f'\n  Make it with:   {make}\n  or run both stages: python tools/train_pipeline.py {cfg_path}'


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    prepare_training(cfg, args.config, launcher=args.launcher, work_dir=args.work_dir, amp=args.amp,
                     auto_scale_lr=args.auto_scale_lr, resume=args.resume)
    check_data_folders(cfg)  # a wrong folder stops here, not after the Runner's config dump
    refuse_overwriting_checkpoints(cfg)  # a fresh run never mixes its checkpoints with an earlier run's
    try:
        check_stage1_checkpoint(cfg, args.config)  # an ITER config without its stage-I file stops here
    except MissingDataError as err:
        raise SystemExit(cli_message(err, FLAGS) + _stage1_commands(cfg, args.config)) from None
    runner = ITERRunner.from_cfg(cfg)  # MMEngine's Runner, reading its own checkpoints on torch >= 2.6
    runner.train()


if __name__ == '__main__':
    try:
        main()
    except ITERError as err:  # a refusal: 'error: ...', exit status 1
        raise SystemExit(cli_message(err, FLAGS)) from None
