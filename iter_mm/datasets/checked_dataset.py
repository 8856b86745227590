"""``BasicImageDataset`` that fails when it is built, naming the path, instead of late.

MMagic's dataset lists the folder of ``search_key`` only: a missing partner folder (e.g. the LQ
of a paired set) fails at the first sample inside a dataloader worker, and an empty folder gives
an empty dataset that silently evaluates nothing.
"""
import os.path as osp
from typing import List

from mmengine.fileio import LocalBackend

from mmagic.datasets import BasicImageDataset
from mmagic.registry import DATASETS


@DATASETS.register_module()
class CheckedImageDataset(BasicImageDataset):
    """``BasicImageDataset`` that checks, at build time and for local files, that every
    folder in ``data_prefix`` (and ``ann_file``) exists, that at least one image is
    listed and that every listed partner file exists. Same arguments as MMagic's."""

    def load_data_list(self) -> List[dict]:
        local = isinstance(self.file_backend, LocalBackend)
        name = self.__class__.__name__
        if local:
            for key, folder in self.data_prefix.items():
                if not osp.isdir(folder):
                    raise FileNotFoundError(
                        f'{name}: folder for {key!r} not found: {folder!r} '
                        f'(data_root={self.data_root!r})')
            if self.use_ann_file and not osp.isfile(self.ann_file):
                raise FileNotFoundError(f'{name}: annotation file not found: '
                                        f'{self.ann_file!r}')
        data_list = super().load_data_list()
        if not data_list:
            folder = self.data_prefix[self.search_key]
            tmpl = self.filename_tmpl[self.search_key]
            raise FileNotFoundError(
                f'{name}: no image matching {tmpl!r} with suffix in {self.img_suffix} in '
                f'{folder!r}' + (f' (from {self.ann_file!r})' if self.use_ann_file else ''))
        if local:
            missing = [
                d[f'{key}_path'] for d in data_list for key in self.data_prefix
                if not osp.isfile(d[f'{key}_path'])
            ]
            if missing:
                raise FileNotFoundError(
                    f'{name}: {len(missing)} listed file(s) missing, e.g. {missing[:3]}')
        return data_list
