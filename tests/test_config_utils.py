"""Config helpers shared by the tools: zoo configs, AMP switch, training-only parts."""

import os.path as osp

import pytest
from mmengine.config import Config

from iter_mm.utils.config import enable_amp, inference_model_cfg, load_config, training_only_keys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
REALESRGAN = 'mmagic::real_esrgan/realesrgan_c64b23g32_4xb12-lr1e-4-400k_df2k-ost.py'


def test_mmagic_gan_config_builds_for_inference_offline():
    """Real-ESRGAN's perceptual loss would download VGG19: for inference it and the discriminator are dropped."""
    from mmengine.registry import init_default_scope

    from mmagic.registry import MODELS

    init_default_scope('mmagic')
    cfg = load_config(REALESRGAN)
    assert set(training_only_keys(cfg.model)) == {'discriminator', 'perceptual_loss', 'gan_loss'}
    model_cfg = inference_model_cfg(cfg.model)
    assert model_cfg.pixel_loss is not None and model_cfg.perceptual_loss is None
    assert cfg.model.perceptual_loss is not None  # the original is untouched
    model = MODELS.build(model_cfg)
    assert getattr(model, 'discriminator', None) is None


def test_iter_models_drop_losses_and_stage1_file():
    cfg = dict(
        type='ITERModel',
        generator=dict(type='ITERNet'),
        pixel_loss=dict(type='L1Loss'),
        perceptual_loss=dict(type='LPIPSLoss'),
        stage1_checkpoint='stage1.pth',
        init_from='ITER_x2.pth',
        vqgan_ckpt='stage1.pth',
    )
    out = inference_model_cfg(cfg)
    assert out.pixel_loss is None and out.perceptual_loss is None
    assert out.stage1_checkpoint is None and out.init_from is None and out.vqgan_ckpt is None
    assert out.generator == cfg['generator']


@pytest.mark.parametrize('device,expected', [('cuda', 'AmpOptimWrapper'), ('cpu', 'AutocastOptimWrapper')])
def test_enable_amp_single_and_per_module_wrappers(device, expected):
    """--amp: fp16 with loss scaling on CUDA, bf16 autocast without a GPU; single and per-module wrappers."""
    single = Config(dict(optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4))))
    assert enable_amp(single, device=device) == expected
    assert single.optim_wrapper.type == expected
    if device == 'cuda':
        assert single.optim_wrapper.loss_scale == 'dynamic'
    else:
        assert single.optim_wrapper.dtype == 'bfloat16'
    multi = Config(
        dict(
            optim_wrapper=dict(
                constructor='MultiOptimWrapperConstructor',
                generator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4)),
                discriminator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=4e-4)),
            )
        )
    )
    enable_amp(multi, device=device)
    assert multi.optim_wrapper.generator.type == multi.optim_wrapper.discriminator.type == expected
    with pytest.raises(ValueError, match='OptimWrapper only'):
        enable_amp(Config(dict(optim_wrapper=dict(type='Custom', optimizer=dict(type='Adam')))), device=device)


def test_autocast_optim_wrapper_runs_bf16_on_cpu():
    """The CPU --amp wrapper computes the forward in bf16, keeps fp32 parameters/grads, and steps."""
    import torch

    import iter_mm  # noqa: F401
    from mmagic.registry import OPTIM_WRAPPERS

    net = torch.nn.Linear(4, 3)
    wrapper = OPTIM_WRAPPERS.build(
        dict(type='AutocastOptimWrapper', device_type='cpu', optimizer=torch.optim.SGD(net.parameters(), lr=0.1))
    )
    before = net.weight.detach().clone()
    with wrapper.optim_context(net):
        out = net(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().square().mean())
    assert net.weight.dtype == torch.float32 and not torch.equal(net.weight, before)
    with pytest.raises(ValueError, match='dtype'):
        OPTIM_WRAPPERS.build(
            dict(type='AutocastOptimWrapper', dtype='int8', optimizer=torch.optim.SGD(net.parameters(), lr=0.1))
        )


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.py'):
        load_config(str(tmp_path / 'nope.py'))


