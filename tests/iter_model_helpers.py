"""Shared tiny ITER model, stage-I checkpoint and data helpers of tests/test_iter_model*.py."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper

import iter_mm  # noqa: F401  (registers everything)
from iter_mm.models.editors.iter_model import ITERModel
from mmagic.registry import MODELS
from mmagic.structures import DataSample

ROOT = Path(__file__).resolve().parents[1]
N_CODES = 32
WIN = 2
TINY_VQGAN = dict(
    type='SwinVQGAN',
    nf=16,
    ch_mult=(1, 1, 2, 2),
    num_res_blocks=1,
    codebook_size=N_CODES,
    embed_dim=8,
    swin_dim=16,
    swin_window=WIN,
    swin_depth=2,
    swin_num_rstb=1,
    swin_heads=2,
)
TINY_NET = dict(
    type='ITERNet',
    scale=4,
    vqgan=TINY_VQGAN,
    lq_encoder=dict(
        type='LQEncoder',
        scale=4,
        base_channels=16,
        feat_dim=16,
        codebook_size=N_CODES,
        swin_dim=16,
        swin_num_rstb=1,
        swin_depth=2,
        swin_window=WIN,
        swin_heads=2,
    ),
    evaluator=dict(
        type='TokenEvaluationNet', codebook_size=N_CODES, mid_dim=16, num_rstb=1, depth=2, window_size=WIN, num_heads=2
    ),
    refiner=dict(
        type='TokenRefinementNet', codebook_size=N_CODES, mid_dim=16, num_rstb=1, depth=2, window_size=WIN, num_heads=2
    ),
)


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """Tiny networks: one thread is much faster than several competing on a loaded machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def textures(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """(n, 3, size, size) smooth random colour patterns in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size.__float__()), torch.arange(size.__float__()), indexing='ij')
    imgs = []
    for _ in range(n):
        f = torch.rand(3, 2, generator=g) * 0.6 + 0.05
        p = torch.rand(3, 1, 1, generator=g) * 6.28
        img = 0.5 + 0.4 * torch.sin(f[:, :1, None] * xx + f[:, 1:, None] * yy + p)
        imgs.append(img)
    return torch.stack(imgs).clamp(0, 1)


def down4(gt: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(gt, 4)


def build(stage1_checkpoint=None, **kwargs) -> ITERModel:
    torch.manual_seed(0)
    cfg = dict(type='ITERModel', generator=TINY_NET, stage1_checkpoint=stage1_checkpoint, **kwargs)
    return MODELS.build(cfg)


@pytest.fixture(scope='module')
def stage1_ckpt(tmp_path_factory) -> Path:
    """A stage-I checkpoint in our MMEngine layout whose codebook holds real encoder latents (diverse tokens)."""
    torch.manual_seed(1)
    vq = MODELS.build(TINY_VQGAN)
    with torch.no_grad():
        z = vq.encode(textures(8, 32, seed=5)).permute(0, 2, 3, 1).reshape(-1, 8)
        vq.quantize.embedding.weight.copy_(z[torch.randperm(len(z))[:N_CODES]])
    path = tmp_path_factory.mktemp('stage1') / 'vqgan.pth'
    torch.save(
        {'meta': {'note': 'stage I'}, 'state_dict': {'generator.' + k: v for k, v in vq.state_dict().items()}}, path
    )
    return path


@pytest.fixture
def ready(stage1_ckpt) -> ITERModel:
    model = build(str(stage1_ckpt))
    model.init_weights()
    return model


def samples(gt: torch.Tensor) -> DataSample:
    """A data sample as MMagic's LoadImageFromFile(channel_order='rgb') + PackInputs make it."""
    ds = DataSample(metainfo=dict(gt_channel_order='rgb', img_channel_order='rgb'))
    ds.set_tensor_data(dict(gt_img=gt))
    return ds


class NoStepOptimWrapper(OptimWrapper):
    """An optimizer wrapper whose ``step`` and ``zero_grad`` do nothing: after ``train_step`` the parameters are
    unchanged and hold the step's gradients."""

    def step(self, **kwargs) -> None:
        pass

    def zero_grad(self, **kwargs) -> None:
        pass
