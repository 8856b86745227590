"""Test-only Runner hook that records, per process, what a distributed run did (see test_distributed.py).

Imported by test configs through ``custom_imports`` (tests/ on PYTHONPATH). Each rank appends JSON lines to
``<out_dir>/rank<r>.jsonl``: the iterations it ran, the sample paths of each batch, every file written through
MMEngine's file backend (checkpoints), every visualiser scalar write, its log-file handlers and its
validation metrics; at the start and the end of training it saves its full model state (parameters and buffers)
to ``<out_dir>/rank<r>_train_start.pth`` and ``<out_dir>/rank<r>_state.pth``. ``kill_after_iter=N`` makes
rank 0 SIGKILL the whole job (the torchrun agent
and every worker, like a user's ``kill -9`` of all its processes) once iteration N has finished and its hooks
have run. Importing it also makes the process reuse yapf's formatting of its config text
(``iter_mm.engine.config_format``; no output changes).
"""

import json
import logging
import os
import os.path as osp
import signal

import torch
from mmengine.dist import get_rank
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import Hook
from mmengine.runner.checkpoint import get_state_dict
from mmengine.visualization.vis_backend import LocalVisBackend

from iter_mm.engine.config_format import reuse_config_formatting
from mmagic.registry import HOOKS

reuse_config_formatting()  # the same config text is formatted once per process, not per log/dump/checkpoint
_OUT = {'dir': None}


def _record(**entry) -> None:
    if _OUT['dir'] is None:
        return
    entry['rank'] = get_rank()
    with open(osp.join(_OUT['dir'], f'rank{get_rank()}.jsonl'), 'a') as f:
        f.write(json.dumps(entry) + '\n')


def _spy(cls, name, kind):
    original = getattr(cls, name)

    def spied(self, *args, **kwargs):
        target = args[1] if name == 'put' else kwargs.get('name', args[0] if args else None)
        _record(event=kind, target=str(target))
        return original(self, *args, **kwargs)

    setattr(cls, name, spied)


_spy(LocalBackend, 'put', 'file_write')  # save_checkpoint writes through this
_spy(LocalVisBackend, 'add_scalars', 'vis_scalars')


def _kill_job() -> None:
    """SIGKILL the launcher (this worker's parent) and all its workers (torchrun starts each in its own session)."""
    agent = os.getppid()
    workers = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    ppid = int(f.read().rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == agent and int(entry) != os.getpid():
                workers.append(int(entry))
    for pid in [agent, *workers, os.getpid()]:
        os.kill(pid, signal.SIGKILL)


@HOOKS.register_module()
class DistProbeHook(Hook):
    """Records per-rank facts of a run (see the module docstring)."""

    priority = 'LOWEST'  # after CheckpointHook, so a kill happens after that iteration's checkpoint

    def __init__(self, out_dir: str, kill_after_iter: int = None) -> None:
        os.makedirs(out_dir, exist_ok=True)
        _OUT['dir'] = out_dir
        self.out_dir = out_dir
        self.kill_after_iter = kill_after_iter

    def before_run(self, runner) -> None:
        files = [h.baseFilename for h in runner.logger.handlers if isinstance(h, logging.FileHandler)]
        _record(event='start', world_size=runner.world_size, log_files=files)

    def before_train(self, runner) -> None:
        _record(event='train_start', iter=runner.iter)
        self._save_state(runner, 'train_start')  # after --resume / load_from: what the run starts from

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        paths = [s.metainfo.get('gt_path') for s in data_batch['data_samples']]
        _record(event='iter', iter=runner.iter, paths=paths)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        done = runner.iter + 1
        losses = {k: float(v) for k, v in (outputs or {}).items()}
        _record(event='iter_done', iter=done, losses=losses)
        if self.kill_after_iter is not None and done == self.kill_after_iter and get_rank() == 0:
            _kill_job()

    def after_val_epoch(self, runner, metrics=None) -> None:
        _record(event='val', metrics={k: float(v) for k, v in (metrics or {}).items()})

    def after_train(self, runner) -> None:
        self._save_state(runner, 'state')
        _record(event='train_end', iter=runner.iter)

    def _save_state(self, runner, name: str) -> None:
        state = {k: v.detach().cpu().clone() for k, v in get_state_dict(runner.model).items()}  # unwrapped
        torch.save(state, osp.join(self.out_dir, f'rank{get_rank()}_{name}.pth'))
