"""The hand-over between ITER's training stages: which stage-I config an ITER config builds on, where each
stage's final checkpoint lies, and whether a stage is finished, interrupted or not started.

An ITER config names its stage-I config with a top-level ``stage1_config`` (a path relative to the ITER config's
folder, or ``mmagic::``-style). Its stage-I checkpoint is ``model.stage1_checkpoint`` when given (a file of ours, or
the authors' ``ITER_swinvqgan.pth`` as it is), else the final checkpoint of that stage-I config's run
(:func:`resolve_stage1_checkpoint`, the one place that derives and checks it). A stage is finished when its work
dir holds ``iter_<max_iters>.pth`` and interrupted when it holds any other checkpoint (``last_checkpoint`` written
by MMEngine's CheckpointHook).
"""

import os.path as osp
from typing import Optional

from mmengine.config import Config

from ..errors import InvalidOptionError, MissingDataError, OutputExistsError

#: Model types trained on a frozen stage-I VQGAN.
STAGE2_MODELS = ('ITERModel',)


def stage1_config_path(cfg: Config, cfg_path: str) -> Optional[str]:
    """Path of the stage-I config named by ``cfg.stage1_config``, or None.

    Args:
        cfg (Config): an ITER config.
        cfg_path (str): its file; a relative ``stage1_config`` is relative to this file's folder.

    Returns:
        str, optional: the stage-I config's path (``::``-scoped and absolute names as they are), or None.
    """
    name = cfg.get('stage1_config')
    if not name:
        return None
    if '::' in name or osp.isabs(name):
        return name
    return osp.normpath(osp.join(osp.dirname(osp.abspath(cfg_path)), name))


def final_checkpoint(cfg: Config) -> str:
    """``<work_dir>/iter_<max_iters>.pth``: the checkpoint an iteration-based run writes last.

    Args:
        cfg (Config): a training config with ``work_dir``.

    Returns:
        str: the path.

    Raises:
        InvalidOptionError: the config is not iteration-based (no ``train_cfg.max_iters``).
    """
    train_cfg = cfg.get('train_cfg') or {}
    if 'max_iters' not in train_cfg:
        raise InvalidOptionError('only iteration-based configs (train_cfg.max_iters) can be chained into a pipeline')
    return osp.join(cfg.work_dir, f'iter_{train_cfg["max_iters"]}.pth')


def stage_state(cfg: Config) -> str:
    """Whether the stage of ``cfg`` is finished, interrupted or not started.

    Args:
        cfg (Config): a training config with ``work_dir``.

    Returns:
        str: 'done' (final checkpoint present), 'resume' (an earlier checkpoint present) or 'fresh'.
    """
    if osp.isfile(final_checkpoint(cfg)):
        return 'done'
    if osp.isfile(osp.join(cfg.work_dir, 'last_checkpoint')):
        return 'resume'
    return 'fresh'


def default_work_dir(cfg: Config, cfg_path: str) -> str:
    """The config's ``work_dir``, else ``work_dirs/<config name>`` (as the training tools name it).

    Args:
        cfg (Config): a training config.
        cfg_path (str): its file.

    Returns:
        str: the work dir.
    """
    return cfg.get('work_dir') or osp.join('work_dirs', osp.splitext(osp.basename(cfg_path.split('::')[-1]))[0])


def derived_stage1_checkpoint(cfg: Config, cfg_path: str) -> Optional[str]:
    """The final checkpoint of the stage-I config named by ``cfg.stage1_config`` (in its default work dir).

    Args:
        cfg (Config): an ITER config.
        cfg_path (str): its file.

    Returns:
        str, optional: the checkpoint path, or None when the config names no stage-I config.

    Raises:
        MissingDataError: the stage-I config does not exist.
    """
    from ..utils.config import load_config

    stage1 = stage1_config_path(cfg, cfg_path)
    if stage1 is None:
        return None
    if '::' not in stage1 and not osp.isfile(stage1):
        raise MissingDataError(
            f'stage1_config {cfg.stage1_config!r} of {cfg_path} not found ({stage1}; a path '
            "relative to that config's folder): name the stage-I config there, or give the "
            'stage-I checkpoint as model.stage1_checkpoint'
        )
    cfg1 = load_config(stage1)
    cfg1.work_dir = default_work_dir(cfg1, stage1)
    return osp.normpath(final_checkpoint(cfg1))


