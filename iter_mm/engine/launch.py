"""Launch-time adaptation of a config to the machine: GPU (nccl) or CPU-only (gloo) distributed runs.

MMEngine 0.10's launchers assume CUDA: ``init_dist('pytorch')`` calls ``torch.cuda.set_device`` and the Runner
wraps models in DDP with ``device_ids=[LOCAL_RANK]``. On a machine without a GPU, :func:`configure_launch`
initialises the process group itself with gloo (the Runner then skips its own ``init_dist``) and makes DDP
wrap CPU modules, so ``tools/dist_train.sh CONFIG N`` runs N CPU processes with nothing else to pass. On GPUs
nothing changes (nccl, one device per process).
"""

import os
import subprocess
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, ConfigDict

from ..errors import InvalidOptionError, MissingDataError, OutputExistsError

#: Wrapper used when a config defines none: GAN-style models with one optimizer per network need separate
#: DDP wrappers (their ``train_step`` runs G and D updates itself), single-optimizer models one DDP.
SEPARATE_WRAPPER = 'MMSeparateDistributedDataParallel'


def _uses_multi_optimizers(cfg: Config) -> bool:
    wrapper = cfg.get('optim_wrapper') or {}
    return wrapper.get('constructor') == 'MultiOptimWrapperConstructor' or (
        'type' not in wrapper
        and 'optimizer' not in wrapper
        and any(isinstance(v, dict) and ('optimizer' in v or 'type' in v) for v in wrapper.values())
    )


def default_model_wrapper(cfg: Config) -> None:
    """Fill ``model_wrapper_cfg`` when the config has none (MMagic's GAN configs set the separate wrapper).

    Args:
        cfg (Config): a training config (changed in place).
    """
    if cfg.get('model_wrapper_cfg') is None and _uses_multi_optimizers(cfg):
        cfg.model_wrapper_cfg = ConfigDict(type=SEPARATE_WRAPPER)


def _slurm_env() -> None:
    """RANK / WORLD_SIZE / LOCAL_RANK / MASTER_* from Slurm's variables (as MMEngine's slurm launcher)."""
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ['SLURM_NODELIST']
        os.environ['MASTER_ADDR'] = subprocess.getoutput(f'scontrol show hostname {nodes} | head -n1')
    os.environ.setdefault('MASTER_PORT', '29500')


def init_cpu_process_group(launcher: str, timeout_s: Optional[int] = None) -> None:
    """Initialise a gloo process group from the launcher's environment (torchrun or Slurm).

    Nothing happens when a process group exists already.

    Args:
        launcher (str): 'pytorch' or 'slurm' (Slurm's variables give RANK, WORLD_SIZE and MASTER_*).
        timeout_s (int, optional): the group's timeout in seconds. Default: None (torch's).

    Raises:
        InvalidOptionError: the launcher's environment variables are not set.
    """
    if torch_dist.is_initialized():
        return
    if launcher == 'slurm':
        _slurm_env()
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if k not in os.environ]
    if missing:
        raise InvalidOptionError(
            f'launcher {launcher!r}: environment variables {missing} are not set; start the '
            'processes with torchrun (tools/dist_train.sh) or srun',
            arguments=('launcher',),
        )
    kwargs = dict(timeout=timedelta(seconds=timeout_s)) if timeout_s else {}
    torch_dist.init_process_group(
        backend='gloo',
        init_method='env://',
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **kwargs,
    )


def configure_launch(cfg: Config, launcher: str, testing: bool = False) -> str:
    """Adapt ``cfg`` in place to this machine and return the device kind.

    With ``launcher != 'none'`` and no usable GPU: gloo process group (started here), DDP wrappers without
    ``device_ids``. ``model_wrapper_cfg`` defaults to separate wrappers for multi-optimizer (GAN) models.
    ``testing=True``: one plain DDP wrapper whatever the config says: testing runs no backward pass (the wrapper
    only places the model), and the separate wrapper fails on the networks an inference model leaves out
    (``discriminator=None``).

    Args:
        cfg (Config): a training or test config (changed in place).
        launcher (str): 'none', 'pytorch', 'slurm' or 'mpi'.
        testing (bool): configure for testing. Default: False.

    Returns:
        str: 'cuda' or 'cpu'.

    Raises:
        InvalidOptionError: a launcher other than pytorch / slurm on a machine without GPUs, or its environment
            variables missing.
    """
    cfg.launcher = launcher
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if launcher == 'none':
        return device
    if testing:
        cfg.model_wrapper_cfg = ConfigDict(type='MMDistributedDataParallel', broadcast_buffers=False)
    default_model_wrapper(cfg)
    if device == 'cuda':
        return device
    if launcher not in ('pytorch', 'slurm'):
        raise InvalidOptionError(
            f'launcher {launcher!r} needs GPUs; on a CPU-only machine use pytorch (torchrun, '
            'tools/dist_train.sh) or slurm',
            arguments=('launcher',),
        )
    env_cfg = cfg.setdefault('env_cfg', ConfigDict())
    dist_cfg = env_cfg.setdefault('dist_cfg', ConfigDict())
    dist_cfg['backend'] = 'gloo'
    timeout = dist_cfg.get('timeout')
    init_cpu_process_group(launcher, timeout_s=timeout)
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        # The Runner's default is DDP with device_ids=[LOCAL_RANK], which DDP refuses for CPU modules.
        cfg.model_wrapper_cfg = ConfigDict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False),
        )
    elif _is_ddp_subclass(wrapper.get('type', 'MMDistributedDataParallel')):
        wrapper['device_ids'] = None  # (the separate wrapper passes no device_ids to its DDPs)
    return device


