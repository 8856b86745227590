"""Any pyiqa metric (NIQE, PI, LPIPS, MUSIQ, MANIQA, PSNR, ...) as an MMagic metric, strictly offline.

pyiqa downloads weights on first use; here nothing may touch the network. While a pyiqa metric is built,
:func:`offline_weights` replaces every download entry point (pyiqa's ``load_file_from_url``, torch hub /
torchvision ``load_state_dict_from_url``, timm's Hugging Face download, and, as a last guard, socket connects):
a requested file is served from ``weight_files`` / ``backbone_path`` / the existing cache, or the build fails
with :class:`MissingWeightsError` naming the file, its URL and where to put it.

NIQE works out of the box: pyiqa's NIQE reads ``mu_prisparam`` / ``cov_prisparam`` from a ``.mat`` file, which
:func:`niqe_params_mat` writes from the pristine-model parameters MMagic ships (``niqe_pris_params.npz``).
``niqe_impl='mmagic'`` runs MMagic's own NIQE instead (see docs/niqe.md for why the two differ).
"""
from __future__ import annotations

import contextlib
import os
import os.path as osp
import socket
import sys
import tempfile
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from mmagic.evaluation.metrics.base_sample_wise_metric import BaseSampleWiseMetric
from mmagic.registry import METRICS

__all__ = ['PyIQAMetric', 'MissingWeightsError', 'offline_weights', 'niqe_params_mat', 'build_pyiqa_metric',
           'to_gray', 'mmagic_niqe']

# pyiqa names whose input must hold at least 2 NIQE blocks of 96x96 (a covariance needs two samples).
_NIQE_LIKE = {'niqe': 96, 'niqe_matlab': 96, 'pi': 96}
_NIQE_PYIQA_FILE = 'niqe_modelparameters.mat'  # the file pyiqa's NIQE (and PI) would download


class MissingWeightsError(RuntimeError):
    """A pretrained file a metric needs is neither given nor cached; nothing is downloaded.

    (A RuntimeError, not an OSError: network code wraps OSErrors into its own, less telling, errors.)"""


# --------------------------------------------------------------------------------------------- offline guard
def _cache_root() -> str:
    return torch.hub.get_dir()


def _missing(what: str, fname: str, url: str, cache_path: str) -> MissingWeightsError:
    return MissingWeightsError(
        f"{what} needs the pretrained file '{fname}' (published at {url}), which is not "
        f'available locally, and iter-mm never downloads. Either put it at {cache_path} (the cache pyiqa/torch '
        f"use), or pass weight_files={{'{fname}': '/path/to/{fname}'}} (backbone_path=... for an ImageNet "
        f'backbone, pretrained_model_path=... for the metric\'s own checkpoint). Other files may be asked for '
        f'once this one is in place.')


