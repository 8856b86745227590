"""Test (evaluate) any MMagic model (ITER's or MMagic's own) with MMEngine's Runner.

    python tools/test.py configs/iter/iter_x4_realsr.py work_dirs/iter_x4/iter_400000.pth
    python tools/test.py CONFIG CKPT --cfg-options test_dataloader.dataset.data_root=data/RealSRSet
    bash tools/dist_test.sh CONFIG CKPT 4

Prints the metrics of the config's test evaluator (PSNR/SSIM/NIQE/...) and writes them to the work dir.
For ITER's models the training-only parts of the model config (losses, discriminator, stage-I file) are
dropped, so testing needs no LPIPS/VGG or stage-I weights.
"""

import argparse
import os
import os.path as osp

from mmengine.config import DictAction

#: this tool's option for each library argument a refusal may name
FLAGS = dict(cfg_options='--cfg-options', launcher='--launcher', work_dir='--work-dir')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test an MMagic / iter-mm model')
    parser.add_argument('config', help="config file, or mmagic::<path> for a config of MMagic's zoo")
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='directory for logs and metric files')
    parser.add_argument('--out', help='dump the metrics to this JSON file')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config entries, e.g. model.test_cfg.alpha=0.5'
    )
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    # the heavy stack (MMEngine, MMagic, iter_mm) only after the arguments: --help and usage errors come at once
    from mmengine.model import is_model_wrapper

    from iter_mm.apis.model_loader import checked_weights
    from iter_mm.engine.config_format import reuse_config_formatting
    from iter_mm.engine.hooks import MetricsRecorderHook
    from iter_mm.engine.launch import check_data_folders, configure_launch
    from iter_mm.engine.runner import ITERRunner
    from iter_mm.utils.config import inference_model_cfg, load_config, training_only_keys

    reuse_config_formatting()  # this process formats its config text once (no output changes)
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint not found: {args.checkpoint}')
    cfg = load_config(args.config, args.cfg_options)
    if cfg.get('test_dataloader') is None or cfg.get('test_evaluator') is None:
        raise SystemExit(f'{args.config} defines no test_dataloader / test_evaluator to test on')
    check_data_folders(cfg, ('test_dataloader',))
    configure_launch(cfg, args.launcher, testing=True)  # gloo + CPU processes when there is no GPU
    ignored = training_only_keys(cfg.model)  # the checkpoint may hold them (discriminator), the test model not
    cfg.model = inference_model_cfg(cfg.model)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config.split('::')[-1]))[0])
    cfg.load_from = None  # loaded strictly below, not by MMEngine's lenient loader (a wrong file only warns there)
    cfg.resume = False
    # Training-only parts are not needed to test.
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper', 'param_scheduler'):
        cfg[key] = None

    # strictly, as every front end loads (a wrong file only warns in MMEngine's load_from)
    weights = checked_weights(cfg.model, args.checkpoint, ignored)
    runner = ITERRunner.from_cfg(cfg)
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    model.load_state_dict(weights, strict=True)
    runner.logger.info(f'Loaded {args.checkpoint} (strict)')
    kept = MetricsRecorderHook()
    runner.register_hook(kept)
    metrics = runner.test() or kept.metrics.get('test', {})  # MMagic's MultiTestLoop returns nothing
    if args.out and runner.rank == 0:  # every rank holds the collected metrics; one writes them
        from mmengine.fileio import dump

        dump(metrics, args.out)
        print(f'metrics written to {args.out}')


if __name__ == '__main__':
    try:
        main()
    except Exception as err:  # a refusal (ITERError): 'error: ...', exit status 1
        from iter_mm.errors import ITERError, cli_message

        if not isinstance(err, ITERError):
            raise
        raise SystemExit(cli_message(err, FLAGS)) from None
