"""Measure what the small-budget demo learned, on held-out photos, next to bicubic.

Stage I (:func:`eval_stage1`): reconstruction PSNR / SSIM (Y, crop 4) of the held-out HQ photos, codebook
usage and perplexity of their tokens, and the per-channel mean error of the reconstructions (colour bias).
Stages II+III (:func:`eval_sr`): the config's validation set (held-out photos with the seeded x4
Real-ESRGAN degradation), restored with the model's ``test_cfg``; PSNR / SSIM (Y, crop 4), per-channel mean error
and NIQE (MMagic's, Y) of ITER and of bicubic, plus token diagnostics (E_l and final-token accuracy against the
stage-I tokens of the GT, token perplexities, and the PSNR of the GT tokens decoded: the stage-I ceiling).

Command line: ``tools/demo_metrics.py``.

Colour bias: for every image and channel, mean(pred - gt) on the 0-255 scale; ``mean_abs_channel_bias`` is the
mean over images and channels of its absolute value (0 for a prediction without a colour cast). ``saturation``:
std of the chroma (pixel minus its mean over R, G, B) of the prediction over that of the GT (1 = as colourful as
the GT, 0 = grey).
"""

import os.path as osp
from typing import Dict, List

import cv2
import numpy as np
import torch

from .metrics.codebook import codebook_stats

__all__ = ['eval_stage1', 'eval_sr', 'sampling_defaults', 'heldout_images']


def _y_metrics(pred: np.ndarray, gt: np.ndarray, crop: int = 4) -> Dict[str, float]:
    from mmagic.evaluation.metrics.psnr import psnr
    from mmagic.evaluation.metrics.ssim import ssim

    return dict(
        psnr_y=float(psnr(pred, gt, crop, 'HWC', 'Y', 'rgb')), ssim_y=float(ssim(pred, gt, crop, 'HWC', 'Y', 'rgb'))
    )


def _bias(pred: np.ndarray, gt: np.ndarray) -> List[float]:
    return [float(v) for v in (pred.astype(np.float64) - gt.astype(np.float64)).reshape(-1, 3).mean(0)]


def _saturation(pred: np.ndarray, gt: np.ndarray) -> float:
    """Chroma strength of pred relative to gt: std of (pixel - its channel mean); 1 = as colourful, 0 = grey."""
    chroma = lambda a: a.astype(np.float64) - a.astype(np.float64).mean(2, keepdims=True)  # noqa: E731
    return float(chroma(pred).std() / max(chroma(gt).std(), 1e-6))


def _niqe(img: np.ndarray) -> float:
    from mmagic.evaluation.metrics.niqe import niqe

    return float(niqe(np.ascontiguousarray(img[..., ::-1]), crop_border=0, input_order='HWC', convert_to='y'))


