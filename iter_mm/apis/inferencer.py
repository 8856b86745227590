"""ITER inside MMagic's Inferencer API.

    from iter_mm.apis import MMagicInferencer  # MMagic's class, subclassed to know 'iter' (MMagic's is unchanged)
    sr = MMagicInferencer('iter', model_config='configs/iter/iter_x4_realsr.py', model_ckpt='iter_x4.pth',
                          extra_parameters=dict(seed=1, tile=256))
    sr.infer(img='photo.jpg', result_out_dir='out/photo.png')
    sr.infer(img=cv2.imread('photo.png')[..., ::-1])  # arrays are RGB: uint8, uint16 or float in [0, 1]

``ITERInferencer`` can also be used directly with the same arguments as MMagic's inferencers. MMagic 1.2 offers no
registration for inferencer tasks; importing this module changes nothing of MMagic (:class:`MMagicInferencer` is a
subclass with its own model table). Files are read and
written exactly as ``tools/infer.py`` does (EXIF orientation, alpha, grey, 16 bit, ICC profile, EXIF, frames:
``iter_mm.utils.image_io``), so both give the same output for the same input and options.
"""

import os.path as osp
import warnings
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from ..utils.quiet import quiet_imports, quiet_mmengine, verbose_requested

with quiet_imports():  # MMagic's inferencer stack imports diffusers, timm, clip, ... with their warnings
    from mmagic.apis.inferencers import ImageSuperResolutionInferencer, Inferencers
    from mmagic.apis.mmagic_inferencer import MMagicInferencer as _MMagicInferencer
from mmengine.registry import init_default_scope

from mmagic.structures import DataSample

from ..errors import InvalidOptionError
from ..models.options import RestoreOptions
from ..utils.checkpoint import stage1_aliases
from ..utils.config import load_config
from ..utils.config_paths import configs_root
from ..utils.image_io import Picture, picture_from_array, read_picture
from ..utils.image_write import output_arrays, write_picture
from ..utils.photo_sr import super_resolve_picture
from .model_loader import init_model

#: The task name under which ITER is known to ``MMagicInferencer``.
ITER_TASK = 'Real-World Image Super-Resolution (ITER)'
ITER_MODEL_NAMES = ('iter', 'iter_x4', 'iter_x2')
_CONFIGS = osp.join(configs_root() or 'configs', 'iter')  # the source tree's or the installed package's