def test_x2_config_tests_on_x2_real_world_folders():
    """The x2 model reads RealSR's and DRealSR's x2 LR folders; sets without scales are shared with x4."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / 'configs' / 'iter'
    x2, x4 = (load_config(str(root / f'iter_x{s}_realsr.py')) for s in (2, 4))
    realsr = x2.test_dataloader[0].dataset
    assert [d.data_prefix.img for d in realsr.datasets] == ['RealSR/Canon/Test/2', 'RealSR/Nikon/Test/2']
    assert realsr.datasets[0].filename_tmpl.img == '{}_LR2'
    assert x2.test_dataloader[1].dataset.data_prefix.img == 'DRealSR/Test_x2/test_LR'
    assert x4.test_dataloader[1].dataset.data_prefix.img == 'DRealSR/Test_x4/test_LR'
    assert x2.test_dataloader[3].dataset == x4.test_dataloader[3].dataset  # RealSRSet


@pytest.mark.parametrize('key', ['data_root', 'val_data_root'])
def test_top_level_folder_variable_override_is_refused(key):
    """``--cfg-options data_root=DIR`` used to be merged and ignored (the loaders had read the variable at parse
    time), so training ran on the config's own folders; it now stops with the keys that do work."""
    with pytest.raises(ValueError, match=rf'{key}: a top-level variable.*train_dataloader.dataset.data_root=DIR'):
        load_config(
            osp.join(ROOT, 'configs', 'iter', 'swinvqgan_tiny.py')
            if key == 'data_root'
            else osp.join(ROOT, 'configs', 'iter', 'iter_x4_realsr.py'),
            {key: '/my/photos'},
        )
    cfg = load_config(
        osp.join(ROOT, 'configs', 'iter', 'swinvqgan_tiny.py'), {'train_dataloader.dataset.data_root': '/my/photos'}
    )
    assert cfg.train_dataloader.dataset.data_root == '/my/photos'


def test_override_next_to_a_similar_key_warns():
    """``model.stage1_checkpont=...`` (a typo) is added by MMEngine and the real key keeps its value: a warning
    names it."""
    tiny = osp.join(ROOT, 'configs', 'iter', 'iter_x4_tiny.py')
    with pytest.warns(UserWarning, match=r'model\.stage1_checkpont: .*did you mean model\.stage1_checkpoint\?'):
        cfg = load_config(tiny, {'model.stage1_checkpont': 'mine.pth'})
    assert cfg.model.stage1_checkpont == 'mine.pth' and cfg.model.stage1_checkpoint != 'mine.pth'
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a genuinely new option or a correct key: no warning
        load_config(
            tiny, {'model.stage1_checkpoint': 'mine.pth', 'train_cfg.max_iters': 3, 'model.brand_new_option': 1}
        )


@pytest.mark.parametrize(
    'path',
    [
        'configs/iter/swinvqgan_df2k-ost.py',
        'configs/iter/swinvqgan_tiny.py',
        'configs/iter/swinvqgan_demo.py',
        'configs/iter/iter_x4_realsr.py',
        'configs/iter/iter_x2_realsr.py',
        'configs/iter/iter_x4_tiny.py',
        'configs/iter/iter_x4_demo.py',
        'configs/compare/realesrnet_x4_demo.py',
    ],
)
def test_training_configs_take_auto_scale_lr(path):
    """``tools/train.py --auto-scale-lr`` works with every shipped training config (it stopped on all but two)."""
    from iter_mm.engine.launch import prepare_training

    cfg = load_config(osp.join(ROOT, path))
    prepare_training(cfg, path, auto_scale_lr=True)
    assert cfg.auto_scale_lr.enable and cfg.auto_scale_lr.base_batch_size >= cfg.train_dataloader.batch_size


def test_missing_data_folder_stops_before_the_runner(tmp_path):
    from iter_mm.engine.launch import check_data_folders

    cfg = load_config(
        osp.join(ROOT, 'configs', 'iter', 'swinvqgan_tiny.py'),
        {'val_dataloader.dataset.data_root': str(tmp_path / 'nope')},
    )
    from iter_mm.errors import MissingDataError

    with pytest.raises(
        MissingDataError,
        match=r'val_dataloader.dataset.data_root: folder not found: .*nope.*set the '
        r'config key val_dataloader.dataset.data_root',
    ) as info:
        check_data_folders(cfg)
    assert info.value.arguments == ('cfg_options',) and '--' not in str(info.value)  # a tool adds its flag
    check_data_folders(load_config(osp.join(ROOT, 'configs', 'iter', 'swinvqgan_tiny.py')))  # None: scikit-image
    realsr = load_config(osp.join(ROOT, 'configs', 'iter', 'iter_x4_realsr.py'))
    with pytest.raises(MissingDataError, match=r'test_dataloader.dataset.data_root: folder not found'):
        check_data_folders(realsr, ('test_dataloader',))  # the real-world sets, inside a ConcatDataset too
