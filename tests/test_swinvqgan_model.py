"""Stage-I model (SwinVQGANModel), CodebookUsage metric and the tiny stage-I config end to end."""

import json
import math
import os.path as osp
import runpy
import sys
from copy import deepcopy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.optim import OptimWrapper, OptimWrapperDict

import iter_mm  # noqa: F401  (registers the plugin)
from iter_mm.evaluation.metrics import CodebookUsage, codebook_stats
from mmagic.registry import MODELS
from mmagic.structures import DataSample
from mmagic.utils import register_all_modules

register_all_modules(init_default_scope=True)


from iter_model_helpers import one_thread  # noqa: E402,F401  (autouse: tiny networks on one thread)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY = osp.join(ROOT, 'configs', 'iter', 'swinvqgan_tiny.py')
PAPER = osp.join(ROOT, 'configs', 'iter', 'swinvqgan_df2k-ost.py')


def _tiny_model_cfg(**overrides):
    cfg = deepcopy(Config.fromfile(TINY).model)
    cfg.update(overrides)
    return cfg


def _optims(model, lr=1e-3):
    wrappers = dict(generator=OptimWrapper(torch.optim.Adam(model.generator.parameters(), lr=lr)))
    if model.discriminator is not None:
        wrappers['discriminator'] = OptimWrapper(torch.optim.Adam(model.discriminator.parameters(), lr=lr))
    return OptimWrapperDict(**wrappers)


def _batch(n=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = (torch.rand(n, 3, size, size, generator=g) * 255).round()
    samples = []
    for img in imgs:
        ds = DataSample()
        ds.gt_img = img.clone()
        samples.append(ds)
    return dict(inputs=list(imgs), data_samples=samples)


# ----------------------------------------------------------------- model
def test_train_step_updates_g_and_d_and_logs_every_loss():
    torch.manual_seed(0)
    model = MODELS.build(_tiny_model_cfg())
    g0 = deepcopy(model.generator.state_dict())
    d0 = deepcopy(model.discriminator.state_dict())
    log = model.train_step(_batch(), _optims(model))
    assert set(log) == {'loss_vq', 'loss_pix', 'loss_ssim', 'loss_gan', 'loss_d_real', 'loss_d_fake'}
    assert all(torch.isfinite(v) for v in log.values())
    changed = lambda a, b: any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())  # noqa: E731
    assert changed(g0, model.generator.state_dict())
    assert changed(d0, model.discriminator.state_dict())
    assert not torch.equal(g0['quantize.embedding.weight'], model.generator.quantize.embedding.weight)


def test_generator_and_discriminator_losses_by_hand():
    torch.manual_seed(0)
    model = MODELS.build(_tiny_model_cfg()).eval()  # eval: spectral norm does no power step per call
    g = torch.Generator().manual_seed(1)
    gt = torch.rand(2, 3, 32, 32, generator=g)
    rec, vq, _ = model.generator(gt)
    losses = model.g_step((rec, vq), gt)
    with torch.no_grad():
        d_fake = model.discriminator(rec)
        d_real = model.discriminator(gt)
    assert losses['loss_vq'].item() == pytest.approx(vq.item(), rel=1e-6)
    assert losses['loss_pix'].item() == pytest.approx((rec - gt).abs().mean().item(), rel=1e-5)
    assert losses['loss_gan'].item() == pytest.approx(-0.1 * d_fake.mean().item(), rel=1e-4, abs=1e-7)
    assert model.d_step_real(rec, gt).item() == pytest.approx(F.relu(1 - d_real).mean().item(), rel=1e-5)
    assert model.d_step_fake(rec, gt).item() == pytest.approx(F.relu(1 + d_fake).mean().item(), rel=1e-5)

    # each term is optional: only L1 left -> no D, one logged loss
    only_l1 = MODELS.build(_tiny_model_cfg(discriminator=None, gan_loss=None, ssim_loss=None, vq_loss_weight=0))
    assert only_l1.discriminator is None
    log = only_l1.train_step(_batch(), _optims(only_l1))
    assert set(log) == {'loss_pix'}
    with pytest.raises(RuntimeError, match='every generator loss is off'):
        MODELS.build(
            _tiny_model_cfg(discriminator=None, gan_loss=None, ssim_loss=None, vq_loss_weight=0, pixel_loss=None)
        ).g_step((rec, vq), gt)


