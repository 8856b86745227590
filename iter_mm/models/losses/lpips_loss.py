"""LPIPS-VGG loss (pyiqa 'lpips-vgg', v0.1) built offline from local weight files.

Used by both stages as the authors do (docs/faithfulness.md#loss-terms, #stage-i-training).
"""

import os.path as osp
from types import SimpleNamespace
from typing import Dict, List, Optional
from unittest import mock

import torch
import torch.nn as nn

from mmagic.registry import MODELS

from ...errors import MissingDataError

#: pyiqa's LPIPS v0.1 linear-layer weights for the VGG trunk (pyiqa's download name).
LPIPS_VGG_FILE = 'LPIPS_v0.1_vgg-a78928a0.pth'
#: torchvision's ImageNet VGG16 weights (VGG16_Weights.IMAGENET1K_V1).
VGG16_FILE = 'vgg16-397923af.pth'
_NUM_LIN = 5


def _cache_dirs() -> Dict[str, str]:
    """Where pyiqa and torchvision keep these files once downloaded (searched, never written)."""
    hub = torch.hub.get_dir()
    return {LPIPS_VGG_FILE: osp.join(hub, 'pyiqa'), VGG16_FILE: osp.join(hub, 'checkpoints')}


def _resolve(path: Optional[str], name: str) -> Optional[str]:
    """An explicit path must exist; None falls back to the pyiqa/torchvision cache file if present."""
    if path is not None:
        path = osp.expanduser(str(path))
        if not osp.isfile(path):
            raise MissingDataError(f'LPIPSLoss: weight file not found: {path} (expected {name})')
        return path
    cached = osp.join(_cache_dirs()[name], name)
    return cached if osp.isfile(cached) else None


def _missing_message(names: List[str]) -> str:
    dirs = _cache_dirs()
    where = '; '.join(
        f'{n}: pass it as `{"lpips_path" if n == LPIPS_VGG_FILE else "vgg_path"}` or put it at {osp.join(dirs[n], n)}'
        for n in names
    )
    return (
        f'LPIPSLoss needs the pretrained weight file(s) {", ".join(names)} and downloads nothing. '
        f"{where}. (They are pyiqa's LPIPS v0.1 VGG head and torchvision's ImageNet VGG16; "
        f'set loss_weight=0 or the loss to None to train without LPIPS.)'
    )


def _load_state(path: str) -> Dict[str, torch.Tensor]:
    """Read a state dict (plain, or under 'params' / 'state_dict'), with any 'module.' prefix stripped."""
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # corrupt / not a torch file
        raise RuntimeError(f'LPIPSLoss: cannot read weight file {path}: {exc}') from exc
    for key in ('params', 'state_dict'):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise RuntimeError(f'LPIPSLoss: {path} does not hold a state dict')
    return {(k[7:] if k.startswith('module.') else k): v for k, v in state.items()}