def resolve_stage1_checkpoint(cfg: Config, cfg_path: str) -> Optional[str]:
    """Set and check ``cfg.model.stage1_checkpoint`` of an ITER config (in place); returns it.

    Given (``model.stage1_checkpoint``, or its deprecated name ``model.vqgan_ckpt`` with a DeprecationWarning), it
    must exist. Otherwise it is derived from ``stage1_config`` (:func:`derived_stage1_checkpoint`) and must exist
    unless training resumes or loads a full checkpoint (``resume`` / ``load_from``), whose VQGAN weights are used
    (it is then left None). Other models are left alone.

    Args:
        cfg (Config): a training config (changed in place).
        cfg_path (str): its file.

    Returns:
        str, optional: the stage-I checkpoint, or None (other models, resume / load_from without one).

    Raises:
        MissingDataError: the stage-I checkpoint does not exist (the message says how to make or give one).
    """
    from ..utils.checkpoint import stage1_aliases

    model = cfg.get('model') or {}
    if model.get('type') not in STAGE2_MODELS:
        return None
    given = stage1_aliases(model.get('stage1_checkpoint'), vqgan_ckpt=model.pop('vqgan_ckpt', None))
    ckpt = given
    if ckpt is None and not (cfg.get('resume') or cfg.get('load_from')):
        ckpt = derived_stage1_checkpoint(cfg, cfg_path)
    model['stage1_checkpoint'] = ckpt
    if ckpt is None or osp.isfile(ckpt):
        return ckpt
    stage1 = stage1_config_path(cfg, cfg_path)
    origin = 'given' if given is not None else f'the final checkpoint of stage1_config {stage1}'
    make = (
        f'train stage I with {stage1} into {osp.dirname(ckpt) or "."}, '
        if stage1 and given is None
        else f'train stage I with {stage1} and give its final checkpoint, '
        if stage1
        else ''
    )
    raise MissingDataError(
        f'stage-I checkpoint not found: model.stage1_checkpoint={ckpt!r} ({origin}). To make it, {make}or train '
        'all stages with the pipeline (tools/train_pipeline.py); or give an existing stage-I checkpoint as '
        "model.stage1_checkpoint (ours, or the authors' ITER_swinvqgan.pth as it is)."
    )


def export_weights(checkpoint: str, target: str) -> str:
    """Write the model weights of a training checkpoint as a weights-only file.

    The file (``{'state_dict': ...}``) loads in the inference tools without unpickling; the source is ours, just
    written, so it is trusted.

    Args:
        checkpoint (str): a full MMEngine training checkpoint.
        target (str): the weights-only file to write.

    Returns:
        str: ``target``.
    """
    import torch

    state = torch.load(checkpoint, map_location='cpu', weights_only=False)
    torch.save(dict(state_dict=state['state_dict'], meta=dict(source=osp.basename(checkpoint))), target)
    return target


#: file in a stage's work dir recording what the pipeline trained there (see :func:`check_stage_record`)
STAGE_RECORD = 'pipeline_stage.json'