def _to_u8(t: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8."""
    return (t.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def _perplexity(tokens: torch.Tensor, k: int) -> float:
    return codebook_stats(torch.bincount(tokens.flatten().cpu(), minlength=k).numpy())['perplexity']


def _summary(rows: List[dict]) -> dict:
    out = {}
    for key in rows[0]:
        if key == 'name':
            continue
        vals = [r[key] for r in rows]
        if isinstance(vals[0], list):
            arr = np.array(vals)
            out[key] = [round(float(v), 3) for v in arr.mean(0)]
            out[f'mean_abs_{key}'] = round(float(np.abs(arr).mean()), 3)
        else:
            out[key] = round(float(np.mean(vals)), 4)
    return out


def _build(config: str, ckpt: str):
    """The config and its model with ``ckpt`` loaded strictly through the one loader (our own training
    checkpoints pickle the message hub: trusted, as MMEngine's load_from)."""
    from ..apis import init_model
    from ..utils.config import load_config

    return load_config(config), init_model(config, ckpt, allow_pickle=True)


def heldout_images(names=None):
    """The held-out photos, one at a time.

    Args:
        names (Sequence[str], optional): file names in scikit-image's data folder. Default: None
            (``SKIMAGE_HELDOUT``).

    Yields:
        tuple[str, np.ndarray]: (name, (H, W, 3) RGB uint8).
    """
    from ..datasets.skimage_photos import SKIMAGE_HELDOUT, skimage_data_dir

    for name in names or SKIMAGE_HELDOUT:
        img = cv2.imread(osp.join(skimage_data_dir(), name), cv2.IMREAD_COLOR)
        yield name, np.ascontiguousarray(img[..., ::-1])  # RGB uint8


@torch.no_grad()
def eval_stage1(config: str, ckpt: str) -> dict:
    """Stage I on the held-out photos: reconstruction metrics, colour bias, codebook usage and perplexity.

    Args:
        config (str): a stage-I config.
        ckpt (str): its checkpoint (ours: loaded with ``allow_pickle``, trusted).

    Returns:
        dict: mean metrics, ``codebook_usage``, ``codebook_perplexity`` and ``per_image`` rows.
    """
    _, model = _build(config, ckpt)
    k = model._test_generator().codebook_size
    rows, tokens = [], []
    for name, gt in heldout_images():
        x = torch.from_numpy(gt).permute(2, 0, 1)[None].float() / 255
        rec, tok = model.reconstruct(x)
        pred = _to_u8(rec[0])
        tokens.append(tok.flatten())
        rows.append(
            dict(name=name, **_y_metrics(pred, gt), channel_bias=_bias(pred, gt), saturation=_saturation(pred, gt))
        )
    stats = codebook_stats(torch.bincount(torch.cat(tokens).cpu(), minlength=k).numpy())
    res = _summary(rows)
    res.update(
        codebook_usage=round(stats['usage'], 4), codebook_perplexity=round(stats['perplexity'], 2), per_image=rows
    )
    return res


@torch.no_grad()
def eval_sr(config: str, ckpt: str, overrides: dict = None) -> dict:
    """ITER and bicubic on the config's validation set, with token diagnostics (see the module docstring).

    Args:
        config (str): an ITER config.
        ckpt (str): its checkpoint (ours: loaded with ``allow_pickle``, trusted).
        overrides (dict, optional): ``RestoreOptions`` over the config's ``test_cfg``. Default: None.

    Returns:
        dict: ``iter``, ``bicubic`` and ``tokens`` summaries and the ``per_image`` rows of each.
    """
    from mmagic.registry import DATASETS

    cfg, model = _build(config, ckpt)
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    scale = model.generator.scale
    vq = model.generator.vqgan
    k = vq.codebook_size
    rows_sr, rows_bic, stats = [], [], []
    for i in range(len(dataset)):
        item = dataset[i]
        lq = item['inputs'].float()  # (3, h, w) RGB 0..255
        gt_t = item['data_samples'].gt_img.float()
        gt = gt_t.permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
        name = str(item['data_samples'].metainfo.get('gt_path', i)).rsplit('/', 1)[-1]
        result = model.restore(lq[None] / 255, return_result=True, **(overrides or {}))
        pred = _to_u8(result.image[0])
        lq_u8 = lq.permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
        bic = cv2.resize(lq_u8, (lq_u8.shape[1] * scale, lq_u8.shape[0] * scale), interpolation=cv2.INTER_CUBIC)
        h, w = min(pred.shape[0], gt.shape[0]), min(pred.shape[1], gt.shape[1])
        pred, bic, gt = pred[:h, :w], bic[:h, :w], gt[:h, :w]
        rows_sr.append(
            dict(
                name=name,
                **_y_metrics(pred, gt),
                channel_bias=_bias(pred, gt),
                saturation=_saturation(pred, gt),
                niqe=_niqe(pred),
            )
        )
        rows_bic.append(
            dict(
                name=name,
                **_y_metrics(bic, gt),
                channel_bias=_bias(bic, gt),
                saturation=_saturation(bic, gt),
                niqe=_niqe(bic),
            )
        )
        # token diagnostics on the restored grid
        gt_img = torch.from_numpy(gt).permute(2, 0, 1)[None].float() / 255
        grid = result.tokens.shape[-2:]
        s_h = model.gt_tokens(gt_img, grid)[0]
        ceiling = _to_u8(vq.reconstruct(gt_img)[0])[:h, :w]  # the GT's tokens decoded (padded, cropped back)
        stats.append(
            dict(
                name=name,
                acc_lq=float((result.lq_tokens[0] == s_h).float().mean()),
                acc_final=float((result.tokens[0] == s_h).float().mean()),
                ppl_gt=_perplexity(s_h, k),
                ppl_lq=_perplexity(result.lq_tokens[0], k),
                ppl_final=_perplexity(result.tokens[0], k),
                gt_tokens_psnr_y=_y_metrics(ceiling, gt)['psnr_y'],
            )
        )
    return dict(
        iter=_summary(rows_sr),
        bicubic=_summary(rows_bic),
        tokens=_summary(stats),
        per_image=dict(iter=rows_sr, bicubic=rows_bic, tokens=stats),
    )


def sampling_defaults(config: str) -> dict:
    """The ``model.test_cfg`` of ``config`` (the sampling options ``eval_sr`` starts from).

    Args:
        config (str): an ITER config.

    Returns:
        dict: a copy of ``model.test_cfg`` (empty when unset).
    """
    from ..utils.config import load_config

    return dict(load_config(config).model.get('test_cfg') or {})