@contextlib.contextmanager
def offline_weights(what: str = 'this build', weight_files: Optional[Dict[str, str]] = None,
                    backbone_path: Optional[str] = None) -> Iterator[List[str]]:
    """Serve pretrained-file requests from local paths only while the block runs.

    Args:
        what: what is being built, for error messages (e.g. "pyiqa metric 'lpips'").
        weight_files: file name (basename of the URL, e.g. ``'LPIPS_v0.1_alex-df73285e.pth'``) -> local path.
        backbone_path: local file served for torchvision / timm backbone requests without a ``weight_files`` entry.

    Yields:
        the list of local paths actually served (filled while the block runs).
    """
    files = dict(weight_files or {})
    for name, path in list(files.items()) + ([('backbone_path', backbone_path)] if backbone_path else []):
        if not osp.isfile(path):
            raise FileNotFoundError(f"{what}: {name} -> '{path}' does not exist")
    served: List[str] = []

    def resolve(url: str, fname: Optional[str], cache_dir: str, backbone: bool) -> str:
        fname = fname or osp.basename(url.split('?')[0])
        cached = osp.abspath(osp.join(cache_dir, fname))
        for path in (files.get(fname), backbone_path if backbone else None, cached):
            if path and osp.isfile(path):
                served.append(path)
                return path
        raise _missing(what, fname, url, cached)

    from pyiqa.utils import download_util

    def load_file_from_url(url, model_dir=None, progress=True, file_name=None):  # pyiqa's signature
        return resolve(url, file_name, model_dir or download_util.DEFAULT_CACHE_DIR, backbone=False)

    def load_state_dict_from_url(url, model_dir=None, map_location=None, progress=True, check_hash=False,
                                 file_name=None, weights_only=False):  # torch.hub's signature
        path = resolve(url, file_name, model_dir or osp.join(_cache_root(), 'checkpoints'), backbone=True)
        return torch.load(path, map_location=map_location, weights_only=weights_only)

    def download_url_to_file(url, dst, *args, **kwargs):
        raise _missing(what, osp.basename(dst), url, dst)

    def hf_hub_download(repo_id, filename, *args, **kwargs):
        for path in (files.get(filename), backbone_path):
            if path:
                served.append(path)
                return path
        import huggingface_hub
        kwargs.pop('local_files_only', None)
        try:
            path = huggingface_hub.hf_hub_download(repo_id, filename, *args, local_files_only=True, **kwargs)
        except Exception:  # noqa: BLE001 - any lookup failure means "not cached"
            cache = huggingface_hub.constants.HF_HUB_CACHE
            raise _missing(what, filename, f'https://huggingface.co/{repo_id}', f'the Hugging Face cache '
                           f'{cache} (repo {repo_id})') from None
        served.append(path)
        return path

    replacements = {'load_file_from_url': load_file_from_url, 'load_state_dict_from_url': load_state_dict_from_url,
                    'download_url_to_file': download_url_to_file, 'hf_hub_download': hf_hub_download}
    patched: List[Tuple[object, str, object]] = []
    prefixes = ('pyiqa', 'torchvision', 'timm', 'torch.hub')
    for mod_name, mod in list(sys.modules.items()):
        if mod is None or not mod_name.startswith(prefixes):
            continue
        for attr, fn in replacements.items():
            if callable(getattr(mod, attr, None)):
                patched.append((mod, attr, getattr(mod, attr)))
                setattr(mod, attr, fn)

    import urllib.request
    real = (socket.socket.connect, socket.getaddrinfo, urllib.request.urlopen)

    def no_urlopen(url, *args, **kwargs):  # other libraries' own downloaders (e.g. CLIP's)
        url = getattr(url, 'full_url', url)
        raise MissingWeightsError(f"{what} tried to download {url}; iter-mm never downloads: put "
                                  f"'{osp.basename(str(url).split('?')[0])}' where that library caches its "
                                  'weights, or give a local path through the metric options')

    def no_connect(sock, address):  # last guards: no network at all inside the block
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise MissingWeightsError(f'{what} tried to open a network connection to {address}; iter-mm '
                                      'never downloads (give the weights as local files)')
        return real[0](sock, address)

    def no_lookup(host, *args, **kwargs):
        if host not in (None, 'localhost', '127.0.0.1', '::1'):
            raise MissingWeightsError(f'{what} tried to look up the network host {host!r}; iter-mm never '
                                      'downloads (give the weights as local files)')
        return real[1](host, *args, **kwargs)

    socket.socket.connect, socket.getaddrinfo, urllib.request.urlopen = no_connect, no_lookup, no_urlopen
    try:
        yield served
    finally:
        socket.socket.connect, socket.getaddrinfo, urllib.request.urlopen = real
        for mod, attr, orig in reversed(patched):
            setattr(mod, attr, orig)


