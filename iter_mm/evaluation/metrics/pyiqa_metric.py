"""Any pyiqa metric (NIQE, PI, LPIPS, MUSIQ, MANIQA, PSNR, ...) as an MMagic metric, strictly offline.

pyiqa downloads weights on first use; here nothing may touch the network. While a pyiqa metric is built,
:func:`~iter_mm.evaluation.metrics.pyiqa_offline.offline_weights` replaces every download entry point (pyiqa's
``load_file_from_url``, torch hub / torchvision ``load_state_dict_from_url``, timm's Hugging Face download, and,
as a last guard, socket connects): a requested file is served from ``weight_files`` / ``backbone_path`` / the
existing cache, or the build fails with :class:`MissingWeightsError` naming the file, its URL and where to put it.

NIQE works out of the box: pyiqa's NIQE reads ``mu_prisparam`` / ``cov_prisparam`` from a ``.mat`` file, which
:func:`niqe_params_mat` writes from the pristine-model parameters MMagic ships (``niqe_pris_params.npz``).
``niqe_impl='mmagic'`` runs MMagic's own NIQE instead (see docs/niqe.md for why the two differ).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from mmagic.evaluation.metrics.base_sample_wise_metric import BaseSampleWiseMetric
from mmagic.registry import METRICS

from ...errors import InvalidInputError, InvalidOptionError
from .pyiqa_offline import (
    MissingWeightsError,
    build_pyiqa_metric,
    niqe_params_mat,  # noqa: F401
    offline_weights,
)

__all__ = [
    'PyIQAMetric',
    'MissingWeightsError',
    'offline_weights',
    'niqe_params_mat',
    'build_pyiqa_metric',
    'to_gray',
    'mmagic_niqe',
]

# pyiqa names whose input must hold at least 2 NIQE blocks of 96x96 (a covariance needs two samples).
_NIQE_LIKE = {'niqe': 96, 'niqe_matlab': 96, 'pi': 96}


# --------------------------------------------------------------------------------------------- image handling
def to_gray(img: Tensor, kind: str) -> Tensor:
    """Convert RGB images to one luma channel.

    Args:
        img (Tensor): RGB images in [0, 1], shape (B, 3, H, W).
        kind (str): 'Y' = BT.601 luma of YCbCr (16..235 range, as MATLAB's rgb2ycbcr and MMagic) or 'gray' =
            0.299 R + 0.587 G + 0.114 B (= Y of YIQ, cv2's gray).

    Returns:
        Tensor: Luma images in [0, 1], shape (B, 1, H, W).
    """
    if kind.lower() == 'y':
        w, b = img.new_tensor([65.481, 128.553, 24.966]) / 255.0, 16.0 / 255.0
    elif kind.lower() == 'gray':
        w, b = img.new_tensor([0.299, 0.587, 0.114]), 0.0
    else:
        raise InvalidOptionError(f"convert_to must be None, 'Y' or 'gray', got {kind!r}")
    return (img * w.view(1, 3, 1, 1)).sum(1, keepdim=True) + b


def mmagic_niqe(gray: Tensor) -> Tensor:
    """MMagic's NIQE code (numpy, float32 image path) on gray images.

    Args:
        gray (Tensor): Gray images in [0, 1], shape (B, 1, H, W).

    Returns:
        Tensor: NIQE of each image, float64, shape (B,).
    """
    from mmagic.evaluation.metrics.niqe import niqe

    out = [float(niqe(g[0].double().cpu().numpy() * 255.0, crop_border=0, input_order='HW')) for g in gray]
    return torch.tensor(out, dtype=torch.float64)


@METRICS.register_module()
class PyIQAMetric(BaseSampleWiseMetric):
    """A pyiqa metric evaluated on MMagic data samples (``output.pred_img`` against ``gt_img``).

    Args:
        metric_name (str): pyiqa's name ('niqe', 'pi', 'lpips', 'musiq', 'maniqa', 'psnr', 'ssim', ...). Whether
            it is full-reference is read from pyiqa's own registry.
        pretrained_model_path (str, optional): Local checkpoint of the metric itself (pyiqa's
            ``pretrained_model_path``). Default: None.
        weight_files (dict[str, str], optional): {file name pyiqa would download: local path}, for any further
            file (backbones, PI's NRQM). Default: None.
        backbone_path (str, optional): Local file of an ImageNet backbone (torchvision / timm) the metric builds.
            Default: None.
        metric_options (dict, optional): Further keyword arguments of the pyiqa network (e.g.
            ``dict(color_space='ycbcr')``). Default: None.
        niqe_impl (str): 'pyiqa' or 'mmagic' (metric_name 'niqe' only): which NIQE code computes the score.
            Default: 'pyiqa'.
        gt_key (str): Data-sample field of the GT image. Default: 'gt_img'.
        pred_key (str): Data-sample field of the prediction. Default: 'pred_img'.
        crop_border (int): Pixels removed on every side before the metric. Default: 0.
        convert_to (str, optional): None (RGB goes to pyiqa, which applies its own colour handling), 'Y' (BT.601
            luma of YCbCr) or 'gray' (0.299/0.587/0.114); the metric then sees a single channel. Default: None.
        input_range (float): Value of white in the data samples; inputs are divided by it, so the metric sees
            [0, 1]. Values beyond 5 % outside the range are an error, small excursions (unclamped model output)
            are clamped. Default: 255.
        channel_order (str): 'bgr' or 'rgb', channel order of the data-sample images. MMagic's test loop hands
            metrics BGR images whatever the loading order (its DataPreprocessor converts ``gt_img`` and the
            destructed ``pred_img`` to BGR), hence the default; use 'rgb' for RGB tensors passed directly.
            Default: 'bgr'.
        input_order (str): 'CHW' (MMagic data samples) or 'HWC'. Default: 'CHW'.
        device (str, optional): Where the metric runs; None = the evaluated model's device (cpu if unknown).
            Default: None.
        metric_key (str, optional): Name of the result. Default: None (upper-cased metric_name, with '_MMAGIC'
            appended for niqe_impl 'mmagic').
        collect_device (str): Device used to collect results across processes. Default: 'cpu'.
        prefix (str, optional): Prefix of the metric names. Default: None.
    """

    default_prefix: Optional[str] = ''  # no prefix unless asked (and no MMEngine warning about it)

    def __init__(
        self,
        metric_name: str,
        pretrained_model_path: Optional[str] = None,
        weight_files: Optional[Dict[str, str]] = None,
        backbone_path: Optional[str] = None,
        metric_options: Optional[dict] = None,
        niqe_impl: str = 'pyiqa',
        gt_key: str = 'gt_img',
        pred_key: str = 'pred_img',
        crop_border: int = 0,
        convert_to: Optional[str] = None,
        input_range: float = 255.0,
        channel_order: str = 'bgr',
        input_order: str = 'CHW',
        device: Optional[str] = None,
        metric_key: Optional[str] = None,
        collect_device: str = 'cpu',
        prefix: Optional[str] = None,
    ) -> None:
        from pyiqa.default_model_configs import DEFAULT_CONFIGS

        if niqe_impl not in ('pyiqa', 'mmagic'):
            raise InvalidOptionError(f"niqe_impl must be 'pyiqa' or 'mmagic', got {niqe_impl!r}")
        if niqe_impl == 'mmagic' and metric_name != 'niqe':
            raise InvalidOptionError(f"niqe_impl='mmagic' applies to metric_name='niqe' only, not {metric_name!r}")
        if convert_to is not None and convert_to.lower() not in ('y', 'gray'):
            raise InvalidOptionError(f"convert_to must be None, 'Y' or 'gray', got {convert_to!r}")
        if channel_order.lower() not in ('rgb', 'bgr') or input_order not in ('CHW', 'HWC'):
            raise InvalidOptionError(f'bad channel_order {channel_order!r} / input_order {input_order!r}')
        if crop_border < 0 or input_range <= 0:
            raise InvalidOptionError(f'crop_border must be >= 0 and input_range > 0, got {crop_border}, {input_range}')
        self.metric = metric_key or metric_name.upper() + ('_MMAGIC' if niqe_impl == 'mmagic' else '')
        super().__init__(gt_key=gt_key, pred_key=pred_key, collect_device=collect_device, prefix=prefix)
        self.metric_name, self.niqe_impl = metric_name, niqe_impl
        self.crop_border, self.convert_to, self.input_range = crop_border, convert_to, float(input_range)
        self.channel_order, self.input_order = channel_order.lower(), input_order
        self.device = device
        if niqe_impl == 'mmagic':
            self.iqa, self.full_ref, self.lower_better = None, False, True
        else:  # build now: missing weights fail at config-build time, not after an epoch of inference
            self.iqa = build_pyiqa_metric(
                metric_name, 'cpu', pretrained_model_path, weight_files, backbone_path, **(metric_options or {})
            )
            self.full_ref = DEFAULT_CONFIGS[metric_name]['metric_mode'] == 'FR'
            self.lower_better = bool(self.iqa.lower_better)

    # ------------------------------------------------------------------ MMagic hooks
    def prepare(self, module: torch.nn.Module, dataloader) -> None:
        """Record the dataset size (MMagic's evaluator) and, with ``device=None``, the model's device."""
        super().prepare(module, dataloader)
        if self.device is None:
            param = next(iter(module.parameters()), None)
            if param is not None:
                self._move(param.device)

    def evaluate(self, size: Optional[int] = None) -> dict:
        """MMagic's evaluator calls ``evaluate()`` after ``prepare``; MMEngine's passes the dataset size."""
        if size is None:
            size = getattr(self, 'size', None) or len(self.results)
        return super(BaseSampleWiseMetric, self).evaluate(size)

    def _move(self, device) -> None:
        if self.iqa is not None:
            self.iqa.to(device)
            self.iqa.device = torch.device(device)

    @property
    def _run_device(self) -> torch.device:
        return (
            torch.device(self.device)
            if self.device is not None
            else (self.iqa.dummy_param.device if self.iqa is not None else torch.device('cpu'))
        )

    # ------------------------------------------------------------------ computation
    def _image(self, value, what: str) -> Tensor:
        """A data-sample image -> (C, H, W) float RGB in [0, 1], cropped (C = 1 or 3)."""
        img = torch.as_tensor(np.ascontiguousarray(value) if isinstance(value, np.ndarray) else value)
        if img.ndim == 2:
            img = img[None] if self.input_order == 'CHW' else img[..., None]
        if img.ndim != 3:
            raise InvalidInputError(f'{self.metric}: {what} must be an image (C, H, W), got shape {tuple(img.shape)}')
        if self.input_order == 'HWC':
            img = img.permute(2, 0, 1)
        if img.shape[0] not in (1, 3):
            raise InvalidInputError(
                f'{self.metric}: {what} has {img.shape[0]} channels; 1 (gray) or 3 (RGB) expected '
                '(drop the alpha channel of RGBA images first)'
            )
        img = img.float() / self.input_range
        lo, hi = float(img.min()), float(img.max())
        if lo < -0.05 or hi > 1.05:
            raise InvalidInputError(
                f'{self.metric}: {what} values span [{lo * self.input_range:g}, '
                f'{hi * self.input_range:g}] but input_range={self.input_range:g} '
                '(16-bit data? set input_range)'
            )
        img = img.clamp(0, 1)
        if img.shape[0] == 3 and self.channel_order == 'bgr':
            img = img.flip(0)
        c = self.crop_border
        if c:
            if min(img.shape[1:]) <= 2 * c:
                raise InvalidInputError(
                    f'{self.metric}: crop_border={c} leaves nothing of a {tuple(img.shape[1:])} {what}'
                )
            img = img[:, c:-c, c:-c]
        if self.convert_to is not None:
            img = to_gray(img[None].expand(1, 3, -1, -1) if img.shape[0] == 1 else img[None], self.convert_to)[0]
        return img

    def _score(self, pred: Tensor, gt: Optional[Tensor]) -> Tensor:
        """(B, C, H, W) batches in [0, 1] -> (B,) float64 scores."""
        h, w = pred.shape[-2:]
        need = _NIQE_LIKE.get(self.metric_name)
        if need and (h < need or w < need or (h // need) * (w // need) < 2):
            raise InvalidInputError(
                f'{self.metric}: NIQE fits a Gaussian to {need}x{need} blocks and needs at '
                f'least 2 of them; the image is {h}x{w} after crop_border'
            )
        if self.niqe_impl == 'mmagic':
            return mmagic_niqe(pred if pred.shape[1] == 1 else to_gray(pred, 'gray'))
        dev = self._run_device
        if self.iqa.dummy_param.device != dev:
            self._move(dev)
        try:
            with torch.no_grad():
                out = self.iqa(pred.to(dev), gt.to(dev)) if self.full_ref else self.iqa(pred.to(dev))
        except (RuntimeError, ValueError, IndexError, AssertionError) as err:
            raise RuntimeError(
                f"pyiqa metric '{self.metric_name}' failed on a batch of shape {tuple(pred.shape)}: {err}"
            ) from err
        return out.detach().double().reshape(-1).cpu()

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Score a batch; images of equal size go through pyiqa together."""
        preds, gts = [], []
        for i, sample in enumerate(data_samples):
            sample = sample.to_dict() if hasattr(sample, 'to_dict') else sample
            output = sample.get('output', sample)
            output = output.to_dict() if hasattr(output, 'to_dict') else output
            if self.pred_key not in output:
                raise KeyError(f"{self.metric}: data sample {i} has no output '{self.pred_key}'")
            preds.append(self._image(output[self.pred_key], self.pred_key))
            if self.full_ref:
                gt = sample.get(self.gt_key, output.get(self.gt_key))
                if gt is None:
                    raise KeyError(
                        f"{self.metric}: full-reference metric '{self.metric_name}' needs "
                        f"'{self.gt_key}' in every data sample (is a GT folder configured?)"
                    )
                gts.append(self._image(gt, self.gt_key))
                if gts[-1].shape != preds[-1].shape:
                    raise ValueError(
                        f'{self.metric}: {self.pred_key} {tuple(preds[-1].shape)} and '
                        f'{self.gt_key} {tuple(gts[-1].shape)} differ in shape'
                    )
        scores = [0.0] * len(preds)
        groups: Dict[tuple, List[int]] = {}
        for i, p in enumerate(preds):
            groups.setdefault(tuple(p.shape), []).append(i)
        for idx in groups.values():
            batch = torch.stack([preds[i] for i in idx])
            ref = torch.stack([gts[i] for i in idx]) if self.full_ref else None
            for i, s in zip(idx, self._score(batch, ref).tolist()):
                scores[i] = s
        self.results.extend({self.metric: s} for s in scores)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Mean over images."""
        return {self.metric: float(np.mean([r[self.metric] for r in results]))}
