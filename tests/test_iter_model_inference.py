"""ITERModel inference: restore(), val/test data samples, mixed precision and the paper configs."""

import pytest
import torch
from iter_model_helpers import (  # noqa: F401  (fixtures: one_thread, ready, stage1_ckpt)
    N_CODES,
    ROOT,
    TINY_NET,
    TINY_VQGAN,
    build,
    down4,
    one_thread,
    ready,
    samples,
    stage1_ckpt,
    textures,
)
from mmengine.config import Config
from mmengine.optim import OptimWrapper

from iter_mm.models.editors import iter_model as im
from mmagic.registry import MODELS
from mmagic.structures import DataSample


# ----------------------------------------------------------------------------------------- inference
@pytest.mark.parametrize('size', [(7, 5), (9, 13), (1, 1)])
def test_restore_shapes_for_odd_sizes(ready, size):
    lq = torch.rand(2, 3, *size)
    out = ready.restore(lq)
    assert out.shape == (2, 3, size[0] * 4, size[1] * 4)
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    assert torch.equal(out, ready.restore(lq))  # seeded (test_cfg seed 0)


def test_restore_options(ready):
    lq = torch.rand(1, 3, 8, 8)
    with pytest.raises(TypeError, match="unknown sampling option.*'alpah'"):
        ready.restore(lq, alpah=0.5)
    with pytest.raises(TypeError, match='test_cfg: unknown sampling option'):
        build(None, test_cfg=dict(temperature=1.0))
    assert ready.test_cfg['alpha'] == 0.7 and ready.test_cfg['schedule'] == 'linear'
    assert ready.val_cfg['alpha'] == 0.5
    # alpha 1: no S_l token is kept, all steps run and sample: the seed matters
    assert not torch.equal(ready.restore(lq, seed=1, alpha=1.0), ready.restore(lq, seed=2, alpha=1.0))


def test_val_and_test_fill_data_samples(ready, monkeypatch):
    seen = []
    orig = im.restore_image
    monkeypatch.setattr(
        im, 'restore_image', lambda net, lq, options, **kw: seen.append(options.alpha) or orig(net, lq, options, **kw)
    )
    gt = (textures(2, 44) * 255).round() / 255  # 11x11 LQ: a token grid that needs padding (ceil(44 / 8) = 6)
    lq = (down4(gt) * 255).round() / 255
    data = dict(inputs=[x * 255 for x in lq], data_samples=[samples(g * 255) for g in gt])
    out_val = ready.val_step(data)
    out_test = ready.test_step(data)
    assert seen == [0.5, 0.7]
    # pred_img: restore() with test_cfg, in MMagic's convention for metrics (0-255, BGR like the GT there)
    expect_img = ready.restore(lq).flip(1) * 255
    assert torch.allclose(torch.stack([ds.output.pred_img for ds in out_test]), expect_img, atol=1e-3)
    for ds in out_test:
        o = ds.output
        assert o.pred_img.shape == (3, 44, 44) and float(o.pred_img.max()) > 1.0  # 0-255 as MMagic's SR models
        for key in ('lq_tokens', 'pred_tokens', 'gt_tokens'):
            assert o.get(key).shape == (6, 6) and o.get(key).dtype == torch.int64, key
        assert o.good_prob.shape == (6, 6) and float(o.good_prob.min()) >= 0 and float(o.good_prob.max()) <= 1
    # gt_tokens = S_h of the GT mirror-padded to the VQGAN's multiple (44 -> 48), cropped to the token grid
    pad = (-44) % ready.generator.vqgan.pad_multiple
    assert pad == 4
    with torch.no_grad():
        padded = torch.cat([gt, gt.flip(-2)[..., :pad, :]], -2)
        padded = torch.cat([padded, padded.flip(-1)[..., :pad]], -1)
        expect = ready.generator.vqgan.encode_indices(padded)[:, :6, :6]
    assert torch.equal(torch.stack([ds.output.gt_tokens for ds in out_val]), expect)


def test_lq_only_test_has_no_gt_tokens(ready):
    data = dict(inputs=[torch.rand(3, 8, 12) * 255], data_samples=[DataSample(metainfo=dict(img_channel_order='rgb'))])
    (ds,) = ready.test_step(data)
    assert ds.output.pred_img.shape == (3, 32, 48)
    assert 'gt_tokens' not in ds.output and ds.output.lq_tokens.shape == (4, 6)


def test_gradient_accumulation_through_optim_wrapper(ready):
    """accumulative_counts=2: the first train_step only accumulates, the second updates."""
    model = ready
    model.train()
    wrapper = OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-3), accumulative_counts=2)
    wrapper.initialize_count_status(model, 0, 4)
    gt = textures(2, 32)
    data = dict(inputs=[x * 255 for x in down4(gt)], data_samples=[samples(g * 255) for g in gt])
    w0 = model.generator.refiner.conv_out[2].weight.clone()
    model.train_step(data, wrapper)
    assert torch.equal(w0, model.generator.refiner.conv_out[2].weight)
    model.train_step(data, wrapper)
    assert not torch.equal(w0, model.generator.refiner.conv_out[2].weight)


def test_bf16_autocast_training_forward(ready):
    """Under autocast the CE terms are still computed in fp32 and every term is finite."""
    gt = textures(2, 32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = ready.forward_train(down4(gt), samples(gt))
    for key in ('loss_lq_ce', 'loss_refine_ce', 'loss_eval_refined_ce', 'loss_eval_lq'):
        assert losses[key].dtype == torch.float32 and torch.isfinite(losses[key]), key


@pytest.mark.parametrize(
    'name,scale,params,trainable',
    [
        ('iter_x4_realsr', 4, 127_321_541, 56_217_698),
        ('iter_x2_realsr', 2, 129_995_461, 58_891_618),
    ],
)
def test_realsr_configs(name, scale, params, trainable):
    """Paper-scale configs: released network sizes (docs/faithfulness.md#checkpoint-layout), paper training settings,
    restore() runs; the
    training model names the LPIPS file it lacks, testing needs none (inference_model_cfg)."""
    from iter_mm.utils.config import inference_model_cfg

    cfg = Config.fromfile(str(ROOT / f'configs/iter/{name}.py'))
    assert cfg.optim_wrapper.optimizer.lr == 1e-4 and tuple(cfg.optim_wrapper.optimizer.betas) == (0.9, 0.99)
    assert cfg.train_cfg.max_iters == 400_000 and cfg.param_scheduler is None
    assert cfg.train_dataloader.batch_size * 4 == 16 and cfg.gt_crop == 256
    with pytest.raises(FileNotFoundError, match='LPIPS_v0.1_vgg'):
        MODELS.build(cfg.model)
    model = MODELS.build(inference_model_cfg(cfg.model))
    assert model.test_cfg['alpha'] == 0.7 and model.val_cfg['alpha'] == 0.5  # RestoreOptions' defaults
    assert sum(p.numel() for p in model.parameters()) == params
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == trainable
    assert model.restore(torch.rand(1, 3, 5, 7), steps=2).shape == (1, 3, 5 * scale, 7 * scale)