def stage_record(cfg: Config) -> dict:
    """What makes a stage's result: one hash per part (model, training data, stage-I checkpoint, initialisation).

    Iteration counts, validation, hooks and the optimizer wrapper's precision are left out, so a longer run or
    mixed precision may continue a stage. The stage-I checkpoint (trained by the pipeline or given) and the
    ``init_from`` file count by path, size and modification time.

    Args:
        cfg (Config): a training config.

    Returns:
        dict: ``model`` and ``training_data`` hashes, and ``stage1_checkpoint`` / ``init_from`` file stamps when set.
    """
    import hashlib
    import json
    import os

    def digest(obj) -> str:
        text = json.dumps(obj, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def file(path: str) -> str:
        stat = os.stat(path) if osp.isfile(path) else None
        return f'{osp.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}' if stat else str(path)

    files = ('stage1_checkpoint', 'vqgan_ckpt', 'init_from')
    model_cfg = cfg.get('model') or {}
    model = {k: v for k, v in model_cfg.items() if k not in ('test_cfg', 'val_cfg') + files}
    loader = cfg.get('train_dataloader') or {}
    record = dict(
        model=digest(model),
        training_data=digest(dict(dataset=loader.get('dataset'), batch_size=loader.get('batch_size'))),
    )
    ckpt = model_cfg.get('stage1_checkpoint') or model_cfg.get('vqgan_ckpt')
    if ckpt is not None:
        record['stage1_checkpoint'] = file(ckpt)
    if model_cfg.get('init_from') is not None:
        record['init_from'] = file(model_cfg['init_from'])
    return record


def check_stage_record(cfg: Config, name: str) -> None:
    """Refuse a work dir that holds a stage the pipeline trained with another model, data, stage I or initialisation.

    Skipping or resuming such a stage would silently keep the old result. A record without a checkpoint (a first start
    that failed before saving one) is no result: nothing is checked.

    Args:
        cfg (Config): the stage's training config.
        name (str): the stage's name in messages.

    Raises:
        OutputExistsError: the recorded parts differ from this run's.
    """
    import json

    path = osp.join(cfg.work_dir, STAGE_RECORD)
    if not osp.isfile(path) or stage_state(cfg) == 'fresh':
        return
    with open(path) as f:
        before = json.load(f)
    now = stage_record(cfg)
    differ = [k for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)]
    if differ:
        what = {
            'model': 'another model',
            'training_data': 'other training data',
            'stage1_checkpoint': 'another stage-I checkpoint',
            'init_from': 'another initialisation',
        }
        raise OutputExistsError(
            f'{name} in {cfg.work_dir} was trained with {" and ".join(what.get(k, k) for k in differ)} than this '
            "run's; the pipeline would skip or resume it unchanged. Train into another work dir "
            f'(or delete {cfg.work_dir} to train {name} anew).'
        )


def write_stage_record(cfg: Config) -> None:
    """Record :func:`stage_record` in the work dir (when a stage starts fresh).

    Args:
        cfg (Config): the stage's training config.
    """
    import json
    import os

    os.makedirs(cfg.work_dir, exist_ok=True)
    with open(osp.join(cfg.work_dir, STAGE_RECORD), 'w') as f:
        json.dump(stage_record(cfg), f, indent=2)


def set_initialisation(cfg: Config, stage1_checkpoint: Optional[str] = None, init_from: Optional[str] = None) -> None:
    """Put a stage-I checkpoint and an ``init_from`` file given by a front end into ``cfg.model`` (in place).

    Args:
        cfg (Config): a training config.
        stage1_checkpoint (str, optional): the stage-I checkpoint. Default: None.
        init_from (str, optional): ITER checkpoint to initialise training from. Default: None.

    Raises:
        InvalidOptionError: given for a model that is not trained on a frozen stage I (not an ``ITERModel``).
        MissingDataError: the ``init_from`` file does not exist (the stage-I one: :func:`resolve_stage1_checkpoint`).
    """
    if stage1_checkpoint is None and init_from is None:
        return
    model = cfg.get('model') or {}
    if model.get('type') not in STAGE2_MODELS:
        raise InvalidOptionError(
            f'stage1_checkpoint and init_from apply to ITER configs ({", ".join(STAGE2_MODELS)}),'
            f' not to a {model.get("type")} model'
        )
    if stage1_checkpoint is not None:
        model.pop('vqgan_ckpt', None)  # the deprecated name would contradict the value given
        model['stage1_checkpoint'] = stage1_checkpoint
    if init_from is not None:
        if not osp.isfile(init_from):
            raise MissingDataError(f'init_from checkpoint not found: {init_from}')
        model['init_from'] = init_from
