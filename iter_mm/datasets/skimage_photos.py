"""Photos that ship inside scikit-image (``skimage/data``) as a small, always-available HQ dataset.

The small-budget demo (``configs/iter/swinvqgan_demo.py``, ``iter_x4_demo.py``) trains on these photos and
evaluates on held-out ones, so it needs no downloaded data. The split is fixed by file name:

* ``train``: colour photos (astronaut, the motorcycle stereo pair, immunohistochemistry, retina, Hubble deep
  field) and natural grey photos/textures (camera, brick, grass, gravel, coins, moon; loaded as 3-channel grey).
* ``heldout``: three colour photos never used for training (chelsea, coffee, rocket). ``motorcycle_right`` is
  not held out: it is the stereo partner of ``motorcycle_left``, nearly the same picture.
* ``train_colour``: the colour photos of ``train`` plus the colour wheel ``color.png`` (every hue, saturation and
  brightness), no grey images: the small-budget demo's split. A VQGAN can only reproduce the colours its codebook
  has seen; random 64x64 crops of ``train`` are mostly grey or dark (half its photos are grey), and a demo trained
  on it draws the held-out photos nearly grey (measured in the README).

Other synthetic images (chessboards, phantom, logo, text pages, tiny GIF/TIFF samples) are in no split.
"""

import os.path as osp
from typing import List, Optional, Sequence

from mmagic.registry import DATASETS

from ..errors import InvalidOptionError, MissingDataError
from .checked_dataset import CheckedImageDataset

#: Training photos (file names in skimage/data).
SKIMAGE_TRAIN = (
    'astronaut.png',
    'motorcycle_left.png',
    'motorcycle_right.png',
    'ihc.png',
    'retina.jpg',
    'hubble_deep_field.jpg',
    'camera.png',
    'brick.png',
    'grass.png',
    'gravel.png',
    'coins.png',
    'moon.png',
)
#: Held-out colour photos for evaluation (never in the training split).
SKIMAGE_HELDOUT = ('chelsea.png', 'coffee.png', 'rocket.jpg')
#: Colour training images of the demo: the colour photos of SKIMAGE_TRAIN and the colour wheel.
SKIMAGE_TRAIN_COLOUR = SKIMAGE_TRAIN[:6] + ('color.png',)
SKIMAGE_SPLITS = dict(
    train=SKIMAGE_TRAIN, train_colour=SKIMAGE_TRAIN_COLOUR, heldout=SKIMAGE_HELDOUT, all=SKIMAGE_TRAIN + SKIMAGE_HELDOUT
)


def skimage_data_dir() -> str:
    """Folder of the sample images installed with scikit-image (``.../site-packages/skimage/data``).

    Returns:
        str: absolute path of the folder.

    Raises:
        ImportError: scikit-image is not installed.
    """
    try:
        import skimage.data
    except ImportError as err:  # pragma: no cover - scikit-image is a pinned requirement
        raise ImportError('SkimagePhotoDataset needs scikit-image (pip install scikit-image)') from err
    return osp.dirname(osp.abspath(skimage.data.__file__))


@DATASETS.register_module()
class SkimagePhotoDataset(CheckedImageDataset):
    """HQ images from scikit-image's data folder, by split or explicit names (``gt_path`` per sample).

    The split lists apply to scikit-image's folder. With another ``data_root`` (e.g. a command-line override to
    your own photos) and no ``names``, every image of that folder is used, as ``CheckedImageDataset`` does.

    Args:
        split (str): 'train', 'train_colour', 'heldout' or 'all' (see module docstring); ignored when ``names`` is
            given. Default: 'train'.
        names (Sequence[str], optional): explicit file names inside the folder (order kept). Default: None.
        data_root (str, optional): folder of the images. Default: None (scikit-image's data folder).
        data_prefix (dict, optional): MMagic's key -> sub-folder map. Default: None (``dict(gt='')``: samples
            carry ``gt_path``).
        **kwargs: other arguments of MMagic's ``BasicImageDataset`` (``pipeline``, ``test_mode``, ``indices``,
            ...); ``metainfo`` defaults to ``dict(dataset_type='skimage_<split>', task_name='real_sr')``.

    Raises:
        InvalidOptionError: an unknown ``split`` or an empty ``names``.
        MissingDataError: a listed image is missing (or, for another folder, as :class:`CheckedImageDataset`).
    """

    def __init__(
        self,
        split: str = 'train',
        names: Optional[Sequence[str]] = None,
        data_root: Optional[str] = None,
        data_prefix: Optional[dict] = None,
        **kwargs,
    ) -> None:
        if split not in SKIMAGE_SPLITS:
            raise InvalidOptionError(
                f'SkimagePhotoDataset: unknown split {split!r}; use one of {sorted(SKIMAGE_SPLITS)}'
            )
        self.skimage_dir = skimage_data_dir()
        self.list_folder = (
            names is None and data_root is not None and osp.realpath(data_root) != osp.realpath(self.skimage_dir)
        )
        if names is None:
            names = SKIMAGE_SPLITS[split]
        if not names:
            raise InvalidOptionError('SkimagePhotoDataset: empty list of names')
        self.split, self.names = split, tuple(names)
        kwargs.setdefault('metainfo', dict(dataset_type=f'skimage_{split}', task_name='real_sr'))
        super().__init__(
            data_root=self.skimage_dir if data_root is None else data_root,
            data_prefix=dict(gt='') if data_prefix is None else data_prefix,
            **kwargs,
        )

    def load_data_list(self) -> List[dict]:
        """One sample per name (``key`` = the name without extension), or the folder's listing for another
        ``data_root`` without ``names``.

        Returns:
            list[dict]: samples with ``key`` and one ``<name>_path`` per ``data_prefix`` name (e.g. ``gt_path``).

        Raises:
            MissingDataError: a listed image is missing.
        """
        if self.list_folder:
            return super().load_data_list()
        data_list = []
        for name in self.names:
            basename = osp.splitext(name)[0]
            data = dict(key=basename)
            for key, folder in self.data_prefix.items():
                data[f'{key}_path'] = osp.join(folder, name)
            data_list.append(data)
        missing = [d[f'{k}_path'] for d in data_list for k in self.data_prefix if not osp.isfile(d[f'{k}_path'])]
        if missing:
            raise MissingDataError(
                f'SkimagePhotoDataset: {len(missing)} image(s) missing, e.g. {missing[:3]} '
                f'(data_root={self.data_root!r})'
            )
        return data_list
