"""Swin building blocks shared by every ITER network (docs/faithfulness.md#swin-blocks).

Three levels: ``SwinLayers`` (conv_in, RSTBs, conv_out, outer residual) -> ``RSTB`` (blocks, conv, long skip)
-> ``SwinBlock`` (window attention with relative position bias, shifted windows on odd blocks, and the
authors' MLP with a global squeeze-and-excitation gate). Module and parameter names equal the official ones.

Memory layout: inside an RSTB the token stream stays in the *window order* of the block it enters, one gather
between blocks (:mod:`.swin_layout`). Without autograd the CPU path fuses GELU and the residual adds into oneDNN
kernels (:mod:`.fast_ops`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import fast_ops
from .swin_layout import (  # noqa: F401  (re-exported)
    Order,
    check_token_grid,
    image_as_tokens,
    reorder,
    reorder_index,
    tokens_as_image,
    window_order,
    window_partition,
    window_reverse,
)

MASK_VALUE = -100.0  # value of a forbidden pair in the shift mask (docs/faithfulness.md#swin-blocks: -100, not -inf)


def relative_position_index(window: int) -> Tensor:
    """Relative position index of a ``window x window`` window (docs/faithfulness.md#swin-blocks).

    Args:
        window (int): window side w.

    Returns:
        Tensor: (N, N) int64 with N = w**2, entry (i, j) = (y_i - y_j + w - 1) * (2w - 1) + (x_i - x_j + w - 1)
        for row-major tokens i, j.
    """
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing='ij'))
    coords = coords.flatten(1)  # (2, N), row-major tokens
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)  # (2, N, N)
    return rel[0] * (2 * window - 1) + rel[1]


def shift_attention_mask(h: int, w: int, window: int, shift: int) -> Tensor:
    """Shift mask of a shifted-window block for an ``h x w`` token grid (docs/faithfulness.md#swin-blocks).

    Rows and columns are cut into [0, h-window), [h-window, h-shift), [h-shift, h); token pairs of one window
    with different region labels get -100, equal labels 0.

    Args:
        h (int): token grid height, a multiple of ``window``.
        w (int): token grid width, a multiple of ``window``.
        window (int): window side.
        shift (int): cyclic shift of the block, in (0, window).

    Returns:
        Tensor: (nW, N, N) float32 with nW = (h / window) * (w / window), N = window**2.
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
def _cached_shift_mask(h: int, w: int, window: int, shift: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Shift mask for a non-reference grid, cached per (h, w, window, shift, device, dtype). Read-only."""
    return shift_attention_mask(h, w, window, shift).to(device=device, dtype=dtype)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with a relative position bias.

    Args:
        dim (int): channels D.
        window_size (int): window side w (N = w * w tokens per window).
        num_heads (int): attention heads; D must be divisible by it.

    Raises:
        ValueError: ``dim`` is not divisible by ``num_heads``.
    """

    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim {dim} is not divisible by num_heads {num_heads}')
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer('relative_position_index', relative_position_index(window_size), persistent=True)
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)  # docs/faithfulness.md#initialisation

    def relative_position_bias(self) -> Tensor:
        """The bias gathered from the table.

        Returns:
            Tensor: (heads, N, N), contiguous (so that bias + mask is, as SDPA wants it).
        """
        n = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, self.num_heads).permute(2, 0, 1).contiguous()

    def forward(self, x: Tensor, mask: Tensor | None = None, residual: Tensor | None = None) -> Tensor:
        """Attention over each window of N tokens, then the output projection.

        Args:
            x (Tensor): (B * nW, N, D) windows.
            mask (Tensor, optional): (nW, N, N) shift mask. Default: None (regular windows).
            residual (Tensor, optional): (B * nW, N, D) added to the output (fused into ``proj`` without
                autograd). Default: None.

        Returns:
            Tensor: (B * nW, N, D).
        """
        bn, n, d = x.shape
        qkv = fast_ops.linear(x, self.qkv).view(bn, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        plain = self.plain_attention()
        q, k, v = (qkv.contiguous() if plain else qkv).unbind(0)  # (B * nW, heads, N, hd)
        out = self.attend(q, k, v, mask, plain)  # SDPA's output is (B * nW, N, heads, hd) in memory
        return fast_ops.linear(out.transpose(1, 2).reshape(bn, n, d), self.proj, residual=residual)

    def bias_and_mask(self, mask: Tensor | None) -> Tensor:
        """The additive attention term: the relative position bias, plus the shift mask if given.

        Without autograd, inside :func:`~.fast_ops.call_cache` (one refinement call) the sum is built once per
        grid, not at every step.

        Args:
            mask (Tensor | None): (nW, N, N) shift mask, or None.

        Returns:
            Tensor: (1, heads, N, N) without a mask, else (nW, heads, N, N).
        """
        if mask is None:
            return self.relative_position_bias().unsqueeze(0)
        build = lambda: (
            self.relative_position_bias().unsqueeze(0)
            + mask.unsqueeze(1).to(  # noqa: E731
                self.relative_position_bias_table.dtype
            )
        )
        if torch.is_grad_enabled() or not fast_ops.fast_kernels_enabled():
            return build()
        return fast_ops.cached((self, mask), 'bias_mask', build)

    def plain_attention(self) -> bool:
        """Whether :meth:`attend` takes the plain form: on the CPU while autograd records the trainable bias (CPU
        SDPA then falls back to a slower math path; the plain form is the authors') and under
        :func:`~.fast_ops.reference_kernels`; otherwise SDPA."""
        table = self.relative_position_bias_table
        return table.device.type == 'cpu' and (
            not fast_ops.fast_kernels_enabled() or torch.is_grad_enabled() and table.requires_grad
        )

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, plain: bool | None = None) -> Tensor:
        """softmax(q * scale @ k^T + bias (+ mask of the window)) @ v.

        Args:
            q (Tensor): (B * nW, heads, N, hd) queries.
            k (Tensor): (B * nW, heads, N, hd) keys.
            v (Tensor): (B * nW, heads, N, hd) values.
            mask (Tensor | None): (nW, N, N) shift mask, or None.
            plain (bool, optional): the plain form instead of SDPA with bias + mask as its float mask.
                Default: None (:meth:`plain_attention` decides).

        Returns:
            Tensor: (B * nW, heads, N, hd).
        """
        bn, heads, n, _ = q.shape
        nw = 1 if mask is None else mask.shape[0]
        add = self.bias_and_mask(mask)  # (1 or nW, heads, N, N)
        if self.plain_attention() if plain is None else plain:
            attn = (q * self.scale) @ k.transpose(-2, -1)  # (B * nW, heads, N, N)
            attn = (attn.view(-1, nw, heads, n, n) + add).view(bn, heads, n, n)
            return attn.softmax(dim=-1) @ v
        if add.shape[0] not in (1, bn):  # (nW, ...) repeated over the batch
            add = add.unsqueeze(0).expand(bn // nw, -1, -1, -1, -1).reshape(bn, heads, n, n)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=add.to(q.dtype), scale=self.scale)


class GatedMlp(nn.Module):
    """MLP with the authors' global squeeze-and-excitation gate (docs/faithfulness.md#swin-blocks).

    fc1 -> GELU(erf) -> x * sigmoid(attn(mean over all tokens)) -> fc2. State-dict order fc1, fc2, attn.0, attn.2.

    Args:
        dim (int): input and output channels D.
        hidden_dim (int): hidden width of fc1 / fc2.
        se_reduction (int): reduction of the gate's bottleneck (hidden_dim // se_reduction). Default: 16.
    """

    def __init__(self, dim: int, hidden_dim: int, se_reduction: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.attn = nn.Sequential(
            nn.Linear(hidden_dim, hidden_dim // se_reduction),
            nn.SiLU(),
            nn.Linear(hidden_dim // se_reduction, hidden_dim),
            nn.Sigmoid(),
        )
        self.act = nn.GELU()

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        """Gated MLP of every token.

        Args:
            x (Tensor): (B, L, D) with L = all tokens of the image, in any order (the gate's mean ignores it).
            residual (Tensor, optional): (B, L, D) added to the output. Default: None.

        Returns:
            Tensor: (B, L, D), same token order.
        """
        if fast_ops.use_fused(x) and isinstance(self.act, nn.GELU) and self.act.approximate == 'none':
            hid = fast_ops.linear(x, self.fc1, act='gelu')  # GELU fused into the matmul
        else:
            hid = self.act(self.fc1(x))
        if fast_ops.use_fused(hid):
            # as a matmul (fp32 accumulation, one rounding; bf16: no fp32 copy of hid): ~2x faster than mean()
            ones = hid.new_ones(hid.shape[0], 1, hid.shape[1])
            mean = torch.bmm(ones, hid).div_(hid.shape[1])
        else:
            mean = hid.mean(dim=1, keepdim=True)
        gate = self.attn(mean)  # (B, 1, hidden): gate from the image-wide token mean
        if fast_ops.use_fused(hid) and hid.shape[0] == 1:
            # (x * g) @ W^T = x @ (W * g)^T: the gate scales fc2's weight instead of the (L, hidden) activations
            weight = fast_ops.compute_weight(self.fc2.weight, hid) * gate[0].to(hid.dtype)
            return fast_ops.linear(hid, self.fc2, residual=residual, weight=weight)
        hid = hid.mul_(gate) if fast_ops.no_grad_path(hid) else hid * gate
        return fast_ops.linear(hid, self.fc2, residual=residual)


class SwinBlock(nn.Module):
    """Pre-norm Swin transformer block: x + attn(norm1(x)); x + mlp(norm2(x)).

    Args:
        dim (int): channels D.
        num_heads (int): attention heads.
        window_size (int): window side. Default: 8.
        shift_size (int): cyclic shift, in [0, window_size); 0 = regular windows. Default: 0.
        input_resolution (tuple[int, int]): reference token grid (h, w) whose shift mask is stored as the
            ``attn_mask`` buffer; if its smaller side is <= ``window_size``, the window becomes that side and the
            shift 0 (SwinIR's rule). Default: (32, 32).
        mlp_ratio (float): hidden width factor of the MLP. Default: 4.0.

    Raises:
        ValueError: ``shift_size`` is not in [0, window_size).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int = 8,
        shift_size: int = 0,
        input_resolution: tuple[int, int] = (32, 32),
        mlp_ratio: float = 4.0,
    ) -> None:
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

    @property
    def order(self) -> Tuple[int, int]:
        """tuple[int, int]: this block's window order (window, shift) of the token sequence (see
        :func:`window_order`)."""
        return self.window_size, self.shift_size

    def _mask(self, h: int, w: int, ref: Tensor) -> Tensor | None:
        """Shift mask (nW, N, N) for the actual grid: the stored buffer on the reference grid, else computed."""
        if not self.shift_size:
            return None
        if (h, w) == self.input_resolution and self.attn_mask is not None:
            return self.attn_mask
        return fast_ops.retain(_cached_shift_mask(h, w, self.window_size, self.shift_size, ref.device, ref.dtype))

    def _check(self, length: int, h: int, w: int) -> None:
        if length != h * w:
            raise ValueError(f'token count {length} does not match the grid {h}x{w}')
        check_token_grid(h, w, self.window_size)

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        """The block on row-major tokens (gathered into its window order and back).

        Args:
            x (Tensor): (B, h * w, D) row-major tokens.
            x_size (tuple[int, int]): token grid (h, w), multiples of the window.

        Returns:
            Tensor: (B, h * w, D) row-major tokens.

        Raises:
            ValueError: the token count is not h * w, or the grid is not a multiple of the window.
        """
        h, w = x_size
        self._check(x.shape[1], h, w)
        y = self.forward_windows(reorder(x, h, w, None, self.order), x_size)
        return reorder(y, h, w, self.order, None)

    def forward_windows(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        """The block on tokens already in this block's window order (:func:`window_order`).

        The cyclic shift and the window partition live in the order, so this is attention per run of N tokens.

        Args:
            x (Tensor): (B, h * w, D) tokens in this block's window order.
            x_size (tuple[int, int]): token grid (h, w).

        Returns:
            Tensor: (B, h * w, D) in the same order.
        """
        b, length, c = x.shape
        n = self.window_size**2
        x = x.reshape(b * length // n, n, c)
        y = self.attn(self.norm1(x), self._mask(*x_size, x), residual=x).view(b, length, c)
        return self.mlp(self.norm2(y), residual=y)


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
    long skip (docs/faithfulness.md#swin-blocks, patch size 1, '1conv', no patch-embed norm).

    Args:
        dim (int): channels D.
        depth (int): number of Swin blocks. Default: 6.
        num_heads (int): attention heads. Default: 8.
        window_size (int): window side. Default: 8.
        input_resolution (tuple[int, int]): reference token grid of the stored shift masks. Default: (32, 32).
        mlp_ratio (float): hidden width factor of the MLPs. Default: 4.0.
    """

    def __init__(
        self,
        dim: int,
        depth: int = 6,
        num_heads: int = 8,
        window_size: int = 8,
        input_resolution: tuple[int, int] = (32, 32),
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        self.residual_group = _BlockGroup(
            [
                SwinBlock(
                    dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, input_resolution, mlp_ratio
                )
                for i in range(depth)
            ]
        )
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        """The blocks, the conv and the long skip.

        The stream goes from one block's window order to the next with one gather each; the conv reads it as a
        channels_last image and the long skip is fused into it (no autograd, CPU).

        Args:
            x (Tensor): (B, h * w, D) row-major tokens.
            x_size (tuple[int, int]): token grid (h, w), multiples of the window.

        Returns:
            Tensor: (B, h * w, D) row-major tokens.
        """
        h, w = x_size
        y, order = x, None
        for blk in self.residual_group.blocks:
            blk._check(x.shape[1], h, w)
            y = blk.forward_windows(reorder(y, h, w, order, blk.order), x_size)
            order = blk.order
        y = reorder(y, h, w, order, None)
        if not fast_ops.use_fused(y):  # NCHW with autograd (faster at training sizes) and off the CPU
            return x + image_as_tokens(self.conv(tokens_as_image(y, h, w).contiguous()))
        out = fast_ops.conv2d(tokens_as_image(y, h, w), self.conv, residual=tokens_as_image(x, h, w))
        return image_as_tokens(out)


class SwinLayers(nn.Module):
    """conv_in (3x3) -> RSTBs on the token sequence -> conv_out (3x3) -> + input (docs/faithfulness.md#swin-blocks).

    Args:
        in_dim (int): channels of the feature map.
        swin_dim (int): Swin width D.
        num_rstb (int): number of RSTBs.
        depth (int): Swin blocks per RSTB. Default: 6.
        window_size (int): window side. Default: 8.
        num_heads (int): attention heads. Default: 8.
        input_resolution (tuple[int, int]): reference token grid of the stored shift masks. Default: (32, 32).
    """

    def __init__(
        self,
        in_dim: int,
        swin_dim: int,
        num_rstb: int,
        depth: int = 6,
        window_size: int = 8,
        num_heads: int = 8,
        input_resolution: tuple[int, int] = (32, 32),
    ) -> None:
        super().__init__()
        self.window_size = window_size
        # registration order conv_in, conv_out, swin_blks = the official state-dict order
        self.conv_in = nn.Conv2d(in_dim, swin_dim, 3, 1, 1)
        self.conv_out = nn.Conv2d(swin_dim, in_dim, 3, 1, 1)
        self.swin_blks = nn.ModuleList(
            RSTB(swin_dim, depth, num_heads, window_size, input_resolution) for _ in range(num_rstb)
        )

    def forward(self, x: Tensor) -> Tensor:
        """conv_in, the RSTBs, conv_out and the outer residual.

        Args:
            x (Tensor): (B, in_dim, h, w) feature map, h and w positive multiples of ``window_size``.

        Returns:
            Tensor: (B, in_dim, h, w), channels_last without autograd.

        Raises:
            ValueError: h or w is not a positive multiple of ``window_size``.
        """
        _, _, h, w = x.shape
        check_token_grid(h, w, self.window_size)
        if not fast_ops.use_fused(x):  # NCHW with autograd (faster at training sizes) and off the CPU
            y = image_as_tokens(self.conv_in(x))
            for blk in self.swin_blks:
                y = blk(y, (h, w))
            return x + self.conv_out(tokens_as_image(y, h, w).contiguous())
        x = x.contiguous(memory_format=torch.channels_last)
        y = image_as_tokens(fast_ops.conv2d(x, self.conv_in))  # (B, h*w, D) row-major, a view
        for blk in self.swin_blks:
            y = blk(y, (h, w))
        return fast_ops.conv2d(tokens_as_image(y, h, w), self.conv_out, residual=x)
