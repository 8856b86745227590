"""LQ encoder E_l: LQ image -> logits over the codebook on the HQ token grid (docs/faithfulness.md#lq-encoder)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from . import fast_ops
from .registry import MODELS
from .swin import SwinLayers


class _Norm(nn.Module):
    """Wrapper giving the official key ``.norm``: GroupNorm(groups (32 released), C, eps 1e-6)."""

    def __init__(self, channels: int, groups: int = 32) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups if channels >= groups else max(channels // 4, 1), channels, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x)


class LQResBlock(nn.Module):
    """x + [GN -> LeakyReLU(0.2) -> conv3x3 -> GN -> LeakyReLU(0.2) -> conv3x3](x) (keys ``conv.{0,2,3,5}``).

    Args:
        channels (int): Input and output channels.
        norm_groups (int): GroupNorm groups. Default: 32.
    """

    def __init__(self, channels: int, norm_groups: int = 32) -> None:
        super().__init__()
        g = norm_groups
        self.conv = nn.Sequential(
            _Norm(channels, g),
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, channels, 3, 1, 1),
            _Norm(channels, g),
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, channels, 3, 1, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        if fast_ops.no_grad_path(x):  # in-place activations, the skip added inside the last conv
            c = self.conv
            h = fast_ops.conv2d(fast_ops.group_norm_act(x, c[0].norm, c[1]), c[2])
            return fast_ops.conv2d(fast_ops.group_norm_act(h, c[3].norm, c[4], inplace=True), c[5], residual=x)
        return x + self.conv(x)


@MODELS.register_module()
class LQEncoder(nn.Module):
    """E_l (keys ``model.N``): conv, log2(8/scale) stride-2 stages (+2 ResBlocks each), 1x1 conv, SwinLayers,
    1x1 conv to logits (fp32, also under autocast). Input RGB in [0, 1] as is (no 2x-1). Without autograd it
    runs channels_last with fused kernels (:mod:`.fast_ops`).

    Args:
        scale (int): SR factor (1, 2, 4 or 8); the token grid is LQ / (8 / scale) = HQ / 8. Default: 4.
        in_channels (int): Image channels. Default: 3.
        base_channels (int): Width of the first conv; doubled by each stride-2 stage. Default: 64.
        feat_dim (int): Width entering and leaving the Swin group. Default: 128.
        codebook_size (int): Number of codes (logits per token). Default: 512.
        swin_dim (int): Width inside the Swin group. Default: 128.
        swin_num_rstb (int): RSTBs of the Swin group. Default: 2.
        swin_depth (int): Swin blocks per RSTB. Default: 6.
        swin_window (int): Swin window side. Default: 8.
        swin_heads (int): Attention heads. Default: 8.
        norm_groups (int): GroupNorm groups (32 released); narrow networks need fewer (see ``SwinVQGAN``).
            Default: 32.
    """

    def __init__(
        self,
        scale: int = 4,
        in_channels: int = 3,
        base_channels: int = 64,
        feat_dim: int = 128,
        codebook_size: int = 512,
        swin_dim: int = 128,
        swin_num_rstb: int = 2,
        swin_depth: int = 6,
        swin_window: int = 8,
        swin_heads: int = 8,
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        if scale not in (1, 2, 4, 8):
            raise ValueError(f'LQEncoder scale must be 1, 2, 4 or 8, got {scale}')
        self.scale, self.in_channels, self.swin_window = scale, in_channels, swin_window
        self.codebook_size = codebook_size
        self.depth = int(math.log2(8 // scale))
        layers: list[nn.Module] = [nn.Conv2d(in_channels, base_channels, 3, 1, 1)]
        ch = base_channels
        for _ in range(self.depth):
            layers.append(
                nn.Sequential(
                    nn.Conv2d(ch, ch * 2, 3, 2, 1), LQResBlock(ch * 2, norm_groups), LQResBlock(ch * 2, norm_groups)
                )
            )
            ch *= 2
        layers += [
            nn.Conv2d(ch, feat_dim, 1),
            SwinLayers(feat_dim, swin_dim, swin_num_rstb, swin_depth, swin_window, swin_heads),
            nn.Conv2d(feat_dim, codebook_size, 1),
        ]  # no norm/activation before the logits
        self.model = nn.Sequential(*layers)

    @property
    def pad_multiple(self) -> int:
        """LQ side multiple giving a token grid that fits the windows: 2**depth * swin_window."""
        return 2**self.depth * self.swin_window

    def forward(self, lq: Tensor) -> Tensor:
        """Predict the token logits of an LQ batch.

        Args:
            lq (Tensor): LQ images in [0, 1], shape (B, 3, H, W) with H, W multiples of ``pad_multiple``.

        Returns:
            Tensor: fp32 logits of shape (B, codebook_size, H / 2^d, W / 2^d), d = log2(8 / scale).
        """
        if lq.dim() != 4 or lq.shape[1] != self.in_channels:
            raise ValueError(f'expected an LQ batch (B, {self.in_channels}, H, W), got {tuple(lq.shape)}')
        m = self.pad_multiple
        if lq.shape[-2] % m or lq.shape[-1] % m:
            raise ValueError(
                f'LQEncoder (x{self.scale}) needs LQ height and width multiples of {m}, got '
                f'{tuple(lq.shape[-2:])}; pad the input first'
            )
        x = lq.contiguous(memory_format=torch.channels_last) if fast_ops.use_fused(lq) else lq
        for layer in self.model[:-1]:
            x = fast_ops.conv2d(x, layer) if isinstance(layer, nn.Conv2d) else layer(x)
        return fast_ops.logits_conv(self.model[-1], x)  # fp32 logits: S_l is their argmax
