"""The shipped configs' training steps use every trainable parameter (DDP's find_unused_parameters=False holds),
the launch adapts configs to CPU-only machines, and ``--amp`` trains both stages on CPU under bf16 autocast."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper, OptimWrapperDict

import iter_mm  # noqa: F401  (registers everything)
from iter_mm.engine.launch import configure_launch, default_model_wrapper
from iter_mm.errors import InvalidOptionError
from iter_mm.utils.config import load_config
from mmagic.registry import MODELS
from mmagic.structures import DataSample

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / 'configs' / 'iter'


def _params_without_grad(model, step) -> list:
    """Names of trainable parameters that receive no gradient in ``step()`` (what DDP calls unused)."""
    seen = set()
    handles = [
        p.register_post_accumulate_grad_hook(lambda p: seen.add(id(p))) for p in model.parameters() if p.requires_grad
    ]
    try:
        step()
    finally:
        for h in handles:
            h.remove()
    return [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in seen]


def _no_update_optim(params) -> OptimWrapper:
    return OptimWrapper(torch.optim.SGD(params, lr=0.0))


def _image_batch(b, size, scale=1):
    torch.manual_seed(0)
    gt = torch.rand(b, 3, size, size) * 255
    lq = torch.nn.functional.interpolate(gt, scale_factor=1 / scale, mode='area') if scale > 1 else gt
    return dict(inputs=list(lq), data_samples=[DataSample(gt_img=g) for g in gt])


@pytest.mark.parametrize('config', ['swinvqgan_df2k-ost.py', 'swinvqgan_tiny.py'])
def test_stage1_configs_use_every_parameter(config):
    """Generator step: every G parameter gets a gradient; discriminator step: every D parameter.

    The paper config's LPIPS (which needs VGG weights) is replaced by an L1 image loss on the same output:
    it only adds a term on the reconstruction, which the L1/SSIM/GAN terms already make depend on every G
    parameter, so the set of parameters with gradients is the same.
    """
    cfg = load_config(str(CONFIGS / config))
    assert cfg.model_wrapper_cfg.type == 'MMSeparateDistributedDataParallel'  # G and D wrapped separately
    if cfg.model.get('perceptual_loss'):
        cfg.model.perceptual_loss = dict(type='L1Loss', loss_weight=1.0)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    optim = OptimWrapperDict(
        generator=_no_update_optim(model.generator.parameters()),
        discriminator=_no_update_optim(model.discriminator.parameters()),
    )
    data = _image_batch(1, 64)
    missing = _params_without_grad(model, lambda: model.train_step(data, optim))
    assert missing == []


@pytest.mark.parametrize('config,scale', [('iter_x4_realsr.py', 4), ('iter_x2_realsr.py', 2), ('iter_x4_tiny.py', 4)])
def test_stage2_configs_use_every_trainable_parameter(config, scale):
    """One ITERModel step: E_l, phi_e and phi_r all get gradients (the frozen VQGAN none): one DDP wrapper
    with find_unused_parameters=False works. LPIPS is replaced by L1 as above (same decoded images)."""
    cfg = load_config(str(CONFIGS / config))
    assert not cfg.get('find_unused_parameters', False)
    assert cfg.get('model_wrapper_cfg') is None or not cfg.model_wrapper_cfg.get('find_unused_parameters')
    if cfg.model.get('perceptual_loss'):
        cfg.model.perceptual_loss = dict(type='L1Loss', loss_weight=1.0)
    cfg.model.stage1_checkpoint = None
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.load_state_dict(model.state_dict())  # hands over a (random) stage I as a full checkpoint would
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and not any(p.requires_grad for p in model.generator.vqgan.parameters())
    data = _image_batch(1, 64, scale)
    missing = _params_without_grad(model, lambda: model.train_step(data, _no_update_optim(trainable)))
    assert missing == []


def test_configure_launch_on_cpu_only_machine(monkeypatch):
    """Without CUDA a distributed launch gets gloo, a CPU DDP wrapper (no device_ids) and, for GAN models,
    the separate wrappers; without a launcher nothing changes."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    started = []
    monkeypatch.setattr('iter_mm.engine.launch.init_cpu_process_group', lambda *a, **k: started.append(a))
    cfg = load_config(str(CONFIGS / 'iter_x4_tiny.py'))
    assert configure_launch(cfg, 'none') == 'cpu' and cfg.get('model_wrapper_cfg') is None
    assert cfg.env_cfg.dist_cfg.backend == 'nccl' and not started
    assert configure_launch(cfg, 'pytorch') == 'cpu'
    assert cfg.env_cfg.dist_cfg.backend == 'gloo' and started == [('pytorch',)]
    assert cfg.model_wrapper_cfg.type == 'MMDistributedDataParallel'
    assert cfg.model_wrapper_cfg.device_ids is None and cfg.model_wrapper_cfg.find_unused_parameters is False
    gan = Config(
        dict(
            optim_wrapper=dict(
                constructor='MultiOptimWrapperConstructor',
                generator=dict(type='OptimWrapper', optimizer=dict(type='Adam')),
                discriminator=dict(type='OptimWrapper'),
            )
        )
    )
    default_model_wrapper(gan)
    assert gan.model_wrapper_cfg.type == 'MMSeparateDistributedDataParallel'
    stage1 = load_config(str(CONFIGS / 'swinvqgan_tiny.py'))  # testing: one plain DDP (no discriminator then)
    configure_launch(stage1, 'pytorch', testing=True)
    assert stage1.model_wrapper_cfg.type == 'MMDistributedDataParallel' and stage1.model_wrapper_cfg.device_ids is None
    with pytest.raises(InvalidOptionError, match='needs GPUs'):
        configure_launch(load_config(str(CONFIGS / 'iter_x4_tiny.py')), 'mpi')