class ITERInferencer(ImageSuperResolutionInferencer):
    """Super-resolves image files with an ITER config and checkpoint.

    Restoration parameters: every field of :class:`~iter_mm.models.options.RestoreOptions` (``alpha``,
    ``steps``, ``seed``, ``tile``, ``tile_overlap``, ``max_pixels``, ``dtype``, ...; ``None`` keeps the config's
    ``test_cfg``), so the Inferencer, ``tools/infer.py`` and ``tools/test.py`` tile by the same rule.
    File parameters (as the CLI's options): ``alpha_upscale`` ('bicubic' | 'iter'), ``frames`` ('first' |
    'all'), ``to_srgb`` (bool), ``quality`` (JPEG/WebP, 1-100). Loading parameters (``init_model``'s, used when
    the model is built, so only at construction): ``stage1_checkpoint`` (the authors' ``ITER_swinvqgan.pth`` for
    their ITER files without ``vqgan.*``; ``vqgan``: its deprecated name), ``allow_pickle`` (full training
    checkpoints; trusted files only). Unknown names are refused (listing the valid ones), as are invalid
    restoration values. The output format is the extension of ``result_out_dir`` (a file path, replaced if it
    exists, as in MMagic). ``infer`` returns the first frame as written: uint8/uint16, (H, W) grey or (H, W, 3|4)
    RGB(A). Array inputs are RGB (OpenCV/mmcv read BGR: pass ``img[..., ::-1]``): uint8, uint16 or float in [0, 1]
    (others: TypeError / ValueError).

    Args:
        config (str | Config): ITER config file or loaded config.
        ckpt (str, optional): checkpoint loaded strictly by the one loader (``init_model``), which refuses None.
        device (str | torch.device, optional): where the model runs. Default: None ('cpu').
        extra_parameters (dict, optional): restoration, file and loading parameters (see above). Default: None.
        seed (int): MMagic's inferencer seed. Default: 2022.
        **kwargs: passed to MMagic's ``ImageSuperResolutionInferencer``.

    Raises:
        InvalidOptionError: an unknown parameter name or an invalid restoration value.
        TypeError: ``allow_pickle`` is not a bool.
    """

    #: every ``RestoreOptions`` field (None: the config's ``test_cfg``), the file and the loading options
    extra_parameters = dict(
        dict.fromkeys(RestoreOptions.names()),
        alpha_upscale='bicubic',
        frames='first',
        to_srgb=False,
        quality=None,
        stage1_checkpoint=None,
        allow_pickle=False,
        vqgan=None,
    )
    io_parameters = ('alpha_upscale', 'frames', 'to_srgb', 'quality')
    load_parameters = ('stage1_checkpoint', 'allow_pickle', 'vqgan')

    def __init__(
        self,
        config,
        ckpt: Optional[str],
        device=None,
        extra_parameters: Optional[Dict] = None,
        seed: int = 2022,
        **kwargs,
    ) -> None:
        # Instance copy: the class-level dict must not carry one user's settings into another instance.
        self.extra_parameters = dict(type(self).extra_parameters)
        self._check_parameters(extra_parameters)
        self._load = {k: (extra_parameters or {}).get(k, self.extra_parameters[k]) for k in self.load_parameters}
        self._stage1 = stage1_aliases(self._load['stage1_checkpoint'], vqgan=self._load['vqgan'])  # warns here
        if isinstance(config, str):
            config = load_config(config)
        with quiet_imports(), quiet_mmengine():  # MMagic's visualiser and scope notes (ITER_MM_VERBOSE=1: shown)
            super().__init__(config, ckpt, device, extra_parameters, seed=seed, **kwargs)

    def _check_parameters(self, given: Optional[Dict]) -> None:
        """Refuse unknown ``extra_parameters`` names (listing the valid ones) and invalid restoration values."""
        if not given:
            return
        unknown = sorted(set(given) - set(self.extra_parameters))
        if unknown:
            raise InvalidOptionError(
                f'unknown extra_parameters {unknown}; valid: restoration options '
                f'{list(RestoreOptions.names())}, file options {list(self.io_parameters)}, loading '
                f'options {list(self.load_parameters)}'
            )
        RestoreOptions(**{k: v for k, v in given.items() if k in RestoreOptions.names() and v is not None})

    def _update_extra_parameters(self, **kwargs) -> None:
        """MMagic's run-time update (``infer(..., extra_parameters=...)``), with the names and values checked;
        the loading parameters cannot change once the model is built."""
        given = kwargs.get('extra_parameters') or {}
        self._check_parameters(given)
        changed = [k for k in self.load_parameters if k in given and given[k] != self._load[k]]
        if changed:
            raise InvalidOptionError(
                f'extra_parameters {changed} apply when the model is loaded: pass them when the inferencer is created'
            )
        super()._update_extra_parameters(**kwargs)

    def _init_model(self, cfg, ckpt: Optional[str], device) -> torch.nn.Module:
        """The one loader (``init_model``): strict, the same files and errors as ``tools/infer.py``; the
        ``stage1_checkpoint`` (deprecated: ``vqgan``) and ``allow_pickle`` extra parameters go to it."""
        allow_pickle = self._load['allow_pickle']
        if not isinstance(allow_pickle, bool):  # bool('false') is True: only a real True unpickles
            raise TypeError(f'extra_parameters allow_pickle must be True or False, got {allow_pickle!r}')
        return init_model(cfg, ckpt, device=device or 'cpu', stage1_checkpoint=self._stage1, allow_pickle=allow_pickle)

    def _init_pipeline(self, cfg):
        return None  # images are read by read_image(): grey, alpha and 16-bit files are handled there

    def preprocess(self, img, ref=None) -> Dict:
        """Read one image file (or take an array: grey, RGB or RGBA; uint8, uint16 or float in [0, 1]).

        Args:
            img (str | np.ndarray): image path or (H, W) / (H, W, 3|4) RGB(A) array.
            ref (Any): unused (MMagic's signature). Default: None.

        Returns:
            dict: ``lq`` (1, 3, h, w) float in [0, 1] (first frame) and ``picture``, the read
            :class:`~iter_mm.utils.image_io.Picture`.
        """
        if isinstance(img, str):
            pic = read_picture(
                img, frames=self.extra_parameters['frames'], to_srgb=bool(self.extra_parameters['to_srgb'])
            )
        else:
            pic = picture_from_array(img)
        for note in pic.info.notes:
            warnings.warn(f'{pic.info.path}: {note}')
        return dict(lq=torch.from_numpy(pic.frames[0]).permute(2, 0, 1)[None], picture=pic)

    def forward(self, inputs: Dict) -> List[DataSample]:
        """Super-resolve the picture of :meth:`preprocess` with the restoration parameters.

        Args:
            inputs (dict): the output of :meth:`preprocess`.

        Returns:
            list[DataSample]: one sample whose ``output.pred_img`` is (3, H, W) BGR in [0, 255] (MMagic's convention)
            and whose ``sr_picture`` is the SR :class:`~iter_mm.utils.image_io.Picture` (all frames, alpha).
        """
        params = {k: v for k, v in self.extra_parameters.items() if v is not None and k in RestoreOptions.names()}
        device = next(self.model.parameters()).device

        def restore(lq: torch.Tensor) -> torch.Tensor:
            return self.model.restore(lq.to(device), **params)

        picture = (
            inputs['picture'] if 'picture' in inputs else picture_from_array(inputs['lq'][0].permute(1, 2, 0).numpy())
        )
        sr = super_resolve_picture(picture, restore, self.extra_parameters['alpha_upscale'])
        sample = DataSample()
        # MMagic's predictions are BGR 0-255 (DataPreprocessor.destruct); its visualize() relies on that.
        sample.set_tensor_data(dict(pred_img=torch.from_numpy(sr.frames[0]).permute(2, 0, 1).flip(0) * 255.0))
        out = DataSample()
        out.output = sample
        out.sr_picture = sr
        return [out]

    def visualize(self, preds: List[DataSample], result_out_dir: Optional[str] = None) -> np.ndarray:
        """Write the result like ``tools/infer.py`` (when ``result_out_dir`` names a file) and return its first frame.

        Args:
            preds (list[DataSample]): the output of :meth:`forward`.
            result_out_dir (str, optional): output file path; its extension picks the format. Default: None (nothing
                written).

        Returns:
            np.ndarray: the first frame as written: uint8/uint16, (H, W) grey or (H, W, 3|4) RGB(A).
        """
        sr: Picture = preds[0].sr_picture
        if not result_out_dir:
            return output_arrays(sr)[0]
        written, notes = write_picture(result_out_dir, sr, self.extra_parameters['quality'])
        for note in notes:
            warnings.warn(f'{result_out_dir}: {note}')
        return written

    def postprocess(
        self,
        preds: List[DataSample],
        imgs: Optional[np.ndarray] = None,
        is_batch: bool = False,
        get_datasample: bool = False,
    ) -> Tuple:
        """MMagic's post-processing, after dropping the :class:`~iter_mm.utils.image_io.Picture` from the predictions.

        Args:
            preds (list[DataSample]): the output of :meth:`forward`.
            imgs (np.ndarray, optional): the output of :meth:`visualize`. Default: None.
            is_batch (bool): MMagic's flag. Default: False.
            get_datasample (bool): return the data samples instead of a result dict. Default: False.

        Returns:
            tuple: MMagic's ``(result, imgs)``.
        """
        for pred in preds:  # the Picture is not part of MMagic's result dict
            if 'sr_picture' in pred:
                del pred.sr_picture
        return super().postprocess(preds, imgs, is_batch, get_datasample)


