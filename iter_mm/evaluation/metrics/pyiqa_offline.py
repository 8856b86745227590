"""Strictly offline pretrained files for pyiqa metrics (and any model build that must not download).

While a pyiqa metric is built, :func:`offline_weights` replaces every download entry point (pyiqa's
``load_file_from_url``, torch hub / torchvision ``load_state_dict_from_url``, timm's Hugging Face download, and,
as a last guard, socket connects): a requested file is served from ``weight_files`` / ``backbone_path`` / the
existing cache, or the build fails with :class:`MissingWeightsError` naming the file, its URL and where to put
it. :func:`niqe_params_mat` writes the NIQE pristine model MMagic ships in the layout pyiqa reads.
"""

from __future__ import annotations

import contextlib
import os
import os.path as osp
import socket
import sys
import tempfile
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

from ...errors import InvalidOptionError, MissingDataError

__all__ = ['MissingWeightsError', 'offline_weights', 'niqe_params_mat', 'build_pyiqa_metric']

_NIQE_PYIQA_FILE = 'niqe_modelparameters.mat'  # the file pyiqa's NIQE (and PI) would download


class MissingWeightsError(MissingDataError, RuntimeError):
    """A pretrained file a metric needs is neither given nor cached; nothing is downloaded.

    (Also a RuntimeError, as before the hierarchy. The network guards below replace ``urlopen`` and the Hugging
    Face download as well as the socket calls, so the error reaches the caller unwrapped.)"""


# --------------------------------------------------------------------------------------------- offline guard
def _cache_root() -> str:
    return torch.hub.get_dir()


def _missing(what: str, fname: str, url: str, cache_path: str) -> MissingWeightsError:
    return MissingWeightsError(
        f"{what} needs the pretrained file '{fname}' (published at {url}), which is not "
        f'available locally, and iter-mm never downloads. Either put it at {cache_path} (the cache pyiqa/torch '
        f"use), or pass weight_files={{'{fname}': '/path/to/{fname}'}} (backbone_path=... for an ImageNet "
        f"backbone, pretrained_model_path=... for the metric's own checkpoint). Other files may be asked for "
        f'once this one is in place.'
    )


@contextlib.contextmanager
def offline_weights(
    what: str = 'this build', weight_files: Optional[Dict[str, str]] = None, backbone_path: Optional[str] = None
) -> Iterator[List[str]]:
    """Serve pretrained-file requests from local paths only while the block runs.

    Args:
        what (str): What is being built, for error messages (e.g. "pyiqa metric 'lpips'"). Default: 'this build'.
        weight_files (dict[str, str], optional): File name (basename of the URL, e.g.
            ``'LPIPS_v0.1_alex-df73285e.pth'``) -> local path. Default: None.
        backbone_path (str, optional): Local file served for torchvision / timm backbone requests without a
            ``weight_files`` entry. Default: None.

    Yields:
        list[str]: The local paths actually served (filled while the block runs).
    """
    files = dict(weight_files or {})
    for name, path in list(files.items()) + ([('backbone_path', backbone_path)] if backbone_path else []):
        if not osp.isfile(path):
            raise MissingDataError(f"{what}: {name} -> '{path}' does not exist")
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

    def load_state_dict_from_url(
        url, model_dir=None, map_location=None, progress=True, check_hash=False, file_name=None, weights_only=False
    ):  # torch.hub's signature
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
            raise _missing(
                what, filename, f'https://huggingface.co/{repo_id}', f'the Hugging Face cache {cache} (repo {repo_id})'
            ) from None
        served.append(path)
        return path

    replacements = {
        'load_file_from_url': load_file_from_url,
        'load_state_dict_from_url': load_state_dict_from_url,
        'download_url_to_file': download_url_to_file,
        'hf_hub_download': hf_hub_download,
    }
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
        raise MissingWeightsError(
            f'{what} tried to download {url}; iter-mm never downloads: put '
            f"'{osp.basename(str(url).split('?')[0])}' where that library caches its "
            'weights, or give a local path through the metric options'
        )

    def no_connect(sock, address):  # last guards: no network at all inside the block
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise MissingWeightsError(
                f'{what} tried to open a network connection to {address}; iter-mm '
                'never downloads (give the weights as local files)'
            )
        return real[0](sock, address)

    def no_lookup(host, *args, **kwargs):
        if host not in (None, 'localhost', '127.0.0.1', '::1'):
            raise MissingWeightsError(
                f'{what} tried to look up the network host {host!r}; iter-mm never '
                'downloads (give the weights as local files)'
            )
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

    The file is written once under its own name, so it never shadows pyiqa's downloaded file.

    Args:
        cache_dir (str, optional): Folder of the file. Default: None (``$ITER_MM_CACHE`` or ``~/.cache/iter_mm``;
            a temporary folder when that is not writable).

    Returns:
        str: Path of the ``.mat`` file.
    """
    import scipy.io

    import mmagic.evaluation.metrics as mm_metrics

    src = osp.join(osp.dirname(mm_metrics.__file__), 'niqe_pris_params.npz')
    params = np.load(src)
    mu, cov = params['mu_pris_param'].astype(np.float64), params['cov_pris_param'].astype(np.float64)
    candidates = (
        [cache_dir]
        if cache_dir
        else [
            os.environ.get('ITER_MM_CACHE'),
            osp.join(osp.expanduser('~'), '.cache', 'iter_mm'),
            osp.join(tempfile.gettempdir(), 'iter_mm_cache'),
        ]
    )
    for root in filter(None, candidates):
        path = osp.join(root, 'niqe_pris_params_from_mmagic.mat')
        try:
            if osp.isfile(path):
                old = scipy.io.loadmat(path)
                if np.array_equal(np.ravel(old['mu_prisparam']), np.ravel(mu)) and np.array_equal(
                    old['cov_prisparam'], cov
                ):
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


def build_pyiqa_metric(
    name: str,
    device: str = 'cpu',
    pretrained_model_path: Optional[str] = None,
    weight_files: Optional[Dict[str, str]] = None,
    backbone_path: Optional[str] = None,
    **metric_options,
) -> torch.nn.Module:
    """``pyiqa.create_metric`` without any download (see :func:`offline_weights`).

    Args:
        name (str): pyiqa's metric name.
        device (str): Device of the metric. Default: 'cpu'.
        pretrained_model_path (str, optional): Local checkpoint of the metric itself. Default: None.
        weight_files (dict[str, str], optional): {file name pyiqa would download: local path}. Default: None.
        backbone_path (str, optional): Local file of an ImageNet backbone. Default: None.
        **metric_options: Further keyword arguments of ``pyiqa.create_metric``.

    Returns:
        torch.nn.Module: pyiqa's metric model.
    """
    import pyiqa
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    if name not in DEFAULT_CONFIGS:
        raise KeyError(f"unknown pyiqa metric '{name}'; available: {', '.join(pyiqa.list_models())}")
    weight_files = dict(weight_files or {})
    if pretrained_model_path is not None:
        if not osp.isfile(pretrained_model_path):
            raise MissingDataError(
                f"pyiqa metric '{name}': pretrained_model_path '{pretrained_model_path}' does not exist"
            )
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
                    raise InvalidOptionError(
                        f"pyiqa metric '{name}' takes no pretrained_model_path; give its files "
                        "through weight_files={'<file name>': path}"
                    ) from err
                raise
    finally:  # pyiqa flips these process-wide; the model being evaluated should not pay for it
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
    return model
