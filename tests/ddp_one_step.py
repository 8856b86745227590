"""One optimiser step of both training models, on one process or under torchrun (used by test_distributed.py).

    python tests/ddp_one_step.py OUT_DIR                                      # 1 process, the whole batch
    run(OUT_DIR)                                                              # the same, in the caller's process
    python -m torch.distributed.run --nproc_per_node 2 tests/ddp_one_step.py OUT_DIR   # 2 processes, half each

Both runs build the shipped tiny configs' models with the same seed, wrap them exactly as ``tools/train.py``
does (``configure_launch`` + MMEngine's model wrappers) and take one SGD step on a fixed global batch of 4
images; process r of W takes images [r*4/W, (r+1)*4/W). Everything runs twice: in float32 and in float64
(default dtype), which removes the rounding differences of the summation order. The training step's own randomness (the masks of the
forward diffusion and the Gumbel noise of the image losses) is drawn once for the global batch from a fixed
seed and sliced the same way, so that the two runs see identical samples. Writes
``OUT_DIR/{float32,float64}/w{W}_r{r}_{stage1,stage2}[_init].pth`` (state dicts before and after, unwrapped).
"""
import os
import sys
from pathlib import Path
from types import SimpleNamespace

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
    return dict(inputs=[lq[i] for i in idx],
                data_samples=[DataSample(gt_img=gt[i], metainfo=dict(gt_path=f'{i}.png')) for i in idx])


def _wrap(model, cfg, launcher):
    from mmengine.registry import MODEL_WRAPPERS
    from iter_mm.engine.launch import configure_launch
    configure_launch(cfg, launcher)
    if launcher == 'none':
        return model
    return MODEL_WRAPPERS.build(cfg.model_wrapper_cfg, default_args=dict(module=model))


def _fixed_randomness(rank, world):
    """Replace the masks and Gumbel noise of ITERModel's step by slices of fixed global draws."""
    import iter_mm.models.editors.iter_model as iter_model
    per = GLOBAL_BATCH // world
    rows = slice(rank * per, (rank + 1) * per)
    g = torch.Generator().manual_seed(7)
    state = dict(mask=None, gumbel_calls=0)
    original_mask = getattr(iter_model.sample_training_mask, 'original', iter_model.sample_training_mask)

    def fixed_mask(batch, h, w, generator=None, device=None):
        if state['mask'] is None:
            state['mask'] = original_mask(GLOBAL_BATCH, h, w, generator=g)
        return state['mask'][rows].to(device)

    def fixed_gumbel(logits, tau=1.0, hard=False, dim=-1):
        gen = torch.Generator().manual_seed(1000 + state['gumbel_calls'])
        state['gumbel_calls'] += 1
        shape = (GLOBAL_BATCH,) + tuple(logits.shape[1:])
        noise = -torch.log(-torch.log(torch.rand(shape, generator=gen).clamp(1e-10, 1 - 1e-7)))[rows]
        soft = ((logits + noise.to(logits)) / tau).softmax(dim)
        hard_one = torch.zeros_like(soft).scatter_(dim, soft.argmax(dim, keepdim=True), 1.0)
        return hard_one - soft.detach() + soft if hard else soft

    fixed_mask.original = original_mask
    iter_model.sample_training_mask = fixed_mask
    iter_model.F = SimpleNamespace(**{k: getattr(F, k) for k in dir(F) if not k.startswith('_')})
    iter_model.F.gumbel_softmax = fixed_gumbel


def stage1_step(rank, world, launcher, out: Path) -> None:
    from mmengine.optim import OptimWrapper, OptimWrapperDict
    from mmagic.registry import MODELS
    from iter_mm.utils.config import load_config
    cfg = load_config(str(ROOT / 'configs/iter/swinvqgan_tiny.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    _save(model, out / f'w{world}_r{rank}_stage1_init.pth')
    wrapped = _wrap(model, cfg, launcher)
    optim = OptimWrapperDict(
        generator=OptimWrapper(torch.optim.SGD(model.generator.parameters(), lr=LR)),
        discriminator=OptimWrapper(torch.optim.SGD(model.discriminator.parameters(), lr=LR)))
    gt, _ = _global_batch(64, 1)
    data = _data(gt, gt, rank, world)
    wrapped.train_step(data, optim)
    _save(model, out / f'w{world}_r{rank}_stage1.pth')


def stage2_step(rank, world, launcher, out: Path) -> None:
    from mmengine.optim import OptimWrapper
    from mmagic.registry import MODELS
    from iter_mm.utils.config import load_config
    cfg = load_config(str(ROOT / 'configs/iter/iter_x4_tiny.py'))
    cfg.model.vqgan_ckpt = None
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.load_state_dict(model.state_dict())  # a full state (with generator.vqgan.*) hands over stage I
    gt, lq = _global_batch(64, 4)
    _bias_lq_encoder(model, gt)
    _save(model, out / f'w{world}_r{rank}_stage2_init.pth')
    wrapped = _wrap(model, cfg, launcher)
    optim = OptimWrapper(torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=LR))
    _fixed_randomness(rank, world)
    data = _data(gt, lq, rank, world)
    log = wrapped.train_step(data, optim)
    assert 0.0 < float(log['acc_lq']) < 1.0, f'phi_e labels need both classes, acc_lq={float(log["acc_lq"])}'
    _save(model, out / f'w{world}_r{rank}_stage2.pth')


def _bias_lq_encoder(model, gt) -> None:
    """Make E_l favour the most frequent S_h code, so that S_l == S_h on part of the tokens: phi_e's labels
    then hold both classes and the class-balanced weights (Eq. 9) matter."""
    with torch.no_grad():
        tokens = model.generator.vqgan.encode_indices(gt / 255.)
        top = torch.bincount(tokens.flatten()).argmax()
        last = [m for m in model.generator.lq_encoder.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        last.bias[top] += 3.0


def _save(model, path: Path) -> None:
    """State dict without the DDP wrappers' ``module.`` level (the separate wrapper wraps submodules)."""
    state = {k.replace('module.', ''): v.detach().clone() for k, v in model.state_dict().items()}
    torch.save(state, path)


def run(out: Path, rank: int = 0, world: int = 1, launcher: str = 'none') -> None:
    """Both stages in float32 and in float64. Restores the default dtype and ITERModel's own randomness
    afterwards, so that the 1-process run can also run inside the test process."""
    import iter_mm.models.editors.iter_model as iter_model
    from mmengine.registry import init_default_scope
    init_default_scope('mmagic')
    saved = iter_model.sample_training_mask, iter_model.F
    try:
        for dtype in (torch.float32, torch.float64):  # float64: the equivalence without fp32 rounding
            torch.set_default_dtype(dtype)
            sub = out / str(dtype).split('.')[-1]
            sub.mkdir(exist_ok=True)
            stage1_step(rank, world, launcher, sub)
            stage2_step(rank, world, launcher, sub)
    finally:
        torch.set_default_dtype(torch.float32)
        iter_model.sample_training_mask, iter_model.F = saved


def main() -> None:
    sys.path.insert(0, str(ROOT))
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    world = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    run(out, rank, world, 'pytorch' if world > 1 else 'none')


if __name__ == '__main__':
    main()
