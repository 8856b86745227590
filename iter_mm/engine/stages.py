"""The hand-over between ITER's training stages: which stage-I config an ITER config builds on, where each
stage's final checkpoint lies, and whether a stage is finished, interrupted or not started.

An ITER config names its stage-I config with a top-level ``stage1_config`` (a path relative to the ITER config's
folder, or ``mmagic::``-style); ``model.vqgan_ckpt`` is the stage-I checkpoint it loads. A stage is finished when
its work dir holds ``iter_<max_iters>.pth`` and interrupted when it holds any other checkpoint
(``last_checkpoint`` written by MMEngine's CheckpointHook).
"""
import os.path as osp
from typing import Optional

from mmengine.config import Config

from ..errors import MissingDataError, OutputExistsError

#: Model types trained on a frozen stage-I VQGAN.
STAGE2_MODELS = ('ITERModel',)


def stage1_config_path(cfg: Config, cfg_path: str) -> Optional[str]:
    """Path of the stage-I config named by ``cfg.stage1_config`` (relative to ``cfg_path``'s folder), or None."""
    name = cfg.get('stage1_config')
    if not name:
        return None
    if '::' in name or osp.isabs(name):
        return name
    return osp.normpath(osp.join(osp.dirname(osp.abspath(cfg_path)), name))


def final_checkpoint(cfg: Config) -> str:
    """``<work_dir>/iter_<max_iters>.pth``: the checkpoint an iteration-based run writes last."""
    train_cfg = cfg.get('train_cfg') or {}
    if 'max_iters' not in train_cfg:
        raise ValueError('only iteration-based configs (train_cfg.max_iters) can be chained into a pipeline')
    return osp.join(cfg.work_dir, f'iter_{train_cfg["max_iters"]}.pth')


def stage_state(cfg: Config) -> str:
    """'done' (final checkpoint present), 'resume' (an earlier checkpoint present) or 'fresh'."""
    if osp.isfile(final_checkpoint(cfg)):
        return 'done'
    if osp.isfile(osp.join(cfg.work_dir, 'last_checkpoint')):
        return 'resume'
    return 'fresh'


def check_stage1_checkpoint(cfg: Config, cfg_path: str) -> None:
    """Refuse (:class:`~iter_mm.errors.MissingDataError`) before any work an ITER config whose stage-I checkpoint
    is missing, saying how to make it (the stage-I config and the work dir that writes that file).

    Nothing is checked when training resumes or loads a full checkpoint (``resume`` / ``load_from``): their
    VQGAN weights come from that file.
    """
    model = cfg.get('model') or {}
    if model.get('type') not in STAGE2_MODELS or cfg.get('resume') or cfg.get('load_from'):
        return
    ckpt = model.get('vqgan_ckpt')
    if ckpt is None or osp.isfile(ckpt):
        return
    stage1 = stage1_config_path(cfg, cfg_path)
    config = (osp.relpath(stage1) if '::' not in stage1 else stage1) if stage1 else 'the Swin-VQGAN config'
    raise MissingDataError(
        f'stage-I checkpoint not found: model.vqgan_ckpt={ckpt!r}. Train {config} with work_dir '
        f'{osp.dirname(ckpt) or "."!r} (it writes iter_<max_iters>.pth there), train both stages as a pipeline, or '
        'point model.vqgan_ckpt at an existing Swin-VQGAN checkpoint (e.g. the authors\' ITER_swinvqgan.pth, '
        'converted).', arguments=('model.vqgan_ckpt',))


def export_weights(checkpoint: str, target: str) -> str:
    """Write the model weights of a training checkpoint (ours, just written: trusted) as a weights-only file
    (``{'state_dict': ...}``) that inference tools load without unpickling; returns ``target``."""
    import torch
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)
    torch.save(dict(state_dict=state['state_dict'], meta=dict(source=osp.basename(checkpoint))), target)
    return target


#: file in a stage's work dir recording what the pipeline trained there (see :func:`check_stage_record`)
STAGE_RECORD = 'pipeline_stage.json'


def stage_record(cfg: Config) -> dict:
    """What makes a stage's result: one hash per part (model, training data, stage-I checkpoint).

    Iteration counts, validation, hooks and the optimizer wrapper's precision are left out, so a longer run or
    ``--amp`` may continue a stage. The stage-I checkpoint counts by path, size and modification time.
    """
    import hashlib
    import json
    import os

    def digest(obj) -> str:
        text = json.dumps(obj, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    model = {k: v for k, v in (cfg.get('model') or {}).items() if k not in ('test_cfg', 'val_cfg', 'vqgan_ckpt')}
    loader = cfg.get('train_dataloader') or {}
    record = dict(model=digest(model), training_data=digest(dict(dataset=loader.get('dataset'),
                                                                batch_size=loader.get('batch_size'))))
    ckpt = (cfg.get('model') or {}).get('vqgan_ckpt')
    if ckpt is not None:
        stat = os.stat(ckpt) if osp.isfile(ckpt) else None
        record['stage1_checkpoint'] = f'{osp.abspath(ckpt)}:{stat.st_size}:{stat.st_mtime_ns}' if stat else str(ckpt)
    return record


def check_stage_record(cfg: Config, name: str) -> None:
    """Refuse (:class:`~iter_mm.errors.OutputExistsError`) when ``cfg``'s work dir holds a stage the pipeline
    trained with another model, training data or
    stage-I checkpoint: skipping or resuming it would silently keep the old result. A record without a checkpoint
    (a first start that failed before saving one) is no result: nothing is checked."""
    import json
    path = osp.join(cfg.work_dir, STAGE_RECORD)
    if not osp.isfile(path) or stage_state(cfg) == 'fresh':
        return
    with open(path) as f:
        before = json.load(f)
    now = stage_record(cfg)
    differ = [k for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)]
    if differ:
        what = {'model': 'another model', 'training_data': 'other training data',
                'stage1_checkpoint': 'another stage-I checkpoint'}
        raise OutputExistsError(
            f'{name} in {cfg.work_dir} was trained with {" and ".join(what.get(k, k) for k in differ)} than this '
            'one; the pipeline would skip or resume it unchanged. Train into another work_dir '
            f'(or delete {cfg.work_dir} to train {name} anew).', arguments=('work_dir',))


def write_stage_record(cfg: Config) -> None:
    """Record :func:`stage_record` in the work dir (when a stage starts fresh)."""
    import json
    import os
    os.makedirs(cfg.work_dir, exist_ok=True)
    with open(osp.join(cfg.work_dir, STAGE_RECORD), 'w') as f:
        json.dump(stage_record(cfg), f, indent=2)
