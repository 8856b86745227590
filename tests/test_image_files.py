"""One image listing for every front end (iter_mm.utils.image_files): tools/infer.py and tools/compare_sr.py (and
the data tools) take the same files, every listed format is one the reader decodes."""

import ast
import os.path as osp
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iter_mm.errors import MissingDataError
from iter_mm.utils.image_files import IMAGE_EXTENSIONS, folder_images, is_image_file, list_images
from iter_mm.utils.image_io import read_picture

ROOT = Path(__file__).resolve().parents[1]
PIL_FORMATS = {
    '.png': 'PNG',
    '.jpg': 'JPEG',
    '.jpeg': 'JPEG',
    '.bmp': 'BMP',
    '.tif': 'TIFF',
    '.tiff': 'TIFF',
    '.webp': 'WEBP',
    '.ppm': 'PPM',
    '.pgm': 'PPM',
    '.gif': 'GIF',
}


@pytest.fixture()
def every_kind(tmp_path):
    """One 10x8 file of each listed extension (pixels a gradient), plus files that are not images."""
    folder = tmp_path / 'in'
    folder.mkdir()
    rgb = np.stack(np.meshgrid(np.arange(10) * 20, np.arange(8) * 30) + [np.full((8, 10), 90)], -1).astype(np.uint8)
    for ext in IMAGE_EXTENSIONS:
        img = Image.fromarray(rgb).convert('L') if ext == '.pgm' else Image.fromarray(rgb)
        img.save(folder / f'x{ext[1:]}{ext.upper() if ext == ".gif" else ext}', PIL_FORMATS[ext])
    (folder / 'notes.txt').write_text('not an image')
    (folder / 'sub.png').mkdir()  # a folder named like an image
    return folder


def test_every_listed_extension_is_decoded(every_kind):
    assert set(PIL_FORMATS) == set(IMAGE_EXTENSIONS)  # the table above covers the list
    names = folder_images(str(every_kind))
    assert len(names) == len(IMAGE_EXTENSIONS) and 'notes.txt' not in names and 'sub.png' not in names
    for name in names:
        pic = read_picture(str(every_kind / name))
        assert pic.frames[0].shape == (8, 10, 3), name
    assert is_image_file('A.PPM') and is_image_file('b.Gif') and not is_image_file('c.txt')


def test_infer_and_compare_sr_take_the_same_files(every_kind, tmp_path):
    """The listing of tools/infer.py (inputs expanded by list_images) and of tools/compare_sr.py (SRComparison's
    folder) are the same files, .ppm and .gif included, and both read them."""
    from iter_mm.evaluation.sr_compare import SRComparison, read_image

    infer_files = [osp.basename(p) for p in list_images([str(every_kind)])]
    compare_files = SRComparison(str(every_kind), str(tmp_path / 'out')).files
    assert infer_files == compare_files and {'xppm.ppm', 'xgif.GIF', 'xpgm.pgm'} <= set(infer_files)
    for name in ('xppm.ppm', 'xgif.GIF'):
        lq = read_image(str(every_kind / name))
        assert lq.shape == (3, 8, 10) and np.allclose(
            lq.permute(1, 2, 0).numpy(), read_picture(str(every_kind / name)).frames[0]
        )


def test_tools_have_no_extension_list_of_their_own():
    """Every tool that lists images takes the list from iter_mm.utils.image_files (no list of its own)."""
    for tool in sorted((ROOT / 'tools').glob('*.py')):
        for node in ast.walk(ast.parse(tool.read_text())):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                exts = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in IMAGE_EXTENSIONS]
                assert len(exts) < 2, (tool.name, node.lineno, exts)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(MissingDataError, match='input folder .*nope does not exist'):
        folder_images(str(tmp_path / 'nope'), 'input folder')
    with pytest.raises(MissingDataError, match=r'no images \(.png, .*\.gif\) in'):
        folder_images(str(tmp_path))
    with pytest.raises(MissingDataError, match='folder holds no images'):
        list_images([str(tmp_path)])
    with pytest.raises(FileNotFoundError, match='no such file or folder'):  # MissingDataError is one
        list_images([str(tmp_path / 'nope.png')])
    (tmp_path / 'photo.raw').write_bytes(b'x')
    assert list_images([str(tmp_path / 'photo.raw')]) == [str(tmp_path / 'photo.raw')]  # a named file: as given
