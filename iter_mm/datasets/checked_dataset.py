"""``BasicImageDataset`` that fails when it is built, naming the path, instead of late.

MMagic's dataset lists the folder of ``search_key`` only: a missing partner folder (e.g. the LQ
of a paired set) fails at the first sample inside a dataloader worker, and an empty folder gives
an empty dataset that silently evaluates nothing. A file that cannot be decoded (corrupt, truncated,
empty, not an image) ends its sample with an error that names it, not OpenCV's ``!_src.empty()``.
"""

import os
import os.path as osp
from typing import Any, List

import cv2
import numpy as np
from mmengine.fileio import LocalBackend

from mmagic.datasets import BasicImageDataset
from mmagic.registry import DATASETS

from ..errors import InvalidInputError, MissingDataError


@DATASETS.register_module()
class CheckedImageDataset(BasicImageDataset):
    """``BasicImageDataset`` that checks, at build time and for local files, that every
    folder in ``data_prefix`` (and ``ann_file``) exists, that at least one image is
    listed and that every listed partner file exists; a sample whose file cannot be decoded
    raises :class:`UnreadableImageError` naming it.

    Args:
        **kwargs: the arguments of MMagic's :class:`~mmagic.datasets.BasicImageDataset` (``ann_file``,
            ``metainfo``, ``data_root``, ``data_prefix``, ``pipeline``, ``test_mode``, ``filename_tmpl``,
            ``search_key``, ...), unchanged.

    Raises:
        MissingDataError: (at build time) a folder of ``data_prefix`` or the ``ann_file`` is missing, no image is
            listed, or a listed partner file is missing.
    """

    def prepare_data(self, idx: int) -> Any:
        """The sample ``idx`` through the pipeline, as MMagic's.

        Args:
            idx (int): sample index.

        Returns:
            Any: the pipeline's output.

        Raises:
            UnreadableImageError: a file of the sample cannot be decoded (other pipeline errors pass unchanged).
        """
        try:
            return super().prepare_data(idx)
        except Exception as err:
            paths = [v for k, v in self.get_data_info(idx).items() if k.endswith('_path') and isinstance(v, str)]
            bad = [p for p in paths if osp.isfile(p) and not _decodes(p)]
            if not bad:
                raise
            raise UnreadableImageError(
                f'{self.__class__.__name__}: {bad[0]} is not a readable image (corrupt, truncated, empty or not an '
                f'image file; {type(err).__name__} in the pipeline): remove or replace it, then rerun (training: '
                'resume it)'
            ) from err

    def load_data_list(self) -> List[dict]:
        """MMagic's list of samples, checked (local files only) as the class docstring says.

        Returns:
            list[dict]: one dict per sample with a ``<name>_path`` per ``data_prefix`` name.

        Raises:
            MissingDataError: a missing folder, annotation file or listed file, or no image listed.
        """
        local = isinstance(self.file_backend, LocalBackend)
        name = self.__class__.__name__
        if local:
            for key, folder in self.data_prefix.items():
                if not osp.isdir(folder):
                    raise MissingDataError(
                        f'{name}: folder for {key!r} not found: {folder!r} (data_root={self.data_root!r})'
                    )
            if self.use_ann_file and not osp.isfile(self.ann_file):
                raise MissingDataError(f'{name}: annotation file not found: {self.ann_file!r}')
        data_list = super().load_data_list()
        if not data_list:
            folder = self.data_prefix[self.search_key]
            tmpl = self.filename_tmpl[self.search_key]
            nested = (
                local
                and not self.use_ann_file
                and not getattr(self, 'recursive', False)
                and osp.isdir(folder)
                and any(e.is_dir() for e in os.scandir(folder))
            )
            raise MissingDataError(
                f'{name}: no image matching {tmpl!r} with suffix in {self.img_suffix} in '
                f'{folder!r}'
                + (f' (from {self.ann_file!r})' if self.use_ann_file else '')
                + ('; its subfolders are not searched unless the dataset has recursive=True' if nested else '')
            )
        if local:
            missing = [
                d[f'{key}_path'] for d in data_list for key in self.data_prefix if not osp.isfile(d[f'{key}_path'])
            ]
            if missing:
                raise MissingDataError(f'{name}: {len(missing)} listed file(s) missing, e.g. {missing[:3]}')
        return data_list


class UnreadableImageError(InvalidInputError, RuntimeError):
    """A dataset file that OpenCV cannot decode (also a RuntimeError, as before the hierarchy)."""


def _decodes(path: str) -> bool:
    """Whether OpenCV decodes the file at ``path`` (as MMagic's ``LoadImageFromFile`` reads it)."""
    data = np.fromfile(path, dtype=np.uint8)
    return data.size > 0 and cv2.imdecode(data, cv2.IMREAD_UNCHANGED) is not None