def _default_config(name: str) -> str:
    """The config registered for model name ``name`` ('iter', 'iter_x4', 'iter_x2')."""
    return osp.join(_CONFIGS, f'iter_x{2 if name.endswith("x2") else 4}_realsr.py')


def _zoo_default_config(config: str) -> str:
    """Our registered default config for the path ``MMagicInferencer`` makes of it when no ``model_config`` is
    given (it looks for the config inside mmagic's package); any other path is returned unchanged, so a path that
    does not exist is reported by ``load_config`` instead of being replaced."""
    from .mmagic_models import zoo_config_candidates

    for name in ITER_MODEL_NAMES:
        ours = _default_config(name)
        rel = ours[ours.find('configs') :]  # as MMagicInferencer._get_inferencer_kwargs cuts it
        for zoo in zoo_config_candidates(rel):
            if osp.normpath(config) == osp.normpath(zoo):
                return ours
    return config


class _Inferencers(Inferencers):
    """MMagic's task dispatcher, knowing ITER's task too; every other task goes to MMagic unchanged."""

    def __init__(
        self,
        task: Optional[str] = None,
        config=None,
        ckpt: Optional[str] = None,
        device=None,
        extra_parameters: Optional[Dict] = None,
        seed: int = 2022,
    ) -> None:
        if task != ITER_TASK:
            super().__init__(task, config, ckpt, device, extra_parameters, seed)
            return
        self.task = task
        if isinstance(config, str):
            config = _zoo_default_config(config)
        self.inferencer = ITERInferencer(config, ckpt, device, extra_parameters, seed=seed)