def test_val_step_any_size_writes_pred_img_and_tokens():
    torch.manual_seed(0)
    model = MODELS.build(_tiny_model_cfg()).eval()
    batch = _batch(n=1, size=1)
    h, w = 45, 70
    img = (torch.rand(3, h, w) * 255).round()
    batch['inputs'] = [img]
    batch['data_samples'][0].gt_img = img.clone()
    out = model.val_step(batch)[0]
    assert out.output.pred_img.shape == (3, h, w)
    tokens = out.output.pred_tokens
    assert tokens.dtype == torch.int64 and tokens.shape == (math.ceil(h / 8), math.ceil(w / 8))
    assert 0 <= tokens.min() and tokens.max() < 128
    # tokens are those of the (mirror-padded) image; pred_img is its decoding, on the 0..255 scale
    from iter_mm.utils.padding import pad_to_multiple

    padded, _ = pad_to_multiple(img[None] / 255, 32)
    with torch.no_grad():
        rec, _, idx = model.generator(padded)
    torch.testing.assert_close(tokens, idx[0, :6, :9])
    torch.testing.assert_close(out.output.pred_img, rec[0, :, :h, :w] * 255, atol=1e-3, rtol=0)
    # 1x1 input is handled (padding wraps), a grey image is rejected clearly
    assert model.forward_tensor(torch.rand(1, 3, 1, 1)).shape == (1, 3, 1, 1)
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        model.forward_tensor(torch.rand(1, 1, 32, 32))


def test_ema_generator_is_used_for_test():
    torch.manual_seed(0)
    model = MODELS.build(_tiny_model_cfg(is_use_ema=True)).eval()
    assert all(not p.requires_grad for p in model.generator_ema.parameters())
    x = torch.rand(1, 3, 32, 32)
    before = model.forward_tensor(x)
    with torch.no_grad():
        for p in model.generator_ema.decoder.parameters():
            p.add_(0.05)
    assert not torch.allclose(before, model.forward_tensor(x))
    plain = MODELS.build(_tiny_model_cfg())
    assert plain.generator_ema is None


def test_inference_cfg_needs_no_loss_weights():
    from iter_mm.utils.config import inference_model_cfg

    cfg = _tiny_model_cfg(perceptual_loss=dict(type='LPIPSLoss', lpips_path='/missing/lpips.pth'))
    with pytest.raises(FileNotFoundError, match='lpips.pth'):
        MODELS.build(cfg)
    model = MODELS.build(inference_model_cfg(cfg))  # losses and D dropped: builds without any file
    assert model.discriminator is None and model.perceptual_loss is None and model.pixel_loss is None
    assert model.forward_tensor(torch.rand(1, 3, 20, 20)).shape == (1, 3, 20, 20)


def test_paper_config_builds_released_sizes():
    cfg = Config.fromfile(PAPER)
    assert cfg.model.generator == dict(type='SwinVQGAN')
    assert cfg.train_dataloader.batch_size == 8 and cfg.train_cfg.max_iters == 400_000
    opt = cfg.optim_wrapper
    assert opt.generator.optimizer.lr == 1e-4 and opt.discriminator.optimizer.lr == 4e-4
    assert tuple(opt.generator.optimizer.betas) == (0.9, 0.99)
    assert cfg.train_pipeline[1].crop_size == (256, 256)
    assert cfg.model.perceptual_loss.lpips_path.endswith('LPIPS_v0.1_vgg-a78928a0.pth')


