"""Which files are images: the one extension list and the folder listing every front end uses.

:data:`IMAGE_EXTENSIONS` are the formats :func:`iter_mm.utils.image_io.read_picture` decodes (Pillow; 16-bit
PNG/TIFF through OpenCV): a file listed here is one the reader takes.
"""

from __future__ import annotations

import os
import os.path as osp
from typing import List, Sequence

from iter_mm.errors import MissingDataError

__all__ = ['IMAGE_EXTENSIONS', 'is_image_file', 'folder_images', 'list_images']

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm', '.gif')


def is_image_file(name: str) -> bool:
    """Whether ``name`` ends with one of :data:`IMAGE_EXTENSIONS` (any case).

    Args:
        name (str): a file name or path.

    Returns:
        bool: True for an image extension.
    """
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _images_in(folder: str) -> List[str]:
    return sorted(f for f in os.listdir(folder) if is_image_file(f) and osp.isfile(osp.join(folder, f)))


def folder_images(folder: str, role: str = 'folder') -> List[str]:
    """File names (not paths) of the images in ``folder``, sorted, not recursive.

    Args:
        folder (str): The folder.
        role (str): What the folder is, for the messages (e.g. 'input folder'). Default: 'folder'.

    Returns:
        list[str]: the file names.

    Raises:
        MissingDataError: The folder does not exist or holds no image.
    """
    if not osp.isdir(folder):
        raise MissingDataError(f'{role} {folder} does not exist')
    files = _images_in(folder)
    if not files:
        raise MissingDataError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) in {folder}')
    return files


def list_images(inputs: Sequence[str]) -> List[str]:
    """Expand files and folders (non-recursive, sorted) into image paths; a file is taken whatever its name.

    Args:
        inputs (Sequence[str]): files and folders.

    Returns:
        list[str]: the image paths, in the order of ``inputs``.

    Raises:
        MissingDataError: A path does not exist, or a folder holds no image.
    """
    paths: List[str] = []
    for item in inputs:
        if osp.isdir(item):
            found = _images_in(item)
            if not found:
                raise MissingDataError(f'{item}: folder holds no images ({", ".join(IMAGE_EXTENSIONS)})')
            paths += [osp.join(item, f) for f in found]
        elif osp.isfile(item):
            paths.append(item)
        else:
            raise MissingDataError(f'{item}: no such file or folder')
    return paths