class MMagicInferencer(_MMagicInferencer):
    """MMagic's ``MMagicInferencer`` that also knows ITER (``'iter'``, ``'iter_x4'``, ``'iter_x2'``).

    It takes the same arguments; every other model goes to MMagic unchanged. MMagic 1.2 has no registration for
    inferencer tasks, so this subclass adds ITER's task to its own copies of the model tables; MMagic's class is left
    as it is.

    Args:
        model_name (str, optional): 'iter', 'iter_x4', 'iter_x2' or one of MMagic's models. Default: None.
        model_setting (int, optional): index of the model's setting in its metafile. Default: None.
        config_name (str, optional): name of the setting. Default: None.
        model_config (str, optional): config file; ITER's default config when None. Default: None.
        model_ckpt (str, optional): checkpoint file. Default: None.
        device (str | torch.device, optional): where the model runs. Default: None.
        extra_parameters (dict, optional): the inferencer's extra parameters (for ITER see
            :class:`ITERInferencer`). Default: None.
        seed (int): MMagic's inferencer seed. Default: 2022.
        **kwargs: unused (MMagic's signature).

    Example:
        >>> from iter_mm.apis import MMagicInferencer
        >>> sr = MMagicInferencer('iter', model_config='configs/iter/iter_x4_realsr.py', model_ckpt='ITER_x4.pth')
    """

    inference_supported_models = [*_MMagicInferencer.inference_supported_models, *ITER_MODEL_NAMES]
    #: ITER's entries; MMagic's own are read from its metafiles on first use (``get_model_config``)
    iter_models_cfg = {
        name: dict(task=ITER_TASK, settings=[dict(Name=osp.basename(cfg)[:-3], Config=cfg)])
        for name, cfg in ((n, _default_config(n)) for n in ITER_MODEL_NAMES)
    }

    def __init__(
        self,
        model_name: Optional[str] = None,
        model_setting: Optional[int] = None,
        config_name: Optional[str] = None,
        model_config: Optional[str] = None,
        model_ckpt: Optional[str] = None,
        device=None,
        extra_parameters: Optional[Dict] = None,
        seed: int = 2022,
        **kwargs,
    ) -> None:
        init_default_scope('mmagic')
        with warnings.catch_warnings():
            if model_name in ITER_MODEL_NAMES and not verbose_requested():  # ITER always takes model_config
                warnings.filterwarnings(
                    'ignore', message=r"iter(_x[24])?'s default config is overridden", category=UserWarning
                )
            inferencer_kwargs = self._get_inferencer_kwargs(
                model_name, model_setting, config_name, model_config, model_ckpt, extra_parameters
            )
        self.inferencer = _Inferencers(device=device, seed=seed, **inferencer_kwargs)

    def get_model_config(self, model_name: str) -> Dict:
        """The task and settings of ``model_name`` (ITER's, else MMagic's).

        Args:
            model_name (str): a supported model name.

        Returns:
            dict: ``task`` and ``settings`` as in MMagic's metafiles.
        """
        if model_name in self.iter_models_cfg:
            return self.iter_models_cfg[model_name]
        _MMagicInferencer.init_inference_supported_models_cfg()
        return super().get_model_config(model_name)

    @staticmethod
    def get_inference_supported_models() -> List:
        """Model names this inferencer accepts: MMagic's and ITER's.

        Returns:
            list[str]: the names.
        """
        return list(MMagicInferencer.inference_supported_models)

    @staticmethod
    def get_inference_supported_tasks() -> List:
        """Task names: MMagic's and ITER's, sorted.

        Returns:
            list[str]: the tasks.
        """
        return sorted(set(_MMagicInferencer.get_inference_supported_tasks()) | {ITER_TASK})

    @staticmethod
    def get_task_supported_models(task: str) -> List:
        """Model names of ``task``.

        Args:
            task (str): a task name (ITER's or MMagic's).

        Returns:
            list[str]: the model names.
        """
        if task == ITER_TASK:
            return list(ITER_MODEL_NAMES)
        return _MMagicInferencer.get_task_supported_models(task)