def test_cpu_process_group_needs_launcher_environment(monkeypatch):
    from iter_mm.engine.launch import init_cpu_process_group

    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(InvalidOptionError, match='tools/dist_train.sh'):
        init_cpu_process_group('pytorch')


def _scalars(work: Path) -> list:
    files = list(work.glob('*/vis_data/scalars.json'))
    assert len(files) == 1, files
    return [json.loads(line) for line in files[0].read_text().splitlines()]


def test_amp_trains_both_stages_on_cpu(tmp_path, monkeypatch):
    """``tools/train.py CONFIG --amp`` on a CPU-only machine: bf16 autocast (AutocastOptimWrapper), 2 steps
    of stage I then of stages II+III on its checkpoint, finite losses, weights updated (run in this process)."""
    import runpy

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.chdir(ROOT)
    common = [
        '--amp',
        '--cfg-options',
        'train_cfg.max_iters=2',
        'train_cfg.val_interval=100',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=1',
        'train_dataloader.batch_size=2',  # data: the configs' default, scikit-image's photos
        'val_cfg=None',
        'val_dataloader=None',
        'val_evaluator=None',
    ]  # no validation: not what is tested
    stage1, stage2 = tmp_path / 's1', tmp_path / 's2'
    for cfg, work, extra in (
        ('swinvqgan_tiny.py', stage1, []),
        ('iter_x4_tiny.py', stage2, [f'model.stage1_checkpoint={stage1 / "iter_2.pth"}']),
    ):
        monkeypatch.setattr(
            sys, 'argv', ['tools/train.py', str(CONFIGS / cfg), '--work-dir', str(work), *common, *extra]
        )
        runpy.run_path(str(ROOT / 'tools' / 'train.py'), run_name='__main__')
        dumped = Config.fromfile(str(next(work.glob('*/vis_data/config.py'))))
        wrappers = (
            [dumped.optim_wrapper]
            if 'optimizer' in dumped.optim_wrapper
            else [dumped.optim_wrapper.generator, dumped.optim_wrapper.discriminator]
        )
        assert all(w.type == 'AutocastOptimWrapper' and w.dtype == 'bfloat16' for w in wrappers)
        rows = [{k: v for k, v in r.items() if k.startswith('loss')} for r in _scalars(work)]
        rows = [r for r in rows if r]
        assert len(rows) == 2 and all(len(r) >= 3 for r in rows), rows
        assert all(np.isfinite(v) for r in rows for v in r.values()), rows
        first, second = (
            torch.load(work / f'iter_{i}.pth', map_location='cpu', weights_only=False)['state_dict'] for i in (1, 2)
        )
        assert any(v.is_floating_point() and not torch.equal(v, second[k]) for k, v in first.items())