# ----------------------------------------------------------------- metric
def test_codebook_stats_by_hand():
    s = codebook_stats(np.array([2, 1, 1, 0]))
    assert s['usage'] == pytest.approx(0.75)
    assert s['perplexity'] == pytest.approx(math.exp(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))))
    assert codebook_stats(np.array([0, 5, 0]))['perplexity'] == pytest.approx(1.0)
    assert codebook_stats(np.array([3, 3, 3, 3]))['perplexity'] == pytest.approx(4.0)


def test_codebook_usage_metric_over_samples():
    metric = CodebookUsage(codebook_size=4)
    metric.process(
        None,
        [
            dict(output=dict(pred_tokens=torch.tensor([[0, 0], [1, 0]]))),
            dict(output=dict(pred_tokens=torch.tensor([[2, 1]]))),
        ],
    )
    res = metric.compute_metrics(metric.results)  # counts: [3, 2, 1, 0]
    assert res['CodebookUsage'] == pytest.approx(0.75)
    p = np.array([3, 2, 1]) / 6
    assert res['CodebookPerplexity'] == pytest.approx(float(np.exp(-(p * np.log(p)).sum())))
    with pytest.raises(ValueError, match='codebook_size'):
        metric.process(None, [dict(output=dict(pred_tokens=torch.tensor([[4]])))])
    with pytest.raises(KeyError, match='pred_tokens'):
        metric.process(None, [dict(output=dict(pred_img=torch.zeros(3, 2, 2)))])


# ----------------------------------------------------------------- tiny config end to end
def _scalars(work_dir):
    import glob

    files = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    assert files, f'no scalars.json under {work_dir}'
    return [json.loads(line) for line in open(files[0])]


def test_tiny_config_trains_through_tools_train(tmp_path, monkeypatch):
    import cv2

    data = tmp_path / 'hq'
    data.mkdir()
    yy, xx = np.mgrid[0:48, 0:48]
    for i in range(4):  # smooth colour gradients: learnable in a few dozen steps
        img = np.stack([xx * (1 + i) + 20 * i, yy * 2 + 60, (xx + yy) + 30 * i], -1)
        cv2.imwrite(str(data / f'img_{i}.png'), img.astype(np.uint8))
    work = tmp_path / 'work'
    iters = 30
    argv = [
        'tools/train.py',
        TINY,
        '--work-dir',
        str(work),
        '--cfg-options',
        f'train_dataloader.dataset.data_root={data}',
        f'val_dataloader.dataset.data_root={data}',
        f'test_dataloader.dataset.data_root={data}',
        'train_dataloader.dataset.pipeline.1.crop_size=(32,32)',
        f'train_cfg.max_iters={iters}',
        f'train_cfg.val_interval={iters}',
        f'default_hooks.checkpoint.interval={iters}',
        'default_hooks.checkpoint.out_dir=None',  # checkpoints in the work dir, not under ./work_dirs
        'default_hooks.logger.interval=1',
        'log_processor.window_size=1',
        'randomness.seed=0',
    ]
    monkeypatch.setattr(sys, 'argv', argv)
    monkeypatch.chdir(ROOT)
    runpy.run_path(osp.join(ROOT, 'tools', 'train.py'), run_name='__main__')

    logs = _scalars(str(work))
    l1 = [r['loss_pix'] for r in logs if 'loss_pix' in r]
    assert len(l1) == iters
    first, last = np.mean(l1[:3]), np.mean(l1[-5:])
    assert last < 0.7 * first, (first, last)
    assert all(k in logs[0] for k in ('loss_vq', 'loss_ssim', 'loss_gan', 'loss_d_real', 'loss_d_fake'))
    val = [r for r in logs if 'CodebookUsage' in r]
    assert val and 0 < val[-1]['CodebookUsage'] <= 1 and val[-1]['PSNR'] > 0
    assert osp.isfile(work / f'iter_{iters}.pth')
