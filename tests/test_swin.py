"""Swin blocks against independent formulas and a naive reference (docs/faithfulness.md#swin-blocks)."""

import pytest
import torch
import torch.nn.functional as F

from iter_mm.models.archs.swin import (
    RSTB,
    GatedMlp,
    SwinBlock,
    SwinLayers,
    WindowAttention,
    relative_position_index,
    shift_attention_mask,
    window_partition,
    window_reverse,
)


def naive_rel_index(w):
    n = w * w
    out = torch.empty(n, n, dtype=torch.long)
    for i in range(n):
        for j in range(n):
            yi, xi, yj, xj = i // w, i % w, j // w, j % w
            out[i, j] = (yi - yj + w - 1) * (2 * w - 1) + (xi - xj + w - 1)
    return out


def region(r, n, ws, s):
    return 0 if r < n - ws else (1 if r < n - s else 2)


def naive_shift_mask(h, w, ws, s):
    """Loop over windows and token pairs; label = (row region, col region) of the rolled grid position."""
    nwy, nwx = h // ws, w // ws
    out = torch.zeros(nwy * nwx, ws * ws, ws * ws)
    for wy in range(nwy):
        for wx in range(nwx):
            labels = [(region(wy * ws + t // ws, h, ws, s), region(wx * ws + t % ws, w, ws, s)) for t in range(ws * ws)]
            for i in range(ws * ws):
                for j in range(ws * ws):
                    out[wy * nwx + wx, i, j] = 0.0 if labels[i] == labels[j] else -100.0
    return out


def test_relative_position_index_formula():
    idx = relative_position_index(8)
    assert idx.dtype == torch.int64 and idx.shape == (64, 64)
    assert torch.equal(idx, naive_rel_index(8))
    assert idx.min() == 0 and idx.max() == 224
    assert torch.equal(relative_position_index(3), naive_rel_index(3))


@pytest.mark.parametrize('h,w,ws,s', [(32, 32, 8, 4), (8, 16, 4, 2), (12, 8, 4, 2)])
def test_shift_mask_formula(h, w, ws, s):
    m = shift_attention_mask(h, w, ws, s)
    assert m.dtype == torch.float32 and m.shape == ((h // ws) * (w // ws), ws * ws, ws * ws)
    assert torch.equal(m, naive_shift_mask(h, w, ws, s))


def test_reference_grid_has_16_masked_windows_with_minus_100():
    m = shift_attention_mask(32, 32, 8, 4)
    assert m.shape == (16, 64, 64)
    assert set(m.unique().tolist()) == {-100.0, 0.0}
    assert (m[0] == 0).all()  # the first window lies in one region
    assert (m[-1] != 0).any()  # the bottom-right window mixes regions


def test_window_partition_layout_and_inverse():
    x = torch.randn(2, 8, 12, 3)
    win = window_partition(x, 4)
    assert win.shape == (2 * 2 * 3, 4, 4, 3)
    # window k = b * nW + wy * nWx + wx holds x[b, 4wy:4wy+4, 4wx:4wx+4]
    assert torch.equal(win[1 * 6 + 1 * 3 + 2], x[1, 4:8, 8:12])
    assert torch.equal(win[0 * 6 + 0 * 3 + 1], x[0, 0:4, 4:8])
    assert torch.equal(window_reverse(win, 4, 8, 12), x)


def plain_attention(attn: WindowAttention, x, mask):
    """softmax(q * scale @ k^T + bias (+ mask per window)) @ v, then proj (docs/faithfulness.md#swin-blocks)."""
    bn, n, d = x.shape
    h = attn.num_heads
    qkv = attn.qkv(x).reshape(bn, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0] * (d // h) ** -0.5, qkv[1], qkv[2]
    logits = q @ k.transpose(-2, -1)
    table = attn.relative_position_bias_table
    bias = table[naive_rel_index(attn.window_size).view(-1)].view(n, n, h).permute(2, 0, 1)
    logits = logits + bias.unsqueeze(0)
    if mask is not None:
        nw = mask.shape[0]
        logits = (logits.view(bn // nw, nw, h, n, n) + mask.unsqueeze(1).unsqueeze(0)).view(bn, h, n, n)
    out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(bn, n, d)
    return attn.proj(out)


@pytest.mark.parametrize('with_mask', [False, True])
def test_sdpa_matches_plain_attention(with_mask):
    torch.manual_seed(0)
    attn = WindowAttention(32, 4, 4)
    torch.nn.init.normal_(attn.relative_position_bias_table, std=1.0)  # make the bias matter
    mask = shift_attention_mask(8, 12, 4, 2) if with_mask else None  # 6 windows
    x = torch.randn(2 * 6, 16, 32)  # batch 2: the mask must repeat per image
    ref = plain_attention(attn, x, mask)
    torch.testing.assert_close(attn(x, mask), ref, rtol=1e-5, atol=1e-5)


def test_gated_mlp_global_gate_and_key_order():
    torch.manual_seed(0)
    mlp = GatedMlp(8, 32)
    assert list(mlp.state_dict()) == [
        'fc1.weight',
        'fc1.bias',
        'fc2.weight',
        'fc2.bias',
        'attn.0.weight',
        'attn.0.bias',
        'attn.2.weight',
        'attn.2.bias',
    ]
    x = torch.randn(2, 20, 8)
    a = F.gelu(x @ mlp.fc1.weight.t() + mlp.fc1.bias)  # exact erf GELU
    g = a.mean(1, keepdim=True) @ mlp.attn[0].weight.t() + mlp.attn[0].bias
    g = torch.sigmoid(F.silu(g) @ mlp.attn[2].weight.t() + mlp.attn[2].bias)
    ref = (a * g) @ mlp.fc2.weight.t() + mlp.fc2.bias
    torch.testing.assert_close(mlp(x), ref)
    # the gate sees every token: changing token 19 changes token 0's output
    x2 = x.clone()
    x2[:, 19] += 5
    assert not torch.allclose(mlp(x2)[:, 0], mlp(x)[:, 0])


def test_block_state_dict_order_and_mask_buffer():
    shifted = SwinBlock(32, 4, window_size=8, shift_size=4)
    keys = list(shifted.state_dict())
    assert keys[:4] == ['attn_mask', 'norm1.weight', 'norm1.bias', 'attn.relative_position_bias_table']
    assert keys[4:6] == ['attn.relative_position_index', 'attn.qkv.weight']
    assert torch.equal(shifted.attn_mask, naive_shift_mask(32, 32, 8, 4))
    assert 'attn_mask' not in SwinBlock(32, 4, window_size=8, shift_size=0).state_dict()


def naive_block(blk: SwinBlock, x, h, w):
    """Reference block: roll, attention window by window with region-label masking, unroll, MLP."""
    b, _, c = x.shape
    ws, s = blk.window_size, blk.shift_size
    y = blk.norm1(x).view(b, h, w, c)
    if s:
        y = torch.roll(y, (-s, -s), (1, 2))
    out = torch.zeros_like(y)
    mask_all = naive_shift_mask(h, w, ws, s) if s else None
    for bi in range(b):
        for wy in range(h // ws):
            for wx in range(w // ws):
                win = y[bi, wy * ws : (wy + 1) * ws, wx * ws : (wx + 1) * ws].reshape(1, ws * ws, c)
                m = None if mask_all is None else mask_all[wy * (w // ws) + wx : wy * (w // ws) + wx + 1]
                out[bi, wy * ws : (wy + 1) * ws, wx * ws : (wx + 1) * ws] = plain_attention(blk.attn, win, m).view(
                    ws, ws, c
                )
    if s:
        out = torch.roll(out, (s, s), (1, 2))
    x = x + out.view(b, h * w, c)
    return x + blk.mlp(blk.norm2(x))


@pytest.mark.parametrize('shift', [0, 2])
def test_block_matches_naive_reference_on_non_reference_grid(shift):
    torch.manual_seed(1)
    blk = SwinBlock(16, 2, window_size=4, shift_size=shift, input_resolution=(32, 32))
    torch.nn.init.normal_(blk.attn.relative_position_bias_table, std=1.0)
    x = torch.randn(2, 8 * 12, 16)
    torch.testing.assert_close(blk(x, (8, 12)), naive_block(blk, x, 8, 12), rtol=1e-5, atol=1e-5)


def test_stored_mask_is_used_on_reference_grid_only():
    torch.manual_seed(2)
    blk = SwinBlock(16, 2, window_size=4, shift_size=2, input_resolution=(8, 8))
    x = torch.randn(1, 64, 16)
    x_small = torch.randn(1, 16, 16)
    before, before_small = blk(x, (8, 8)), blk(x_small, (4, 4))
    blk.attn_mask.zero_()  # a loaded buffer is what the reference grid uses
    assert not torch.allclose(blk(x, (8, 8)), before)
    torch.testing.assert_close(blk(x_small, (4, 4)), before_small)  # other grids compute their own mask


def test_swin_layers_residual_shapes_and_grid_error():
    torch.manual_seed(0)
    layers = SwinLayers(8, 16, num_rstb=1, depth=2, window_size=4, num_heads=2)
    assert list(layers.state_dict())[:5] == [
        'conv_in.weight',
        'conv_in.bias',
        'conv_out.weight',
        'conv_out.bias',
        'swin_blks.0.residual_group.blocks.0.norm1.weight',
    ]  # official order
    x = torch.randn(2, 8, 8, 12)
    assert layers(x).shape == x.shape
    torch.nn.init.zeros_(layers.conv_out.weight)
    torch.nn.init.zeros_(layers.conv_out.bias)
    assert torch.equal(layers(x), x)  # outer residual
    with pytest.raises(ValueError, match='multiple of the window size 4'):
        layers(torch.randn(1, 8, 8, 10))
    with pytest.raises(ValueError, match='multiple of the window size 4'):
        layers(torch.randn(1, 8, 2, 2))


def test_rstb_long_skip_and_keys():
    rstb = RSTB(16, depth=2, num_heads=2, window_size=4)
    assert 'residual_group.blocks.1.attn_mask' in rstb.state_dict() and 'conv.weight' in rstb.state_dict()
    assert 'residual_group.blocks.0.attn_mask' not in rstb.state_dict()
    for blk in rstb.residual_group.blocks:  # zero both residual branches of every block
        for lin in (blk.attn.proj, blk.mlp.fc2):
            torch.nn.init.zeros_(lin.weight)
            torch.nn.init.zeros_(lin.bias)
    x = torch.randn(1, 64, 16)
    conv = rstb.conv(x.transpose(1, 2).reshape(1, 16, 8, 8)).flatten(2).transpose(1, 2)
    torch.testing.assert_close(rstb(x, (8, 8)), x + conv)


def test_parameter_counts():
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(SwinBlock(256, 8, 8, 4)) == 923_720
    assert count(SwinBlock(128, 8, 8, 4)) == 233_384
    assert count(RSTB(256)) == 6_132_400
    assert count(RSTB(128)) == 1_547_888
