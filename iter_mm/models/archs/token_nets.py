"""Token evaluation (phi_e) and refinement (phi_r) networks: the authors' ``SwinModel`` (reference section 3).

The 1x1 ``code_emb`` convolution only ever sees one-hot (or masked one-hot + flag) maps, so it is evaluated as an
embedding lookup on its own weight: same parameters and state dict, same numbers, no (B, n_codes, h, w) one-hot.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmagic.registry import MODELS
from torch import Tensor, nn

from .swin import SwinLayers
from .vqgan import as_token_map


class SwinTokenNet(nn.Module):
    """code_emb (shared by both inputs) -> combine([e0, e1]) -> SwinLayers -> GN -> SiLU -> 1x1 conv.

    Args:
        in_codes: input channels of ``code_emb`` (codes, or codes + 1 where the last channel is the mask flag).
        out_channels: logits per token. mid_dim: width. num_rstb, depth, window_size, num_heads: SwinLayers.
    """

    def __init__(self, in_codes: int, out_channels: int, mid_dim: int = 256, num_rstb: int = 4, depth: int = 6,
                 window_size: int = 8, num_heads: int = 8) -> None:
        super().__init__()
        self.in_codes, self.out_channels, self.window_size = in_codes, out_channels, window_size
        self.code_emb = nn.Conv2d(in_codes, mid_dim, 1, bias=False)
        self.combine = nn.Conv2d(2 * mid_dim, mid_dim, 1, bias=False)
        self.swin_layers = SwinLayers(mid_dim, mid_dim, num_rstb, depth, window_size, num_heads)
        groups = 32 if mid_dim >= 32 else max(mid_dim // 4, 1)
        self.conv_out = nn.Sequential(nn.GroupNorm(groups, mid_dim, eps=1e-6), nn.SiLU(),
                                      nn.Conv2d(mid_dim, out_channels, 1))

    def embed(self, tokens: Tensor, visible: Tensor | None = None, flag: Tensor | None = None) -> Tensor:
        """code_emb of [one-hot(tokens) * visible, flag] as a lookup.

        Args:
            tokens: (B, h, w) or (B, 1, h, w) int in [0, codes). visible: (B, h, w) float weight of the token
                embedding (None = 1). flag: (B, h, w) float weight of the last channel (None = 0).
        Returns:
            (B, mid_dim, h, w) = visible * W[:, tokens] + flag * W[:, in_codes - 1].
        """
        weight = self.code_emb.weight[:, :, 0, 0]  # (mid, in_codes)
        low = _autocast_dtype(weight.device.type)
        if low is not None:  # round the weights as the 1x1 conv would under autocast
            weight = weight.to(low)
        emb = F.embedding(as_token_map(tokens), weight.t())  # (B, h, w, mid)
        if visible is not None:
            emb = emb * _as_map(visible, emb).unsqueeze(-1)
        if flag is not None:
            emb = emb + _as_map(flag, emb).unsqueeze(-1) * weight[:, -1]
        return emb.permute(0, 3, 1, 2).contiguous()  # NCHW like the conv it replaces

    def forward_embedded(self, e0: Tensor, e1: Tensor) -> Tensor:
        """Two embedded inputs (B, mid, h, w) -> logits (B, out_channels, h, w)."""
        x = self.combine(torch.cat([e0, e1], dim=1))
        return self.conv_out(self.swin_layers(x))


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The autocast dtype active for ``device_type``, or None."""
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


def _as_map(m: Tensor, ref: Tensor) -> Tensor:
    """(B, h, w) or (B, 1, h, w) float map -> (B, h, w) in ref's dtype."""
    if m.dim() == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if tuple(m.shape) != tuple(ref.shape[:3]):
        raise ValueError(f'mask/flag map shape {tuple(m.shape)} does not match the token map {tuple(ref.shape[:3])}')
    if not m.dtype.is_floating_point:
        m = m.float()
    return m.to(ref.dtype)


@MODELS.register_module()
class TokenEvaluationNet(SwinTokenNet):
    """phi_e: SwinTokenNet(codes -> 2). Channel 1 of the output = "this token is good"."""

    def __init__(self, codebook_size: int = 512, mid_dim: int = 256, num_rstb: int = 4, depth: int = 6,
                 window_size: int = 8, num_heads: int = 8) -> None:
        super().__init__(codebook_size, 2, mid_dim, num_rstb, depth, window_size, num_heads)
        self.codebook_size = codebook_size

    def forward(self, tokens: Tensor, cond_tokens: Tensor) -> Tensor:
        """tokens: candidate map (B, h, w); cond_tokens: S_l (B, h, w) -> logits (B, 2, h, w)."""
        return self.forward_embedded(self.embed(tokens), self.embed(cond_tokens))


@MODELS.register_module()
class TokenRefinementNet(SwinTokenNet):
    """phi_r: SwinTokenNet(codes + 1 -> codes); input channel ``codebook_size`` is the [MASK] flag."""

    def __init__(self, codebook_size: int = 512, mid_dim: int = 256, num_rstb: int = 4, depth: int = 6,
                 window_size: int = 8, num_heads: int = 8) -> None:
        super().__init__(codebook_size + 1, codebook_size, mid_dim, num_rstb, depth, window_size, num_heads)
        self.codebook_size = codebook_size

    def forward(self, cond_tokens: Tensor, cond_flag: Tensor, tokens: Tensor, keep: Tensor) -> Tensor:
        """Refinement logits (reference 3, table "what each network receives").

        Args:
            cond_tokens: S_l (B, h, w). cond_flag: (B, h, w) float, 1 where phi_e rejected S_l.
            tokens: current tokens (B, h, w). keep: (B, h, w) float keep-mask (1 = visible).
        Returns:
            logits (B, codebook_size, h, w).
        """
        keep = keep[:, 0] if keep.dim() == 4 and keep.shape[1] == 1 else keep
        keep = keep if keep.dtype.is_floating_point else keep.float()
        e0 = self.embed(cond_tokens, flag=cond_flag)  # emb(S_l) + flag * W_mask
        e1 = self.embed(tokens, visible=keep, flag=1 - keep)  # keep * emb(S) + (1 - keep) * W_mask
        return self.forward_embedded(e0, e1)
