"""Super-resolving image files into a folder: the model, the output names, no silent overwrite, one file at a time.

``tools/infer.py`` is the command line of these functions: it lists the inputs
(:func:`iter_mm.utils.image_files.list_images`), plans the outputs (:func:`plan_outputs`), loads the model
(:func:`load_restorer`) and restores each file (:func:`restore_file`), printing what they return.
"""

from __future__ import annotations

import os.path as osp
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..errors import InvalidOptionError, OutputExistsError

__all__ = ['OutputPlan', 'plan_outputs', 'resolve_device', 'load_restorer', 'restore_file', 'FileResult']


@dataclass
class OutputPlan:
    """Inputs to restore with their output paths, and how many outputs were kept because they exist."""

    todo: List[Tuple[str, str]] = field(default_factory=list)
    kept: int = 0


def plan_outputs(
    paths: Sequence[str], out_dir: str, ext: str = 'same', overwrite: bool = False, skip_existing: bool = False
) -> OutputPlan:
    """The output path of each input in ``out_dir`` (its file name, extension ``ext``: png|jpg|webp|same).

    Args:
        paths (Sequence[str]): Input image files.
        out_dir (str): Output folder.
        ext (str): Output format; 'same': the input's. Default: 'same'.
        overwrite (bool): Replace existing outputs. Default: False.
        skip_existing (bool): Keep existing outputs and plan only the missing ones. Default: False.

    Returns:
        OutputPlan: the (input, output) pairs to restore and how many outputs were kept.

    Raises:
        InvalidOptionError: Two inputs share an output name, or an output would replace its own input.
        OutputExistsError: Outputs exist and neither ``overwrite`` nor ``skip_existing`` is set.
    """
    from ..utils.photo_sr import output_name

    names = Counter(output_name(p, ext) for p in paths)
    dups = sorted(n for n, c in names.items() if c > 1)
    if dups:
        raise InvalidOptionError(f'several inputs share the output name(s) {dups[:5]}; run them into separate folders')
    outputs = [osp.join(out_dir, output_name(p, ext)) for p in paths]
    same = [p for p, o in zip(paths, outputs) if osp.abspath(p) == osp.abspath(o)]
    if same:
        raise InvalidOptionError(f'output would replace its own input: {same[:3]}; choose another output folder')
    existing = [o for o in outputs if osp.exists(o)]
    if existing and skip_existing:
        return OutputPlan([(p, o) for p, o in zip(paths, outputs) if not osp.exists(o)], len(existing))
    if existing and not overwrite:
        raise OutputExistsError(f'{len(existing)} output file(s) exist, e.g. {existing[:3]}')
    return OutputPlan(list(zip(paths, outputs)))


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``, refused when it is malformed or CUDA is not available.

    Args:
        name (str): e.g. 'cpu', 'cuda', 'cuda:1'.

    Returns:
        torch.device: the device.

    Raises:
        InvalidOptionError: a malformed name, or CUDA asked for without CUDA.
    """
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise InvalidOptionError(f'device {name!r}: {err}') from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise InvalidOptionError(f'device {name!r}: CUDA is not available; use the CPU')
    return device


def load_restorer(
    config: str,
    checkpoint: str,
    device: torch.device,
    stage1_checkpoint: Optional[str] = None,
    allow_pickle: bool = False,
) -> torch.nn.Module:
    """The model of ``config`` with ``checkpoint`` loaded strictly (``iter_mm.apis.init_model``).

    Args:
        config (str): an ITER config file.
        checkpoint (str): its checkpoint.
        device (torch.device): where the model goes.
        stage1_checkpoint (str, optional): the authors' ``ITER_swinvqgan.pth`` for their ITER files without
            ``vqgan.*``. Default: None.
        allow_pickle (bool): allow full training checkpoints with pickled objects (trusted files only).
            Default: False.

    Returns:
        torch.nn.Module: the model in eval mode; it has ``restore``.

    Raises:
        InvalidOptionError: the model has no ``restore`` (not an ITER config).
    """
    from .model_loader import init_model

    model = init_model(
        config, checkpoint, device=device, stage1_checkpoint=stage1_checkpoint, allow_pickle=allow_pickle
    )
    if not callable(getattr(model, 'restore', None)):
        raise InvalidOptionError(f'{config}: model {type(model).__name__} has no restore(); use an ITER config')
    return model


@dataclass
class FileResult:
    """What :func:`restore_file` did: notes of the reader and of the writer, input and output size (w, h)."""

    read_notes: List[str]
    write_notes: List[str]
    in_size: Tuple[int, int]
    out_size: Tuple[int, int]


def restore_file(
    model: torch.nn.Module,
    path: str,
    out_path: str,
    options: Optional[Dict[str, object]] = None,
    frames: str = 'first',
    to_srgb: bool = False,
    alpha_upscale: str = 'bicubic',
    quality: Optional[int] = None,
) -> FileResult:
    """Read ``path``, super-resolve every frame with ``model.restore(lq, **options)`` and write ``out_path`` alike.

    Grey, 16 bit, alpha, ICC profile and EXIF are kept as in the input (:mod:`iter_mm.utils.image_io`).

    Args:
        model (torch.nn.Module): a model with ``restore`` ((1, 3, h, w) -> (1, 3, h*s, w*s) in [0, 1]).
        path (str): input image file.
        out_path (str): output file; its extension picks the format.
        options (dict, optional): keyword arguments of ``model.restore``. Default: None.
        frames (str): 'first' or 'all' frames of an animated / multi-page file. Default: 'first'.
        to_srgb (bool): convert from an embedded ICC profile to sRGB. Default: False.
        alpha_upscale (str): how an alpha channel is upscaled, 'bicubic' or 'iter'. Default: 'bicubic'.
        quality (int, optional): JPEG/WebP quality, 1-100. Default: None (the writer's default).

    Returns:
        FileResult: the reader's and writer's notes, input and output size (w, h).

    Raises:
        ImageReadError: ``path`` is not a readable image.
    """
    from ..utils.image_io import read_picture, write_picture
    from ..utils.photo_sr import super_resolve_picture

    device = next(model.parameters()).device

    def restore(lq: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model.restore(lq.to(device), **(options or {})).float()

    pic = read_picture(path, frames=frames, to_srgb=to_srgb)
    sr = super_resolve_picture(pic, restore, alpha_upscale)
    notes = write_picture(out_path, sr, quality)[1]
    (h, w), (sh, sw) = pic.frames[0].shape[:2], sr.frames[0].shape[:2]
    return FileResult(list(pic.info.notes), list(notes), (w, h), (sw, sh))
