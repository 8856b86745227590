"""CPU memory rule of tiling (iter_mm.utils.tiling.cpu_max_pixels): injected memory sizes, explicit settings win,
no change of numerics for a given tile. No timing, no real memory pressure."""

import argparse
import warnings

import pytest
import torch
from stub_networks import StubITERNet

from iter_mm.models.inference import restore_image
from iter_mm.models.options import DEFAULT_MAX_PIXELS, RestoreOptions, add_restore_arguments, given_options
from iter_mm.utils import tiling
from iter_mm.utils.tiling import (
    MemoryTilingNote,
    auto_tile_size,
    call_bytes_per_lq_pixel,
    cpu_max_pixels,
    host_memory_bytes,
    memory_max_pixels,
    model_width_factor,
)

GIB = 2**30


def test_per_pixel_model_by_hand():
    assert call_bytes_per_lq_pixel(4) == 5120 * 16 == 81920  # 80 KiB per LQ pixel, paper model x4
    assert call_bytes_per_lq_pixel(2) == 5120 * 4
    assert call_bytes_per_lq_pixel(4, width=0.25) == 20480
    # 16 GiB, one 1000x1000 x4 image: (8 GiB - 64 * 16 * 1e6) // 81920 = 7565934592 // 81920
    assert memory_max_pixels(16 * GIB, 4, image_pixels=10**6) == 92357
    assert memory_max_pixels(2 * GIB, 4) == 128 * 128  # 1 GiB / 80 KiB = 13107 < the 128x128 floor


@pytest.mark.parametrize(
    'memory_gib,h,w,expected,side',
    [
        (16, 1000, 1000, 92357, 288),  # isqrt(92357) = 303 -> 288 on the 16-pixel grid
        # 720x720 (whole by default): (16 GiB - 64 * 16 * 518400) // 81920 = 203235 -> tiles of 448 (isqrt 450)
        (32, 720, 720, 203235, 448),
        (2, 200, 300, 128 * 128, 128),  # floor
    ],
)
def test_cpu_default_is_lowered_to_fit_the_injected_memory(memory_gib, h, w, expected, side):
    with pytest.warns(MemoryTilingNote, match=f'tiles of {side}x{side} LQ pixels'):
        got = cpu_max_pixels(DEFAULT_MAX_PIXELS, None, 'cpu', 4, 1, h, w, multiple=16, memory=memory_gib * GIB)
    assert got == expected and auto_tile_size(got, 16) == side


def test_enough_memory_keeps_the_default_and_small_images_are_quiet():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        big = cpu_max_pixels(DEFAULT_MAX_PIXELS, None, 'cpu', 4, 1, 3000, 2000, 16, memory=256 * GIB)
        assert big is DEFAULT_MAX_PIXELS  # (128 GiB - 6.1 GB) // 80 KiB > 720 x 720
        # a lower budget that does not tile this image: used (batching), but no note
        small = cpu_max_pixels(DEFAULT_MAX_PIXELS, None, 'cpu', 4, 4, 64, 64, 16, memory=16 * GIB)
    assert small == 104652  # (8589934592 - 64 * 16 * 4 * 64 * 64) // 81920 = 8573157376 // 81920


def test_explicit_settings_gpu_and_unknown_memory_keep_max_pixels():
    mem = dict(memory=1 * GIB)
    assert cpu_max_pixels(720 * 720, None, 'cpu', 4, 1, 900, 900, 16, **mem) == 720 * 720  # a plain int: given
    assert cpu_max_pixels(DEFAULT_MAX_PIXELS, 512, 'cpu', 4, 1, 900, 900, 16, **mem) is DEFAULT_MAX_PIXELS
    assert cpu_max_pixels(None, None, 'cpu', 4, 1, 900, 900, 16, **mem) is None
    assert cpu_max_pixels(DEFAULT_MAX_PIXELS, None, 'cuda', 4, 1, 900, 900, 16, **mem) is DEFAULT_MAX_PIXELS
    assert (
        cpu_max_pixels(DEFAULT_MAX_PIXELS, None, torch.device('cuda', 0), 4, 1, 900, 900, 16, **mem)
        is DEFAULT_MAX_PIXELS
    )
    assert cpu_max_pixels(DEFAULT_MAX_PIXELS, None, 'cpu', 4, 1, 900, 900, 16, memory=0) is DEFAULT_MAX_PIXELS


def test_default_marker_survives_options_and_a_given_value_does_not():
    opts = RestoreOptions()
    assert opts.max_pixels == 720 * 720 and opts.max_pixels.is_default
    again = RestoreOptions(**opts.as_dict()).replace(steps=2)  # ITERModel: test_cfg dict, then overrides
    assert again.max_pixels.is_default
    for given in (RestoreOptions(max_pixels=720 * 720), opts.replace(max_pixels=720 * 720)):
        assert given.max_pixels == 720 * 720 and not getattr(given.max_pixels, 'is_default', False)
    parser = argparse.ArgumentParser()
    add_restore_arguments(parser)
    cli = given_options(parser.parse_args(['--max-pixels', '518400']))
    assert not getattr(RestoreOptions(**cli).max_pixels, 'is_default', False)
    assert 'max_pixels' not in given_options(parser.parse_args([]))


def test_model_width_factor():
    from iter_mm.models.archs.vqgan import VQGANDecoder

    class Net(torch.nn.Module):
        def __init__(self, nf):
            super().__init__()
            self.vqgan = torch.nn.Module()
            self.vqgan.decoder = VQGANDecoder(
                nf=nf, ch_mult=(1, 1), embed_dim=8, swin_dim=8, swin_depth=1, swin_heads=1, swin_window=4, norm_groups=4
            )

    assert model_width_factor(Net(32)) == 0.25 and model_width_factor(Net(128)) == 1.0
    assert model_width_factor(StubITERNet()) == 1.0  # unreadable: the paper model's


def test_host_memory_reads_ram_and_cgroup(monkeypatch):
    total = host_memory_bytes()
    assert total is None or total > 0
    monkeypatch.setattr(tiling, '_read_int', lambda path: 3 * GIB if path == '/sys/fs/cgroup/memory.max' else None)
    capped = host_memory_bytes()
    assert capped == min(3 * GIB, total or 3 * GIB)


def test_memory_tile_output_equals_the_tiler_for_that_tile():
    # the rule only picks max_pixels: the output is the tiler's for the chosen tile side, bit for bit
    net = StubITERNet()
    lq = torch.rand(1, 3, 144, 160, generator=torch.Generator().manual_seed(0))
    with pytest.warns(MemoryTilingNote):
        fit = cpu_max_pixels(DEFAULT_MAX_PIXELS, None, 'cpu', 4, 1, 144, 160, net.lq_pad_multiple, memory=2 * GIB)
    side = auto_tile_size(fit, net.lq_pad_multiple)
    assert (fit, side) == (128 * 128, 128)
    auto = restore_image(net, lq, seed=0, steps=2, max_pixels=fit)
    assert torch.equal(auto, restore_image(net, lq, seed=0, steps=2, tile=side))
    assert torch.equal(auto, restore_image(net, lq, seed=0, steps=2, tile=side, max_pixels=None))
    assert not torch.equal(auto, restore_image(net, lq, seed=0, steps=2))  # 720 x 720: whole image, other noise
