"""Swin-VQGAN: quantizer, value ranges, decoding paths, padding (docs/faithfulness.md#swin-vqgan)."""

import pytest
import torch
import torch.nn.functional as F

from iter_mm.models.archs.vqgan import Downsample, SwinVQGAN, VectorQuantizer

TINY = dict(
    nf=16,
    ch_mult=(1, 1, 2, 2),
    num_res_blocks=1,
    codebook_size=64,
    embed_dim=16,
    swin_dim=32,
    swin_window=4,
    swin_depth=2,
    swin_heads=4,
)


@pytest.fixture(scope='module')
def tiny():
    torch.manual_seed(0)
    return SwinVQGAN(**TINY).eval()


def test_tiny_geometry(tiny):
    assert tiny.downscale == 8 and tiny.pad_multiple == 32
    assert [n for n, _ in tiny.named_children()] == ['encoder', 'decoder', 'quantize']
    assert tiny.quantize.embedding.weight.shape == (64, 16)
    assert tiny.quantize.embedding.weight.abs().max() <= 1 / 64  # uniform +-1/n init


def test_quantizer_argmin_first_minimum():
    vq = VectorQuantizer(6, 3)
    codes = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 2, 0], [1, 0, 0], [-1, -1, -1], [0, 0, 3]])
    vq.embedding.weight.data.copy_(codes)
    z = torch.randn(2, 3, 4, 5) * 2
    flat = z.permute(0, 2, 3, 1).reshape(-1, 3)
    ref = torch.cdist(flat.double(), codes.double()).argmin(1).view(2, 4, 5)
    assert torch.equal(vq.indices(z), ref)
    tie = torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1)  # equals codes 1 and 3 -> first one
    assert vq.indices(tie).item() == 1


def test_quantizer_straight_through_and_legacy_loss():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 4, beta=0.25)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    zq, loss, idx = vq(z)
    e = vq.embedding.weight[idx].permute(0, 3, 1, 2)
    torch.testing.assert_close(zq, e)
    torch.testing.assert_close(loss, 1.25 * ((e - z) ** 2).mean())
    g = torch.randn_like(zq)
    (zq * g).sum().backward(retain_graph=True)
    torch.testing.assert_close(z.grad, g)  # straight-through: identity gradient
    assert vq.embedding.weight.grad is None
    z.grad = None
    loss.backward()
    n = z.numel()
    torch.testing.assert_close(z.grad, 2 * (z - e).detach() / n)  # commitment weight 1
    code_grad = torch.zeros_like(vq.embedding.weight)
    code_grad.index_add_(0, idx.flatten(), (0.25 * 2 * (e - z) / n).detach().permute(0, 2, 3, 1).reshape(-1, 4))
    torch.testing.assert_close(vq.embedding.weight.grad, code_grad)  # codebook weight beta


def test_downsample_pads_right_bottom_only():
    torch.manual_seed(0)
    d = Downsample(4)
    x = torch.randn(1, 4, 7, 9)
    ref = F.conv2d(F.pad(x, (0, 1, 0, 1)), d.conv.weight, d.conv.bias, stride=2)
    torch.testing.assert_close(d(x), ref)
    assert d(torch.randn(1, 4, 8, 8)).shape == (1, 4, 4, 4)


def test_encode_clamps_and_maps_to_minus_one_one(tiny):
    img = torch.rand(1, 3, 32, 32) * 1.4 - 0.2
    with torch.no_grad():
        torch.testing.assert_close(tiny.encode(img), tiny.encoder(img.clamp(0, 1) * 2 - 1))


def test_decode_paths_agree_and_range(tiny):
    torch.manual_seed(0)
    idx = torch.randint(0, 64, (2, 4, 4))
    with torch.no_grad():
        raw = tiny.decoder(tiny.quantize.embedding.weight[idx].permute(0, 3, 1, 2))
        img = tiny.decode_indices(idx)
        torch.testing.assert_close(img, ((raw + 1) / 2).clamp(0, 1), rtol=0, atol=1e-4)  # conv layouts differ
        assert img.shape == (2, 3, 32, 32)
        torch.testing.assert_close(tiny.decode_indices(idx.unsqueeze(1)), img)
        onehot = F.one_hot(idx, 64).permute(0, 3, 1, 2).float()
        torch.testing.assert_close(tiny.decode_onehot(onehot), img, rtol=0, atol=1e-4)


def test_decode_onehot_gradient_reaches_input_not_codebook(tiny):
    logits = torch.randn(1, 64, 4, 4, requires_grad=True)
    tiny.zero_grad()
    tiny.decode_onehot(logits.softmax(1)).mean().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert tiny.quantize.embedding.weight.grad is None


def test_forward_outputs_and_size_error(tiny):
    img = torch.rand(2, 3, 32, 64)
    with torch.no_grad():
        rec, loss, idx = tiny(img)
    assert rec.shape == img.shape and idx.shape == (2, 4, 8) and idx.dtype == torch.int64
    assert 0 <= rec.min() and rec.max() <= 1 and loss.ndim == 0
    assert torch.equal(idx, tiny.encode_indices(img))
    with pytest.raises(ValueError, match='multiples of 32'):
        tiny(torch.rand(1, 3, 40, 32))
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        tiny.encode(torch.rand(1, 1, 32, 32))


@pytest.mark.parametrize('hw', [(13, 21), (1, 1), (33, 32)])
def test_reconstruct_any_size(tiny, hw):
    img = torch.rand(1, 3, *hw)
    rec = tiny.reconstruct(img)
    assert rec.shape == img.shape
    assert tiny.reconstruct(img, always_pad=True).shape == img.shape


def test_reconstruct_always_pad_adds_a_full_multiple(tiny):
    img = torch.rand(1, 3, 32, 32)
    ext = torch.cat([img, img.flip(2)], 2)
    ext = torch.cat([ext, ext.flip(3)], 3)  # 64 x 64: the official self-test rule pads a fitting size
    torch.testing.assert_close(tiny.reconstruct(img, always_pad=True), tiny(ext)[0][..., :32, :32])


def test_reconstruct_pads_symmetrically_and_crops(tiny):
    img = torch.rand(1, 3, 20, 30)
    ext = torch.cat([img, img.flip(2)], 2)[:, :, :32]  # flip-concatenation (docs/faithfulness.md#padding-and-tiling)
    ext = torch.cat([ext, ext.flip(3)], 3)[..., :32]
    full = tiny(ext)[0]
    torch.testing.assert_close(tiny.reconstruct(img), full[..., :20, :30])
