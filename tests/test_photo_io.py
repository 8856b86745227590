"""Photos as people have them (issue 13): EXIF orientation, alpha, grey, 16 bit, palette, CMYK, ICC, EXIF, frames.

Reader/writer units on generated files, then tools/infer.py and MMagicInferencer('iter') on one folder of every
kind with a tiny random ITER model: output size, channels, bit depth, orientation, alpha, profile bytes, EXIF,
and the two giving the same files.
"""

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from tool_runner import error_line, run_tool  # noqa: E402

from iter_mm.utils.image_io import (
    ImageReadError,
    Picture,
    picture_from_array,
    read_picture,  # noqa: E402
    srgb_profile,
)
from iter_mm.utils.image_write import exif_for_output, output_arrays, png_bytes, write_picture  # noqa: E402
from iter_mm.utils.photo_sr import super_resolve_picture, upscale_alpha  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / 'configs' / 'iter' / 'iter_x4_tiny.py')
H, W = 6, 10  # stored size of the generated files (EXIF-rotated ones display 10x6 -> W x H swapped)
ORIENTATION, EXIF_IFD, PIXEL_X, PIXEL_Y, MAKE = 0x0112, 0x8769, 0xA002, 0xA003, 0x010F


def bicubic4(lq: torch.Tensor) -> torch.Tensor:
    return F.interpolate(lq, scale_factor=4, mode='bicubic', align_corners=False).clamp(0, 1)


def gamma18_profile() -> bytes:
    """sRGB's profile with the tone curves' gamma changed from 2.4 to 1.8: a valid, different RGB profile."""
    icc = srgb_profile()
    i = icc.index(b'para\x00\x00\x00\x00\x00\x03') + 12
    return icc[:i] + bytes.fromhex('0001cccc') + icc[i + 4 :]


def exif_bytes(orientation: int) -> bytes:
    ex = Image.Exif()
    ex[ORIENTATION], ex[MAKE] = orientation, 'TestCam'
    ifd = ex.get_ifd(EXIF_IFD)
    ifd[PIXEL_X], ifd[PIXEL_Y] = W, H
    return ex.tobytes()