def niqe_params_mat(cache_dir: Optional[str] = None) -> str:
    """Write MMagic's pristine NIQE parameters in the ``.mat`` layout pyiqa's NIQE reads; return the path.

    The file is written once into ``cache_dir`` (default ``$ITER_MM_CACHE`` or ``~/.cache/iter_mm``; a temp dir
    when that is not writable) under its own name, so it never shadows pyiqa's downloaded file.
    """
    import scipy.io
    import mmagic.evaluation.metrics as mm_metrics
    src = osp.join(osp.dirname(mm_metrics.__file__), 'niqe_pris_params.npz')
    params = np.load(src)
    mu, cov = params['mu_pris_param'].astype(np.float64), params['cov_pris_param'].astype(np.float64)
    candidates = [cache_dir] if cache_dir else [os.environ.get('ITER_MM_CACHE'),
                                                osp.join(osp.expanduser('~'), '.cache', 'iter_mm'),
                                                osp.join(tempfile.gettempdir(), 'iter_mm_cache')]
    for root in filter(None, candidates):
        path = osp.join(root, 'niqe_pris_params_from_mmagic.mat')
        try:
            if osp.isfile(path):
                old = scipy.io.loadmat(path)
                if np.array_equal(np.ravel(old['mu_prisparam']), np.ravel(mu)) and np.array_equal(
                        old['cov_prisparam'], cov):
                    return path
            os.makedirs(root, exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix='.mat', dir=root)
            os.close(fd)
            scipy.io.savemat(tmp, {'mu_prisparam': mu, 'cov_prisparam': cov})
            os.replace(tmp, path)  # atomic: concurrent builders never see half a file
            return path
        except OSError:
            continue
    raise OSError(f'could not write the NIQE parameter file into any of {candidates}')


def build_pyiqa_metric(name: str, device: str = 'cpu', pretrained_model_path: Optional[str] = None,
                       weight_files: Optional[Dict[str, str]] = None, backbone_path: Optional[str] = None,
                       **metric_options) -> torch.nn.Module:
    """``pyiqa.create_metric`` without any download (see :func:`offline_weights`); returns pyiqa's model."""
    import pyiqa
    from pyiqa.default_model_configs import DEFAULT_CONFIGS
    if name not in DEFAULT_CONFIGS:
        raise KeyError(f"unknown pyiqa metric '{name}'; available: {', '.join(pyiqa.list_models())}")
    weight_files = dict(weight_files or {})
    if pretrained_model_path is not None:
        if not osp.isfile(pretrained_model_path):
            raise FileNotFoundError(f"pyiqa metric '{name}': pretrained_model_path '{pretrained_model_path}' "
                                    'does not exist')
        metric_options['pretrained_model_path'] = pretrained_model_path
    pyiqa_cached = osp.join(_cache_root(), 'pyiqa', _NIQE_PYIQA_FILE)
    if DEFAULT_CONFIGS[name]['metric_opts']['type'] in ('NIQE', 'PI') and not osp.isfile(pyiqa_cached):
        weight_files.setdefault(_NIQE_PYIQA_FILE, niqe_params_mat())  # same pristine model, MMagic's copy
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        with offline_weights(f"pyiqa metric '{name}'", weight_files, backbone_path):
            try:
                model = pyiqa.create_metric(name, device=torch.device(device), **metric_options)
            except TypeError as err:
                if 'pretrained_model_path' in str(err):
                    raise TypeError(f"pyiqa metric '{name}' takes no pretrained_model_path; give its files "
                                    "through weight_files={'<file name>': path}") from err
                raise
    finally:  # pyiqa flips these process-wide; the model being evaluated should not pay for it
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
    return model


# --------------------------------------------------------------------------------------------- image handling
def to_gray(img: Tensor, kind: str) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) in [0, 1]: 'Y' = BT.601 luma of YCbCr (16..235 range, as
    MATLAB's rgb2ycbcr and MMagic), 'gray' = 0.299 R + 0.587 G + 0.114 B (= Y of YIQ, cv2's gray)."""
    if kind.lower() == 'y':
        w, b = img.new_tensor([65.481, 128.553, 24.966]) / 255., 16. / 255.
    elif kind.lower() == 'gray':
        w, b = img.new_tensor([0.299, 0.587, 0.114]), 0.
    else:
        raise ValueError(f"convert_to must be None, 'Y' or 'gray', got {kind!r}")
    return (img * w.view(1, 3, 1, 1)).sum(1, keepdim=True) + b


def mmagic_niqe(gray: Tensor) -> Tensor:
    """MMagic's NIQE (numpy, float32 image path) on (B, 1, H, W) gray images in [0, 1]; returns (B,)."""
    from mmagic.evaluation.metrics.niqe import niqe
    out = [float(niqe(g[0].double().cpu().numpy() * 255., crop_border=0, input_order='HW')) for g in gray]
    return torch.tensor(out, dtype=torch.float64)