def _is_ddp_subclass(wrapper_type) -> bool:
    from mmengine.registry import MODEL_WRAPPERS
    from torch.nn.parallel import DistributedDataParallel

    cls = MODEL_WRAPPERS.get(wrapper_type) if isinstance(wrapper_type, str) else wrapper_type
    return isinstance(cls, type) and issubclass(cls, DistributedDataParallel)


def refuse_overwriting_checkpoints(cfg: Config) -> None:
    """Refuse a fresh run (no ``resume``) whose work dir holds checkpoints of an earlier run.

    MMEngine would write over ``iter_N.pth`` and ``last_checkpoint`` and keep the rest, mixing two runs. The user
    chooses: ``resume`` continues the earlier run, another ``work_dir`` starts a new one.

    Args:
        cfg (Config): a training config.

    Raises:
        OutputExistsError: the work dir holds ``*.pth`` files or ``last_checkpoint``.
    """
    import glob
    import os.path as osp

    if cfg.get('resume'):
        return
    work_dir = cfg.get('work_dir')
    found = sorted(glob.glob(osp.join(glob.escape(work_dir), '*.pth'))) if work_dir else []
    last = osp.join(work_dir, 'last_checkpoint') if work_dir else ''
    if not found and not osp.isfile(last):
        return
    names = ', '.join(osp.basename(p) for p in found[:4]) + (f' and {len(found) - 4} more' if len(found) > 4 else '')
    raise OutputExistsError(
        f'work dir {work_dir} already holds checkpoints of an earlier run '
        f'({names or "last_checkpoint"}); a fresh run would write over some of them and keep the '
        'others. Continue that run (resume), or train into another work_dir.',
        arguments=('resume', 'work_dir'),
    )


def check_data_folders(cfg: Config, loaders: tuple = ('train_dataloader', 'val_dataloader')) -> None:
    """Refuse, before the Runner starts (and dumps its config), a loader whose local ``data_root`` folder is missing.

    Datasets check their folders again, in more detail, when they are built (``CheckedImageDataset``).

    Args:
        cfg (Config): a training or test config.
        loaders (tuple[str]): the dataloader keys to check. Default: ('train_dataloader', 'val_dataloader').

    Raises:
        MissingDataError: a ``data_root`` folder does not exist.
    """
    import os.path as osp

    def datasets(ds):
        if not isinstance(ds, dict):
            return
        yield ds
        for part in ds.get('datasets') or []:  # ConcatDataset
            yield from datasets(part)
        yield from datasets(ds.get('dataset'))  # RepeatDataset and other wrappers

    for key in loaders:
        value = cfg.get(key)
        for loader in value if isinstance(value, (list, tuple)) else [value]:
            if not isinstance(loader, dict):
                continue
            for ds in datasets(loader.get('dataset')):
                root = ds.get('data_root')
                if isinstance(root, str) and '://' not in root and not osp.isdir(root):
                    raise MissingDataError(
                        f'{key}.dataset.data_root: folder not found: {root!r} '
                        f'({osp.abspath(root)}); set the config key {key}.dataset.data_root '
                        'to an existing folder',
                        arguments=('cfg_options',),
                    )


def prepare_training(
    cfg: Config,
    cfg_path: str,
    launcher: str = 'none',
    work_dir: Optional[str] = None,
    amp: bool = False,
    auto_scale_lr: bool = False,
    resume: Optional[str] = None,
) -> Config:
    """Apply the training options to ``cfg`` (in place) and return it.

    Args:
        cfg (Config): a training config.
        cfg_path (str): the config's path (``mmagic::`` allowed); names the default work dir.
        launcher (str): 'none', 'pytorch', 'slurm' or 'mpi' (see :func:`configure_launch`). Default: 'none'.
        work_dir (str, optional): replaces the config's ``work_dir``. Default: None (the config's, else
            ``./work_dirs/<config name>``).
        amp (bool): mixed precision (CUDA: fp16 with loss scaling; CPU: bf16 autocast). Default: False.
        auto_scale_lr (bool): scale the learning rate by the batch size. Default: False.
        resume (str, optional): None (fresh), 'auto' (latest checkpoint of the work dir; a warning when there is none
            yet) or a checkpoint path. Default: None.

    Returns:
        Config: ``cfg``.

    Raises:
        InvalidOptionError: ``auto_scale_lr`` without the config's ``auto_scale_lr.base_batch_size``.
        MissingDataError: ``resume`` names a file that does not exist.
    """
    import os.path as osp

    from ..utils.config import enable_amp

    device = configure_launch(cfg, launcher)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(cfg_path.split('::')[-1]))[0])
    if amp:
        enable_amp(cfg, device=device)  # CUDA: fp16 + loss scaling; CPU: bf16 autocast
    if auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise InvalidOptionError(
                'auto_scale_lr needs `auto_scale_lr = dict(base_batch_size=...)` in the config',
                arguments=('auto_scale_lr',),
            )
        cfg.auto_scale_lr.enable = True
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
        if not osp.isfile(osp.join(cfg.work_dir, 'last_checkpoint')):  # MMEngine would log "resumed from None"
            import warnings

            warnings.warn(
                f'resume: no checkpoint in {cfg.work_dir} yet: training starts from the beginning', stacklevel=2
            )
    elif resume is not None:
        if not osp.isfile(resume):
            raise MissingDataError(f'resume: checkpoint not found: {resume}', arguments=('resume',))
        cfg.resume, cfg.load_from = True, resume
    return cfg