def make_inputs(folder: Path) -> Path:
    """One small file of each kind the README's table lists."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    for o in (3, 6, 8):
        Image.fromarray(rgb).save(folder / f'exif{o}.jpg', exif=exif_bytes(o), quality=95)
    alpha = np.clip(np.linspace(-64, 320, W)[None] + rng.integers(-20, 20, (H, W)), 0, 255).astype(np.uint8)
    Image.fromarray(np.dstack([rgb, alpha])).save(folder / 'rgba.png')
    Image.fromarray(np.dstack([rgb[..., 0], alpha])).save(folder / 'la.png')
    Image.fromarray(rgb[..., 1]).save(folder / 'grey.png')
    cv2.imwrite(str(folder / 'grey16.png'), rng.integers(0, 65536, (H, W), dtype=np.uint16))
    cv2.imwrite(str(folder / 'rgb16.png'), rng.integers(0, 65536, (H, W, 3), dtype=np.uint16))
    Image.fromarray(rgb).convert('P', palette=Image.Palette.ADAPTIVE, colors=16).save(folder / 'palette.png')
    Image.fromarray(rgb).convert('CMYK').save(folder / 'cmyk.jpg')
    Image.fromarray(rgb).save(folder / 'icc.png', icc_profile=gamma18_profile())
    Image.fromarray(rgb).save(folder / 'icc.jpg', icc_profile=gamma18_profile(), quality=95)
    frames = [Image.fromarray(np.roll(rgb, 3 * i, axis=1)) for i in range(3)]
    frames[0].save(folder / 'anim.gif', save_all=True, append_images=frames[1:], duration=[40, 60, 80], loop=0)
    Image.fromarray(rgb[:1, :1]).save(folder / 'one.png')
    data = (folder / 'icc.jpg').read_bytes()
    (folder / 'truncated.jpg').write_bytes(data[: len(data) // 2])
    (folder / 'empty.png').write_bytes(b'')
    (folder / 'corrupt.png').write_bytes(b'\x89PNG not really')
    return folder


# ------------------------------------------------------------------------------------------------ reader / writer
@pytest.mark.parametrize('o', range(1, 9))
def test_orientation_is_what_viewers_show(tmp_path, o):
    rgb = np.random.default_rng(o).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / 'x.png', exif=exif_bytes(o))
    pic = read_picture(str(tmp_path / 'x.png'))
    shown = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / 'x.png')))
    assert np.array_equal(output_arrays(pic)[0], shown)
    assert pic.info.orientation == o and pic.frames[0].shape[:2] == ((W, H) if o >= 5 else (H, W))


KINDS = {  # file: (mode in the file, output channels, alpha, bit depth, frames read, note)
    'exif6.jpg': ('RGB', 3, False, 8, 1, 'orientation 6 applied'),
    'rgba.png': ('RGBA', 3, True, 8, 1, None),
    'la.png': ('LA', 1, True, 8, 1, None),
    'grey.png': ('L', 1, False, 8, 1, None),
    'grey16.png': ('I;16', 1, False, 16, 1, None),
    'rgb16.png': ('RGB', 3, False, 16, 1, None),
    'palette.png': ('P', 3, False, 8, 1, 'palette image converted to RGB'),
    'cmyk.jpg': ('CMYK', 3, False, 8, 1, 'CMYK image converted to RGB'),
    'anim.gif': ('P', 3, False, 8, 1, '3 frames: only the first'),
}


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp('photo_inputs'))


@pytest.mark.parametrize('name', sorted(KINDS))
def test_reader_records_each_kind(inputs, name):
    mode, channels, alpha, depth, n, note = KINDS[name]
    pic = read_picture(str(inputs / name))
    info = pic.info
    assert (info.mode, info.channels, info.has_alpha, info.bit_depth, len(pic.frames)) == (
        mode,
        channels,
        alpha,
        depth,
        n,
    )
    assert pic.frames[0].dtype == np.float32 and pic.frames[0].shape[2] == 3
    assert (pic.alpha is not None) == alpha
    assert note is None or any(note in x for x in info.notes), info.notes
    if depth == 16:  # exact 16-bit values, not Pillow's 8-bit cut
        raw = cv2.imread(str(inputs / name), cv2.IMREAD_UNCHANGED)
        raw = raw if raw.ndim == 2 else raw[..., ::-1]
        assert np.array_equal(output_arrays(pic)[0], raw)


def test_unreadable_files_raise_naming_the_file(inputs):
    for name, why in (
        ('truncated.jpg', 'not a readable image'),
        ('empty.png', 'empty file'),
        ('corrupt.png', 'not a readable image'),
        ('missing.png', 'no such file'),
    ):
        with pytest.raises(ImageReadError, match=why) as err:
            read_picture(str(inputs / name))
        assert name in str(err.value)


def test_to_srgb_converts_pixels_and_tags_srgb(inputs):
    kept, conv = read_picture(str(inputs / 'icc.png')), read_picture(str(inputs / 'icc.png'), to_srgb=True)
    assert kept.info.icc_profile == gamma18_profile() and conv.info.icc_profile == srgb_profile()
    assert np.abs(kept.frames[0] - conv.frames[0]).max() > 0.02  # gamma 1.8 -> sRGB moves mid-tones


def test_png16_encoder_round_trip_with_profile_and_exif(tmp_path):
    rng = np.random.default_rng(1)
    for shape in ((5, 7), (5, 7, 2), (5, 7, 3), (5, 7, 4)):
        arr = rng.integers(0, 65536, shape, dtype=np.uint16)
        path = tmp_path / f'x{len(shape)}.png'
        path.write_bytes(png_bytes(arr, gamma18_profile(), exif_for_output(exif_bytes(6), 7, 5)))
        pic = read_picture(str(path))
        assert np.array_equal(output_arrays(pic)[0], arr), shape
        im = Image.open(path)
        assert im.info['icc_profile'] == gamma18_profile() and im.getexif()[ORIENTATION] == 1


def test_exif_for_output_resets_orientation_and_size():
    ex = Image.Exif()
    ex.load(exif_for_output(exif_bytes(6), 40, 24))
    assert ex[ORIENTATION] == 1 and ex[MAKE] == 'TestCam'
    assert (ex.get_ifd(EXIF_IFD)[PIXEL_X], ex.get_ifd(EXIF_IFD)[PIXEL_Y]) == (40, 24)
    tiff_only = Image.Exif()
    tiff_only[256], tiff_only[273] = 10, 8  # layout tags of a TIFF source: nothing worth carrying
    assert exif_for_output(tiff_only.tobytes(), 4, 4) is None


def test_alpha_is_bicubic_and_formats_without_alpha_warn(inputs, tmp_path):
    pic = read_picture(str(inputs / 'rgba.png'))
    sr = super_resolve_picture(pic, bicubic4)
    ref = bicubic4(torch.from_numpy(pic.alpha)[None, None])[0, 0].numpy()
    assert np.abs(upscale_alpha(pic.alpha, (4 * H, 4 * W)) - ref).max() < 1e-5
    written, notes = write_picture(str(tmp_path / 'o.png'), sr)
    assert written.shape == (4 * H, 4 * W, 4) and not notes
    got = np.asarray(Image.open(tmp_path / 'o.png'))[..., 3].astype(int)
    assert np.abs(got - np.round(ref * 255)).max() <= 1  # stated tolerance: 1/255
    written, notes = write_picture(str(tmp_path / 'o.jpg'), sr)
    assert written.shape == (4 * H, 4 * W, 3) and any('alpha dropped' in n for n in notes)
    assert Image.open(tmp_path / 'o.jpg').mode == 'RGB'


def test_all_frames_keep_timing(inputs, tmp_path):
    pic = read_picture(str(inputs / 'anim.gif'), frames='all')
    assert len(pic.frames) == 3 and pic.info.durations == [40, 60, 80]
    sr = super_resolve_picture(pic, bicubic4)
    for ext in ('gif', 'png', 'webp'):
        write_picture(str(tmp_path / f'a.{ext}'), sr)
        back = read_picture(str(tmp_path / f'a.{ext}'), frames='all')
        assert len(back.frames) == 3 and back.info.durations == [40, 60, 80], ext
        assert back.frames[0].shape == (4 * H, 4 * W, 3)
    _, notes = write_picture(str(tmp_path / 'a.jpg'), sr)
    assert any('only the first of 3' in n for n in notes)


# ------------------------------------------------------------------------------------------------ CLI + Inferencer
def test_picture_from_array_takes_only_unambiguous_pixels():
    """uint8, uint16 and float in [0, 1] (rounding tolerated) are read; float 0-255, other integer dtypes and
    NaN/inf are refused instead of being clipped into a white image."""
    rgb = np.random.default_rng(0).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    ref = rgb.astype(np.float32) / 255
    assert np.allclose(picture_from_array(rgb).frames[0], ref)
    assert np.allclose(picture_from_array(rgb.astype(np.uint16) * 257).frames[0], ref, atol=1e-6)
    assert picture_from_array(rgb.astype(np.uint16)).info.bit_depth == 16
    assert np.allclose(picture_from_array(ref.astype(np.float64)).frames[0], ref)
    nudged = ref.copy()
    nudged[0, 0] = [1 + 5e-7, -5e-7, 0.5]  # rounding of a float pipeline: accepted, clipped
    assert picture_from_array(nudged).frames[0][0, 0].tolist() == [1.0, 0.0, 0.5]
    full = np.zeros((2, 2, 3), np.float32)
    full[1] = 255
    with pytest.raises(ValueError, match=r'must lie in \[0, 1\], got \[0, 255\]; divide 0-255 values by 255'):
        picture_from_array(full)
    with pytest.raises(ValueError, match='divide 0-255 values by 255'):
        picture_from_array(-ref)
    for dtype in (np.int64, np.int32, np.int16, np.int8, np.uint32, bool):
        with pytest.raises(TypeError, match=r'unsupported pixel dtype .*uint8 \(0-255\), uint16 \(0-65535\) or float'):
            picture_from_array(rgb.astype(dtype))
    for bad in (np.nan, np.inf, -np.inf):
        broken = ref.copy()
        broken[1, 1, 1] = bad
        with pytest.raises(ValueError, match='finite'):
            picture_from_array(broken)
    with pytest.raises(ValueError, match=r'\(H, W\)'):
        picture_from_array(np.zeros((0, 4, 3), np.uint8))


@pytest.fixture(scope='module')
def tiny(tmp_path_factory, inputs):
    from mmengine.registry import init_default_scope

    from iter_mm.utils.config import inference_model_cfg, load_config
    from mmagic.registry import MODELS

    init_default_scope('mmagic')
    tmp = tmp_path_factory.mktemp('photo_sr')
    torch.manual_seed(0)
    net = MODELS.build(inference_model_cfg(load_config(TINY).model)).eval()
    ckpt = tmp / 'tiny.pth'
    torch.save({'state_dict': net.state_dict()}, ckpt)
    return dict(net=net, ckpt=str(ckpt), tmp=tmp, inferencers={})


def run_cli(tiny, inputs, out, *extra):
    """``python tools/infer.py`` on ``inputs`` -> the finished process."""
    return run_tool(
        'infer',
        inputs,
        '-c',
        TINY,
        '-w',
        tiny['ckpt'],
        '-o',
        out,
        '--device',
        'cpu',
        '--seed',
        '0',
        '--steps',
        '2',
        *extra,
    )


def run_inferencer(tiny, path, out, **params):
    from iter_mm.apis import MMagicInferencer

    key = tuple(sorted(params.items()))
    if key not in tiny['inferencers']:  # one per option set: building it is the slow part
        tiny['inferencers'][key] = MMagicInferencer(
            'iter',
            model_config=TINY,
            model_ckpt=tiny['ckpt'],
            device='cpu',
            extra_parameters=dict(seed=0, steps=2, **params),
        )
    sr = tiny['inferencers'][key]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        _, img = sr.infer(img=str(path), result_out_dir=str(out))
    return img, [str(w.message) for w in caught]


def decoded(path: Path):
    """Pixels (uint8/uint16, RGB order), Pillow mode, frame count, ICC bytes and EXIF of a written file."""
    im = Image.open(path)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.suffix == '.png' else None
    if raw is not None and raw.dtype == np.uint16:
        pixels = raw if raw.ndim == 2 else raw[..., 2::-1] if raw.shape[2] == 3 else raw[..., [2, 1, 0, 3]]
    else:
        pixels = np.asarray(im.convert('RGBA' if im.mode in ('P', 'RGBA') else im.mode))
    return pixels, im.mode, getattr(im, 'n_frames', 1), im.info.get('icc_profile'), im.getexif()


# file: (output size (h, w), Pillow mode of the output, uint16?)
EXPECTED = {
    'exif3.jpg': ((24, 40), 'RGB', False),
    'exif6.jpg': ((40, 24), 'RGB', False),
    'exif8.jpg': ((40, 24), 'RGB', False),
    'rgba.png': ((24, 40), 'RGBA', False),
    'la.png': ((24, 40), 'LA', False),
    'grey.png': ((24, 40), 'L', False),
    'grey16.png': ((24, 40), 'I;16', True),
    'rgb16.png': ((24, 40), 'RGB', True),
    'palette.png': ((24, 40), 'RGB', False),
    'cmyk.jpg': ((24, 40), 'RGB', False),
    'icc.png': ((24, 40), 'RGB', False),
    'icc.jpg': ((24, 40), 'RGB', False),
    'anim.gif': ((24, 40), 'P', False),
    'one.png': ((4, 4), 'RGB', False),
}


def test_cli_and_inferencer_on_every_kind(tiny, inputs):
    out = tiny['tmp'] / 'cli'
    done = run_cli(tiny, inputs, out)
    assert done.returncode == 1  # the truncated, empty and corrupt files fail; the rest is written
    err = done.stderr
    for bad in ('truncated.jpg', 'empty.png', 'corrupt.png'):
        assert f'error: {inputs / bad}' in err and not (out / bad).exists()
    assert 'palette image converted' in err and 'CMYK image converted' in err and '3 frames' in err
    for name, (size, mode, deep) in EXPECTED.items():
        pixels, got_mode, n, icc, exif = decoded(out / name)
        assert pixels.shape[:2] == size and got_mode == mode, name
        assert (pixels.dtype == np.uint16) == deep and n == 1, name
        assert exif.get(ORIENTATION, 1) == 1, name
        assert icc == (gamma18_profile() if name.startswith('icc') else None), name
        if name.startswith('exif'):
            ifd = exif.get_ifd(EXIF_IFD)
            assert exif[MAKE] == 'TestCam' and (ifd[PIXEL_X], ifd[PIXEL_Y]) == (size[1], size[0]), name
    # EXIF-rotated: the network saw the upright picture (written losslessly with --ext png to compare)
    assert run_cli(tiny, inputs / 'exif6.jpg', tiny['tmp'] / 'cli_png', '--ext', 'png').returncode == 0
    pic = read_picture(str(inputs / 'exif6.jpg'))
    with torch.no_grad():
        ref = tiny['net'].restore(torch.from_numpy(pic.frames[0]).permute(2, 0, 1)[None], seed=0, steps=2)
    ref = (ref[0].clamp(0, 1) * 255).round().permute(1, 2, 0).numpy()
    assert np.abs(decoded(tiny['tmp'] / 'cli_png' / 'exif6.png')[0] - ref).max() <= 1
    # alpha: bicubic of the input's alpha within 1/255
    for name in ('rgba.png', 'la.png'):
        alpha = read_picture(str(inputs / name)).alpha
        ref = bicubic4(torch.from_numpy(alpha)[None, None])[0, 0].numpy()
        assert np.abs(decoded(out / name)[0][..., -1] - np.round(ref * 255)).max() <= 1, name

    # the Inferencer writes and returns the same
    for name in EXPECTED:
        img, _ = run_inferencer(tiny, inputs / name, tiny['tmp'] / 'api' / name)
        cli, api = decoded(out / name), decoded(tiny['tmp'] / 'api' / name)
        assert np.array_equal(cli[0], api[0]) and cli[1:4] == api[1:4], name
        assert dict(cli[4]) == dict(api[4]) and img.shape[:2] == cli[0].shape[:2], name
        if name.endswith('.png'):
            assert np.array_equal(img, cli[0]), name


def test_cli_options_and_inferencer_agree(tiny, inputs):
    sub = tiny['tmp'] / 'sub'
    sub.mkdir()
    for name in ('rgba.png', 'anim.gif'):
        (sub / name).write_bytes((inputs / name).read_bytes())
    out = tiny['tmp'] / 'opts'
    assert (
        run_cli(
            tiny, sub, out, '--ext', 'webp', '--quality', '100', '--frames', 'all', '--alpha-upscale', 'iter'
        ).returncode
        == 0
    )
    for name, frames in (('rgba', 1), ('anim', 3)):
        cli = read_picture(str(out / f'{name}.webp'), frames='all')
        assert len(cli.frames) == frames and cli.frames[0].shape == (24, 40, 3)
        img, _ = run_inferencer(
            tiny,
            sub / f'{name}.{"png" if name == "rgba" else "gif"}',
            tiny['tmp'] / 'opts_api' / f'{name}.webp',
            quality=100,
            frames='all',
            alpha_upscale='iter',
        )
        api = read_picture(str(tiny['tmp'] / 'opts_api' / f'{name}.webp'), frames='all')
        assert all(np.array_equal(a, b) for a, b in zip(cli.frames, api.frames)), name
    # ITER on alpha: the network's output on the alpha replicated to three channels (lossless WebP)
    alpha = read_picture(str(sub / 'rgba.png')).alpha
    with torch.no_grad():
        ref = tiny['net'].restore(torch.from_numpy(alpha)[None, None].expand(1, 3, H, W), seed=0, steps=2)
    ref = np.round(ref[0].clamp(0, 1).mean(0).numpy() * 255)
    assert np.abs(np.asarray(Image.open(out / 'rgba.webp'))[..., 3] - ref).max() <= 1
    # a format without alpha: a clear warning; existing outputs are kept unless --overwrite
    done = run_cli(tiny, sub / 'rgba.png', out, '--ext', 'jpg')
    assert done.returncode == 0 and 'warning: alpha dropped: JPEG cannot hold transparency' in done.stderr
    _, notes = run_inferencer(tiny, sub / 'rgba.png', tiny['tmp'] / 'opts_api' / 'rgba.jpg')
    assert any('alpha dropped' in n for n in notes)
    assert '--overwrite' in error_line(run_cli(tiny, sub / 'rgba.png', out, '--ext', 'jpg'))
    assert isinstance(read_picture(str(out / 'rgba.jpg')), Picture)


def test_compare_sr_and_generate_lq_read_alike(inputs, tmp_path):
    """The data tools use the same reader: upright first frame, RGB (alpha ignored), the same pixels."""
    from iter_mm.datasets.lq_pairs import read_rgb, write_png
    from iter_mm.evaluation.sr_compare import read_image

    for name in ('exif6.jpg', 'rgba.png', 'grey16.png', 'cmyk.jpg', 'anim.gif'):
        ref = read_picture(str(inputs / name)).frames[0]
        cmp = read_image(str(inputs / name)).permute(1, 2, 0).numpy()
        lq = read_rgb(str(inputs / name))
        assert np.array_equal(cmp, ref) and lq.shape == ref.shape and lq.dtype == np.uint8, name
        assert np.array_equal(lq, np.round(ref * 255)), name
    write_png(str(tmp_path / 'x.png'), lq)
    assert np.array_equal(np.asarray(Image.open(tmp_path / 'x.png')), lq)
