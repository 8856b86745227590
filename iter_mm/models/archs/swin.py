"""Swin building blocks shared by every ITER network (reference section 1.3).

Three levels: ``SwinLayers`` (conv_in, RSTBs, conv_out, outer residual) -> ``RSTB`` (blocks, conv, long skip)
-> ``SwinBlock`` (window attention with relative position bias, shifted windows on odd blocks, and the
authors' MLP with a global squeeze-and-excitation gate). Module and parameter names equal the official ones.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MASK_VALUE = -100.0  # value of a forbidden pair in the shift mask (reference 1.3: -100, not -inf)


def relative_position_index(window: int) -> Tensor:
    """Relative position index of a ``window x window`` window (reference 1.3).

    Returns:
        int64 (N, N), N = window**2: (y_i - y_j + w - 1) * (2w - 1) + (x_i - x_j + w - 1).
    """
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing='ij'))
    coords = coords.flatten(1)  # (2, N), row-major tokens
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)  # (2, N, N)
    return rel[0] * (2 * window - 1) + rel[1]


def window_partition(x: Tensor, window: int) -> Tensor:
    """(B, H, W, C) -> (B * nW, window, window, C); windows batch-major, then row-major."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window, window, c)


def window_reverse(windows: Tensor, window: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`window_partition`: (B * nW, window, window, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // window) * (w // window))
    x = windows.view(b, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, c)


def shift_attention_mask(h: int, w: int, window: int, shift: int) -> Tensor:
    """Shift mask of a shifted-window block for an ``h x w`` token grid (reference 1.3).

    Rows and columns are cut into [0, h-window), [h-window, h-shift), [h-shift, h); token pairs of one window
    with different region labels get -100, equal labels 0.

    Returns:
        float32 (nW, N, N) with nW = (h/window)(w/window), N = window**2.
    """
    labels = torch.zeros(1, h, w, 1)
    cuts = lambda n: (slice(0, n - window), slice(n - window, n - shift), slice(n - shift, n))
    label = 0
    for rows in cuts(h):
        for cols in cuts(w):
            labels[:, rows, cols, :] = label
            label += 1
    win = window_partition(labels, window).view(-1, window * window)  # (nW, N)
    diff = win[:, None, :] - win[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, MASK_VALUE)


@functools.lru_cache(maxsize=32)
def _cached_shift_mask(h: int, w: int, window: int, shift: int, device: torch.device,
                       dtype: torch.dtype) -> Tensor:
    """Shift mask for a non-reference grid, cached per (h, w, window, shift, device, dtype). Read-only."""
    return shift_attention_mask(h, w, window, shift).to(device=device, dtype=dtype)


def check_token_grid(h: int, w: int, window: int) -> None:
    """Raise a clear error unless the token grid (h, w) is a positive multiple of the window."""
    if h < window or w < window or h % window or w % window:
        raise ValueError(
            f'Swin token grid {h}x{w} must be a multiple of the window size {window} in both directions '
            f'(and at least {window}x{window}); pad the input (e.g. to a multiple of {window} tokens) first.')


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with a relative position bias.

    Args:
        dim: channels D. window_size: window side w (N = w*w tokens). num_heads: heads (D % heads == 0).
    """

    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim {dim} is not divisible by num_heads {num_heads}')
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer('relative_position_index', relative_position_index(window_size), persistent=True)
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)  # reference 1.10

    def relative_position_bias(self) -> Tensor:
        """(heads, N, N) bias gathered from the table."""
        n = self.window_size ** 2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, self.num_heads).permute(2, 0, 1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: (B * nW, N, D); mask: (nW, N, N) shift mask or None -> (B * nW, N, D)."""
        bn, n, d = x.shape
        qkv = self.qkv(x).view(bn, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B * nW, heads, N, hd)
        bias = self.relative_position_bias()  # (heads, N, N)
        if mask is None:
            attn_mask = bias.unsqueeze(0).to(q.dtype)
        else:
            # fold windows into the head axis so the (nW, heads, N, N) mask broadcasts over the batch
            nw = mask.shape[0]
            q, k, v = (t.reshape(bn // nw, nw * self.num_heads, n, self.head_dim) for t in (q, k, v))
            attn_mask = (bias.unsqueeze(0) + mask.unsqueeze(1)).reshape(1, nw * self.num_heads, n, n).to(q.dtype)
        # softmax(q * scale @ k^T + bias (+ mask)) @ v
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=self.scale)
        out = out.reshape(bn, self.num_heads, n, self.head_dim).transpose(1, 2).reshape(bn, n, d)
        return self.proj(out)


class GatedMlp(nn.Module):
    """MLP with the authors' global squeeze-and-excitation gate (reference 1.3, 8.2).

    fc1 -> GELU(erf) -> x * sigmoid(attn(mean over all tokens)) -> fc2. State-dict order fc1, fc2, attn.0, attn.2.
    """

    def __init__(self, dim: int, hidden_dim: int, se_reduction: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.attn = nn.Sequential(nn.Linear(hidden_dim, hidden_dim // se_reduction), nn.SiLU(),
                                  nn.Linear(hidden_dim // se_reduction, hidden_dim), nn.Sigmoid())
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, L, D) with L = all tokens of the image -> (B, L, D)."""
        x = self.act(self.fc1(x))
        x = x * self.attn(x.mean(dim=1, keepdim=True))  # gate from the image-wide token mean
        return self.fc2(x)


class SwinBlock(nn.Module):
    """Pre-norm Swin transformer block: x + attn(norm1(x)); x + mlp(norm2(x)).

    Args:
        dim: channels. num_heads: heads. window_size: window side. shift_size: cyclic shift (0 = regular windows).
        input_resolution: reference token grid whose shift mask is stored as the ``attn_mask`` buffer.
        mlp_ratio: hidden width factor of the MLP.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int = 8, shift_size: int = 0,
                 input_resolution: tuple[int, int] = (32, 32), mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.input_resolution = tuple(input_resolution)
        if min(self.input_resolution) <= window_size:  # SwinIR rule, evaluated on input_resolution only
            shift_size, window_size = 0, min(self.input_resolution)
        if not 0 <= shift_size < window_size:
            raise ValueError(f'shift_size {shift_size} must be in [0, window_size={window_size})')
        self.dim, self.window_size, self.shift_size = dim, window_size, shift_size
        # registered first so that it leads the block's state dict, as in the official checkpoints
        mask = shift_attention_mask(*self.input_resolution, window_size, shift_size) if shift_size else None
        self.register_buffer('attn_mask', mask, persistent=True)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = GatedMlp(dim, int(dim * mlp_ratio))

    def _mask(self, h: int, w: int, ref: Tensor) -> Tensor | None:
        """Shift mask (nW, N, N) for the actual grid: the stored buffer on the reference grid, else computed."""
        if not self.shift_size:
            return None
        if (h, w) == self.input_resolution and self.attn_mask is not None:
            return self.attn_mask
        return _cached_shift_mask(h, w, self.window_size, self.shift_size, ref.device, ref.dtype)

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        """x: (B, h*w, D) row-major tokens; x_size: (h, w) -> (B, h*w, D)."""
        h, w = x_size
        b, length, c = x.shape
        if length != h * w:
            raise ValueError(f'token count {length} does not match the grid {h}x{w}')
        check_token_grid(h, w, self.window_size)
        ws, s = self.window_size, self.shift_size
        y = self.norm1(x).view(b, h, w, c)
        if s:
            y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
        y = window_partition(y, ws).view(-1, ws * ws, c)
        y = self.attn(y, self._mask(h, w, y))
        y = window_reverse(y.view(-1, ws, ws, c), ws, h, w)
        if s:
            y = torch.roll(y, shifts=(s, s), dims=(1, 2))
        x = x + y.reshape(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class _BlockGroup(nn.Module):
    """Holds ``blocks`` so that keys read ``residual_group.blocks.N`` as in the official checkpoints."""

    def __init__(self, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        for blk in self.blocks:
            x = blk(x, x_size)
        return x


class RSTB(nn.Module):
    """Residual Swin transformer block: ``depth`` Swin blocks (odd ones shifted by window/2), a 3x3 conv and a
    long skip (reference 1.3, patch size 1, '1conv', no patch-embed norm)."""

    def __init__(self, dim: int, depth: int = 6, num_heads: int = 8, window_size: int = 8,
                 input_resolution: tuple[int, int] = (32, 32), mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.residual_group = _BlockGroup([
            SwinBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, input_resolution,
                      mlp_ratio) for i in range(depth)])
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        """x: (B, h*w, D) -> (B, h*w, D)."""
        b, _, c = x.shape
        y = self.residual_group(x, x_size)
        y = self.conv(y.transpose(1, 2).reshape(b, c, *x_size))
        return x + y.flatten(2).transpose(1, 2)


class SwinLayers(nn.Module):
    """conv_in (3x3) -> RSTBs on the token sequence -> conv_out (3x3) -> + input (reference 1.3).

    Args:
        in_dim: channels of the feature map. swin_dim: Swin width D. num_rstb: number of RSTBs.
        depth: Swin blocks per RSTB. window_size, num_heads: attention geometry.
        input_resolution: reference token grid of the stored shift masks.
    """

    def __init__(self, in_dim: int, swin_dim: int, num_rstb: int, depth: int = 6, window_size: int = 8,
                 num_heads: int = 8, input_resolution: tuple[int, int] = (32, 32)) -> None:
        super().__init__()
        self.window_size = window_size
        # registration order conv_in, conv_out, swin_blks = the official state-dict order
        self.conv_in = nn.Conv2d(in_dim, swin_dim, 3, 1, 1)
        self.conv_out = nn.Conv2d(swin_dim, in_dim, 3, 1, 1)
        self.swin_blks = nn.ModuleList(
            RSTB(swin_dim, depth, num_heads, window_size, input_resolution) for _ in range(num_rstb))

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, in_dim, h, w), h and w multiples of window_size -> (B, in_dim, h, w)."""
        b, _, h, w = x.shape
        check_token_grid(h, w, self.window_size)
        y = self.conv_in(x)
        c = y.shape[1]
        y = y.flatten(2).transpose(1, 2)  # (B, h*w, D), row-major
        for blk in self.swin_blks:
            y = blk(y, (h, w))
        y = y.transpose(1, 2).reshape(b, c, h, w)
        return x + self.conv_out(y)