@METRICS.register_module()
class PyIQAMetric(BaseSampleWiseMetric):
    """A pyiqa metric evaluated on MMagic data samples (``output.pred_img`` against ``gt_img``).

    Args:
        metric_name: pyiqa's name ('niqe', 'pi', 'lpips', 'musiq', 'maniqa', 'psnr', 'ssim', ...). Whether it is
            full-reference is read from pyiqa's own registry.
        pretrained_model_path: local checkpoint of the metric itself (pyiqa's ``pretrained_model_path``).
        weight_files: {file name pyiqa would download: local path}, for any further file (backbones, PI's NRQM).
        backbone_path: local file for an ImageNet backbone (torchvision / timm) the metric builds.
        metric_options: further keyword arguments of the pyiqa network (e.g. ``dict(color_space='ycbcr')``).
        niqe_impl: 'pyiqa' or 'mmagic' (only for metric_name 'niqe'): which NIQE code computes the score.
        gt_key / pred_key: data-sample fields (MMagic conventions).
        crop_border: pixels removed on every side before the metric.
        convert_to: None (RGB goes to pyiqa, which applies its own colour handling), 'Y' (BT.601 luma of
            YCbCr) or 'gray' (0.299/0.587/0.114); the metric then sees a single channel.
        input_range: value of white in the data samples (255 for MMagic's [0, 255] images); inputs are divided
            by it, so the metric sees [0, 1]. Values beyond 5 % outside the range are an error, small
            excursions (unclamped model output) are clamped.
        channel_order: 'bgr' or 'rgb', channel order of the data-sample images. MMagic's test loop hands metrics
            BGR images whatever the loading order (its DataPreprocessor converts ``gt_img`` and the destructed
            ``pred_img`` to BGR), hence the default; use 'rgb' for RGB tensors passed directly.
        input_order: 'CHW' (MMagic data samples) or 'HWC'.
        device: where the metric runs; None = the evaluated model's device (cpu if unknown).
        metric_key: name of the result (default: upper-cased metric_name, '_MMAGIC' appended for niqe_impl
            'mmagic').
        collect_device / prefix: as in every MMEngine metric.
    """

    default_prefix: Optional[str] = ''  # no prefix unless asked (and no MMEngine warning about it)

    def __init__(self,
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
                 input_range: float = 255.,
                 channel_order: str = 'bgr',
                 input_order: str = 'CHW',
                 device: Optional[str] = None,
                 metric_key: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        from pyiqa.default_model_configs import DEFAULT_CONFIGS
        if niqe_impl not in ('pyiqa', 'mmagic'):
            raise ValueError(f"niqe_impl must be 'pyiqa' or 'mmagic', got {niqe_impl!r}")
        if niqe_impl == 'mmagic' and metric_name != 'niqe':
            raise ValueError(f"niqe_impl='mmagic' applies to metric_name='niqe' only, not {metric_name!r}")
        if convert_to is not None and convert_to.lower() not in ('y', 'gray'):
            raise ValueError(f"convert_to must be None, 'Y' or 'gray', got {convert_to!r}")
        if channel_order.lower() not in ('rgb', 'bgr') or input_order not in ('CHW', 'HWC'):
            raise ValueError(f'bad channel_order {channel_order!r} / input_order {input_order!r}')
        if crop_border < 0 or input_range <= 0:
            raise ValueError(f'crop_border must be >= 0 and input_range > 0, got {crop_border}, {input_range}')
        self.metric = metric_key or metric_name.upper() + ('_MMAGIC' if niqe_impl == 'mmagic' else '')
        super().__init__(gt_key=gt_key, pred_key=pred_key, collect_device=collect_device, prefix=prefix)
        self.metric_name, self.niqe_impl = metric_name, niqe_impl
        self.crop_border, self.convert_to, self.input_range = crop_border, convert_to, float(input_range)
        self.channel_order, self.input_order = channel_order.lower(), input_order
        self.device = device
        if niqe_impl == 'mmagic':
            self.iqa, self.full_ref, self.lower_better = None, False, True
        else:  # build now: missing weights fail at config-build time, not after an epoch of inference
            self.iqa = build_pyiqa_metric(metric_name, 'cpu', pretrained_model_path, weight_files,
                                          backbone_path, **(metric_options or {}))
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
        return torch.device(self.device) if self.device is not None else (
            self.iqa.dummy_param.device if self.iqa is not None else torch.device('cpu'))

    # ------------------------------------------------------------------ computation
    def _image(self, value, what: str) -> Tensor:
        """A data-sample image -> (C, H, W) float RGB in [0, 1], cropped (C = 1 or 3)."""
        img = torch.as_tensor(np.ascontiguousarray(value) if isinstance(value, np.ndarray) else value)
        if img.ndim == 2:
            img = img[None] if self.input_order == 'CHW' else img[..., None]
        if img.ndim != 3:
            raise ValueError(f'{self.metric}: {what} must be an image (C, H, W), got shape {tuple(img.shape)}')
        if self.input_order == 'HWC':
            img = img.permute(2, 0, 1)
        if img.shape[0] not in (1, 3):
            raise ValueError(f'{self.metric}: {what} has {img.shape[0]} channels; 1 (gray) or 3 (RGB) expected '
                             '(drop the alpha channel of RGBA images first)')
        img = img.float() / self.input_range
        lo, hi = float(img.min()), float(img.max())
        if lo < -0.05 or hi > 1.05:
            raise ValueError(f'{self.metric}: {what} values span [{lo * self.input_range:g}, '
                             f'{hi * self.input_range:g}] but input_range={self.input_range:g} '
                             '(16-bit data? set input_range)')
        img = img.clamp(0, 1)
        if img.shape[0] == 3 and self.channel_order == 'bgr':
            img = img.flip(0)
        c = self.crop_border
        if c:
            if min(img.shape[1:]) <= 2 * c:
                raise ValueError(f'{self.metric}: crop_border={c} leaves nothing of a {tuple(img.shape[1:])} '
                                 f'{what}')
            img = img[:, c:-c, c:-c]
        if self.convert_to is not None:
            img = to_gray(img[None].expand(1, 3, -1, -1) if img.shape[0] == 1 else img[None], self.convert_to)[0]
        return img

    def _score(self, pred: Tensor, gt: Optional[Tensor]) -> Tensor:
        """(B, C, H, W) batches in [0, 1] -> (B,) float64 scores."""
        h, w = pred.shape[-2:]
        need = _NIQE_LIKE.get(self.metric_name)
        if need and (h < need or w < need or (h // need) * (w // need) < 2):
            raise ValueError(f'{self.metric}: NIQE fits a Gaussian to {need}x{need} blocks and needs at least 2 of '
                             f'them; the image is {h}x{w} after crop_border')
        if self.niqe_impl == 'mmagic':
            return mmagic_niqe(pred if pred.shape[1] == 1 else to_gray(pred, 'gray'))
        dev = self._run_device
        if self.iqa.dummy_param.device != dev:
            self._move(dev)
        try:
            with torch.no_grad():
                out = self.iqa(pred.to(dev), gt.to(dev)) if self.full_ref else self.iqa(pred.to(dev))
        except (RuntimeError, ValueError, IndexError, AssertionError) as err:
            raise RuntimeError(f"pyiqa metric '{self.metric_name}' failed on a batch of shape "
                               f'{tuple(pred.shape)}: {err}') from err
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
                    raise KeyError(f"{self.metric}: full-reference metric '{self.metric_name}' needs "
                                   f"'{self.gt_key}' in every data sample (is a GT folder configured?)")
                gts.append(self._image(gt, self.gt_key))
                if gts[-1].shape != preds[-1].shape:
                    raise ValueError(f'{self.metric}: {self.pred_key} {tuple(preds[-1].shape)} and '
                                     f'{self.gt_key} {tuple(gts[-1].shape)} differ in shape')
        scores = [0.] * len(preds)
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
