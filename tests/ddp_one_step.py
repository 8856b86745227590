"""One optimiser step of both training models, on one process or under torchrun (used by test_distributed.py).

    python tests/ddp_one_step.py OUT_DIR                                      # 1 process, the whole batch
    run(OUT_DIR)                                                              # the same, in the caller's process
    python -m torch.distributed.run --nproc_per_node 2 tests/ddp_one_step.py OUT_DIR   # 2 processes, half each

Both runs build the shipped tiny configs' models with the same seed, wrap them exactly as ``tools/train.py``
does (``configure_launch`` + MMEngine's model wrappers) and take one SGD step on a fixed global batch of 4
images; process r of W takes images [r*4/W, (r+1)*4/W). Everything runs twice: in float32 and in float64
(default dtype), which removes the rounding differences of the summation order. The training step's own
randomness (the masks of the
forward diffusion and the Gumbel noise of the image losses) is drawn once for the global batch from a fixed
seed and sliced the same way (ITERModel's ``train_noise``), so that the two runs see identical samples. Writes
``OUT_DIR/{float32,float64}/w{W}_r{r}_{stage1,stage2}[_init].pth`` (state dicts before and after, unwrapped).
"""

import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
GLOBAL_BATCH = 4
LR = 0.05


def _global_batch(gt_size: int, scale: int):
    """Smooth random GT (4, 3, S, S) in [0, 255] and its bicubic LQ."""
    g = torch.Generator().manual_seed(123)
    low = torch.rand(GLOBAL_BATCH, 3, gt_size // 8, gt_size // 8, generator=g)
    gt = F.interpolate(low, size=(gt_size, gt_size), mode='bicubic', align_corners=False).clamp(0, 1) * 255
    lq = F.interpolate(gt, scale_factor=1 / scale, mode='bicubic', align_corners=False).clamp(0, 255)
    return gt, lq


def _data(gt, lq, rank, world):
    from mmagic.structures import DataSample

    per = GLOBAL_BATCH // world
    idx = range(rank * per, (rank + 1) * per)
    return dict(
        inputs=[lq[i] for i in idx],
        data_samples=[DataSample(gt_img=gt[i], metainfo=dict(gt_path=f'{i}.png')) for i in idx],
    )


def _wrap(model, cfg, launcher):
    from mmengine.registry import MODEL_WRAPPERS

    from iter_mm.engine.launch import configure_launch

    configure_launch(cfg, launcher)
    if launcher == 'none':
        return model
    return MODEL_WRAPPERS.build(cfg.model_wrapper_cfg, default_args=dict(module=model))


def _global_noise(rank, world):
    """Training draws of the whole global batch from one seeded generator; this process takes its rows, so every
    process consumes the same stream and the images see the draws of the 1-process run."""
    from iter_mm.models.training_noise import TrainingNoise

    rows = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)

    class GlobalBatchNoise(TrainingNoise):
        def mask_rate(self, batch):
            return super().mask_rate(GLOBAL_BATCH)[rows]

        def mask_uniforms(self, batch, num_tokens):
            return super().mask_uniforms(GLOBAL_BATCH, num_tokens)[rows]

        def gumbel_exponential(self, shape, dtype=torch.float32, device=None):
            return super().gumbel_exponential((GLOBAL_BATCH, *shape[1:]), dtype)[rows].to(device)

    return GlobalBatchNoise(torch.Generator().manual_seed(7))


def stage1_step(rank, world, launcher, out: Path) -> None:
    from mmengine.optim import OptimWrapper, OptimWrapperDict

    from iter_mm.utils.config import load_config
    from mmagic.registry import MODELS

    cfg = load_config(str(ROOT / 'configs/iter/swinvqgan_tiny.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    _save(model, out / f'w{world}_r{rank}_stage1_init.pth')
    wrapped = _wrap(model, cfg, launcher)
    optim = OptimWrapperDict(
        generator=OptimWrapper(torch.optim.SGD(model.generator.parameters(), lr=LR)),
        discriminator=OptimWrapper(torch.optim.SGD(model.discriminator.parameters(), lr=LR)),
    )
    gt, _ = _global_batch(64, 1)
    data = _data(gt, gt, rank, world)
    wrapped.train_step(data, optim)
    _save(model, out / f'w{world}_r{rank}_stage1.pth')


def stage2_step(rank, world, launcher, out: Path) -> None:
    from mmengine.optim import OptimWrapper

    from iter_mm.utils.config import load_config
    from mmagic.registry import MODELS

    cfg = load_config(str(ROOT / 'configs/iter/iter_x4_tiny.py'))
    cfg.model.vqgan_ckpt = None
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.load_state_dict(model.state_dict())  # a full state (with generator.vqgan.*) hands over stage I
    model.train_noise = _global_noise(rank, world)
    gt, lq = _global_batch(64, 4)
    _bias_lq_encoder(model, gt)
    _save(model, out / f'w{world}_r{rank}_stage2_init.pth')
    wrapped = _wrap(model, cfg, launcher)
    optim = OptimWrapper(torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=LR))
    data = _data(gt, lq, rank, world)
    log = wrapped.train_step(data, optim)
    assert 0.0 < float(log['acc_lq']) < 1.0, f'phi_e labels need both classes, acc_lq={float(log["acc_lq"])}'
    _save(model, out / f'w{world}_r{rank}_stage2.pth')


def _bias_lq_encoder(model, gt) -> None:
    """Make E_l favour the most frequent S_h code, so that S_l == S_h on part of the tokens: phi_e's labels
    then hold both classes and the class-balanced weights (Eq. 9) matter."""
    with torch.no_grad():
        tokens = model.generator.vqgan.encode_indices(gt / 255.0)
        top = torch.bincount(tokens.flatten()).argmax()
        last = [m for m in model.generator.lq_encoder.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        last.bias[top] += 3.0


def _save(model, path: Path) -> None:
    """State dict without the DDP wrappers' ``module.`` level (the separate wrapper wraps submodules)."""
    state = {k.replace('module.', ''): v.detach().clone() for k, v in model.state_dict().items()}
    torch.save(state, path)


def run(out: Path, rank: int = 0, world: int = 1, launcher: str = 'none') -> None:
    """Both stages in float32 and in float64. Restores the default dtype afterwards, so that the 1-process run
    can also run inside the test process."""
    from mmengine.registry import init_default_scope

    init_default_scope('mmagic')
    try:
        for dtype in (torch.float32, torch.float64):  # float64: the equivalence without fp32 rounding
            torch.set_default_dtype(dtype)
            sub = out / str(dtype).split('.')[-1]
            sub.mkdir(exist_ok=True)
            stage1_step(rank, world, launcher, sub)
            stage2_step(rank, world, launcher, sub)
    finally:
        torch.set_default_dtype(torch.float32)


def main() -> None:
    sys.path.insert(0, str(ROOT))
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    world = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    run(out, rank, world, 'pytorch' if world > 1 else 'none')


if __name__ == '__main__':
    main()