def _trunk_from_lpips_state(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """'net.slice{s}.{i}.{param}' (a full pyiqa LPIPS state) -> VGG16 features keys '{i}.{param}'."""
    return {k.split('.', 2)[2]: v for k, v in state.items() if k.startswith('net.slice')}


def build_lpips_vgg(lpips_path: Optional[str] = None, vgg_path: Optional[str] = None) -> nn.Module:
    """pyiqa's LPIPS(net='vgg', version='0.1') with weights from local files only, frozen, in eval mode.

    Args:
        lpips_path (str, optional): LPIPS v0.1 VGG head file (``lin{k}.model.1.weight``; it may also hold the VGG
            trunk as ``net.slice*``, a saved full pyiqa LPIPS). Default: None (pyiqa's cache).
        vgg_path (str, optional): torchvision VGG16 file (``features.*``), needed when ``lpips_path`` holds no
            trunk. Default: None (torch hub's cache).

    Returns:
        nn.Module: The frozen LPIPS network in eval mode.
    """
    from pyiqa.archs import lpips_arch
    from torchvision.models.vgg import cfgs, make_layers

    lpips_file = _resolve(lpips_path, LPIPS_VGG_FILE)
    lpips_state = _load_state(lpips_file) if lpips_file else None
    trunk = _trunk_from_lpips_state(lpips_state) if lpips_state else {}
    vgg_file = None
    if not trunk:
        vgg_file = _resolve(vgg_path, VGG16_FILE)
    missing = [n for n, f in ((LPIPS_VGG_FILE, lpips_file), (VGG16_FILE, vgg_file if not trunk else 1)) if f is None]
    if missing:
        raise MissingDataError(_missing_message(missing))
    if not trunk:
        trunk = {k[len('features.') :]: v for k, v in _load_state(vgg_file).items() if k.startswith('features.')}

    with torch.device('meta'):  # no random init: every tensor comes from the file
        features = make_layers(cfgs['D'], batch_norm=False)  # VGG16 conv trunk, no classifier
    try:
        features.load_state_dict(trunk, strict=True, assign=True)
    except RuntimeError as exc:
        raise RuntimeError(f'LPIPSLoss: {vgg_file or lpips_file} is not a VGG16 weight file: {exc}') from exc

    # pyiqa's trunk calls torchvision.models.vgg16(weights='IMAGENET1K_V1') (a download): hand it ours.
    with mock.patch.object(lpips_arch.models, 'vgg16', lambda *a, **k: SimpleNamespace(features=features)):
        net = lpips_arch.LPIPS(pretrained=False, net='vgg', version='0.1')

    heads = {}
    for k, v in lpips_state.items():
        name = k
        if k.startswith('lins.'):  # ModuleList alias of lin{k}
            idx, rest = k[len('lins.') :].split('.', 1)
            name = f'lin{idx}.{rest}'
        if name.startswith('lin'):
            heads[name] = v
    wanted = [f'lin{i}.model.1.weight' for i in range(_NUM_LIN)]
    absent = [k for k in wanted if k not in heads]
    if absent:
        raise RuntimeError(f'LPIPSLoss: {lpips_file} is not an LPIPS-VGG weight file (missing {absent})')
    own = net.state_dict()
    for k in wanted:
        if heads[k].shape != own[k].shape:
            raise RuntimeError(
                f'LPIPSLoss: {lpips_file}: {k} has shape {tuple(heads[k].shape)}, '
                f'expected {tuple(own[k].shape)} (LPIPS for AlexNet/SqueezeNet given?)'
            )
    net.load_state_dict({k: heads[k] for k in wanted}, strict=False)
    net.requires_grad_(False)
    return net.eval()


@MODELS.register_module()
class LPIPSLoss(nn.Module):
    """loss_weight * mean_b LPIPS-VGG(pred_b, target_b), inputs in [0, 1] (pyiqa 'lpips-vgg' as a loss).

    The network is frozen, always in eval mode (no dropout in its heads) and kept out of the model's
    state dict: its weights come from the files, so checkpoints neither carry nor require them.

    Args:
        loss_weight (float): Multiplier of the loss; 0 builds nothing (no weights needed) and returns 0.
            Default: 1.0.
        lpips_path (str, optional): LPIPS v0.1 VGG head file (``LPIPS_v0.1_vgg-a78928a0.pth``).
            Default: None (pyiqa's cache).
        vgg_path (str, optional): torchvision VGG16 file (``vgg16-397923af.pth``). Default: None (torch hub's
            cache).
    """

    def __init__(
        self, loss_weight: float = 1.0, lpips_path: Optional[str] = None, vgg_path: Optional[str] = None
    ) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.net = build_lpips_vgg(lpips_path, vgg_path) if loss_weight != 0 else None
        self.register_state_dict_post_hook(self._drop_net_keys)
        self.register_load_state_dict_pre_hook(self._fill_net_keys)

    @staticmethod
    def _drop_net_keys(module: 'LPIPSLoss', state_dict: dict, prefix: str, local_metadata: dict) -> None:
        for k in [k for k in state_dict if k.startswith(prefix + 'net.')]:
            del state_dict[k]

    @staticmethod
    def _fill_net_keys(module: 'LPIPSLoss', state_dict: dict, prefix: str, *args) -> None:
        # Loading a model state (which never holds these) keeps the file weights and reports nothing missing.
        if module.net is not None:
            for k, v in module.net.state_dict().items():
                state_dict.setdefault(prefix + 'net.' + k, v)

    def train(self, mode: bool = True) -> 'LPIPSLoss':
        """Switch mode; the frozen LPIPS network always stays in eval mode.

        Args:
            mode (bool): training mode of the loss module. Default: True.

        Returns:
            LPIPSLoss: ``self``.
        """
        super().train(mode)
        if self.net is not None:
            self.net.eval()
        return self

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            pred (torch.Tensor): Predicted images in [0, 1], shape (B, 3, H, W).
            target (torch.Tensor): Target images of the same shape.

        Returns:
            torch.Tensor: The scalar loss.
        """
        if pred.shape != target.shape or pred.dim() != 4 or pred.shape[1] != 3:
            raise ValueError(
                f'pred and target must be (B, 3, H, W) of equal shape, got '
                f'{tuple(pred.shape)} and {tuple(target.shape)}'
            )
        if self.net is None:
            return pred.new_zeros(())
        return self.loss_weight * self.net(pred, target, normalize=True).mean()
