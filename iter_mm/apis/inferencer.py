"""ITER inside MMagic's Inferencer API.

    from mmagic.apis import MMagicInferencer
    import iter_mm  # registers 'iter' with MMagicInferencer
    sr = MMagicInferencer('iter', model_config='configs/iter/iter_x4_realsr.py', model_ckpt='iter_x4.pth',
                          extra_parameters=dict(alpha=0.7, steps=8, seed=0))
    sr.infer(img='photo.jpg', result_out_dir='out/photo.png')

``ITERInferencer`` can also be used directly with the same arguments as MMagic's inferencers.
"""
import os.path as osp
import warnings
from typing import Dict, List, Optional

import numpy as np
import torch
from mmagic.apis.inferencers import ImageSuperResolutionInferencer, Inferencers
from mmagic.apis.mmagic_inferencer import MMagicInferencer
from mmagic.registry import MODELS
from mmagic.structures import DataSample
from mmengine.runner import load_checkpoint

from ..utils.config import inference_model_cfg, load_config
from ..utils.image_io import read_image

#: The task name under which ITER is known to ``MMagicInferencer``.
ITER_TASK = 'Real-World Image Super-Resolution (ITER)'
ITER_MODEL_NAMES = ('iter', 'iter_x4', 'iter_x2')
_CONFIGS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs', 'iter')


class ITERInferencer(ImageSuperResolutionInferencer):
    """Super-resolves image files with an ITER config and checkpoint.

    Extra parameters (all optional; ``None`` keeps the config's ``test_cfg``): ``alpha``, ``steps``,
    ``seed``, ``tile``, ``color_correction``, ``token_temperature``, ``mask_temperature``, ``schedule``.
    """

    extra_parameters = dict(alpha=None, steps=None, seed=None, tile=None, color_correction=None,
                            token_temperature=None, mask_temperature=None, schedule=None)

    def __init__(self, config, ckpt: Optional[str], device=None, extra_parameters: Optional[Dict] = None,
                 seed: int = 2022, **kwargs) -> None:
        # Instance copy: the class-level dict must not carry one user's settings into another instance.
        self.extra_parameters = dict(type(self).extra_parameters)
        if isinstance(config, str):
            config = load_config(config)
        super().__init__(config, ckpt, device, extra_parameters, seed=seed, **kwargs)

    def _init_model(self, cfg, ckpt: Optional[str], device) -> torch.nn.Module:
        cfg.model = inference_model_cfg(cfg.model)
        model = MODELS.build(cfg.model)
        if not ckpt:
            warnings.warn('ITERInferencer: no checkpoint given, the network has random weights')
        else:
            if not osp.isfile(ckpt):
                raise FileNotFoundError(f'ITER checkpoint not found: {ckpt}')
            load_checkpoint(model, ckpt, map_location='cpu', strict=False, revise_keys=[(r'^module\.', '')])
        model.cfg = cfg
        return model.to(device).eval()

    def _init_pipeline(self, cfg):
        return None  # images are read by read_image(): grey, alpha and 16-bit files are handled there

    def preprocess(self, img, ref=None) -> Dict:
        """Read one image file (or take an RGB uint8/float array) as a (1, 3, h, w) tensor in [0, 1]."""
        if isinstance(img, str):
            rgb, _ = read_image(img)
        else:
            arr = np.asarray(img)
            rgb = arr.astype(np.float32) / (255.0 if arr.dtype == np.uint8 else 1.0)
            if rgb.ndim == 2:
                rgb = np.repeat(rgb[..., None], 3, axis=2)
            rgb = rgb[..., :3]
        return dict(lq=torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None])

    def forward(self, inputs: Dict) -> List[DataSample]:
        params = {k: v for k, v in self.extra_parameters.items() if v is not None}
        lq = inputs['lq'].to(next(self.model.parameters()).device)
        with torch.no_grad():
            sr = self.model.restore(lq, **params)
        sample = DataSample()
        # MMagic's predictions are BGR 0-255 (DataPreprocessor.destruct); its visualize() relies on that.
        sample.set_tensor_data(dict(pred_img=sr[0].float().cpu().flip(0) * 255.0))
        out = DataSample()
        out.output = sample
        return [out]


def _create_inferencer(self, task=None, config=None, ckpt=None, device=None, extra_parameters=None,
                       seed=2022) -> None:
    """``Inferencers.__init__`` extended with ITER's task; every other task goes to MMagic unchanged."""
    if task == ITER_TASK:
        self.task = task
        if isinstance(config, str) and not osp.isfile(config):
            # MMagicInferencer resolves zoo configs inside mmagic's package; ours live in this repository.
            config = osp.join(_CONFIGS, osp.basename(config))
        self.inferencer = ITERInferencer(config, ckpt, device, extra_parameters, seed=seed)
    else:
        _mmagic_inferencers_init(self, task, config, ckpt, device, extra_parameters, seed)


_mmagic_inferencers_init = Inferencers.__init__


def register_iter_inferencer() -> None:
    """Make ``MMagicInferencer('iter', model_config=..., model_ckpt=...)`` build an :class:`ITERInferencer`."""
    if Inferencers.__init__ is not _create_inferencer:
        Inferencers.__init__ = _create_inferencer
    MMagicInferencer.init_inference_supported_models_cfg()
    for name in ITER_MODEL_NAMES:
        if name not in MMagicInferencer.inference_supported_models:
            MMagicInferencer.inference_supported_models.append(name)
        scale = 2 if name.endswith('x2') else 4
        MMagicInferencer.inference_supported_models_cfg[name] = dict(
            task=ITER_TASK,
            settings=[dict(Name=f'iter_x{scale}_realsr',
                           Config=osp.join(_CONFIGS, f'iter_x{scale}_realsr.py'))])
