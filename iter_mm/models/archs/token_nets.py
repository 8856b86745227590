"""Token evaluation (phi_e) and refinement (phi_r) networks: the authors' ``SwinModel``
(docs/faithfulness.md#token-networks).

The 1x1 ``code_emb`` convolution only ever sees one-hot (or masked one-hot + flag) maps, so it is evaluated as an
embedding lookup on its own weight: same parameters and state dict, same numbers, no (B, n_codes, h, w) one-hot.
Without autograd the ``combine`` 1x1 conv is folded in as well: combine([e0, e1]) = W0 e0 + W1 e1 is linear in
the one-hot inputs, so it is a sum of two lookups in the tables W_j @ code_emb (fp32, equal to fp32 rounding).
The logits (``conv_out``'s last 1x1 conv) are computed in fp32 also under autocast: they are sampled.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import fast_ops
from .registry import MODELS
from .swin import SwinLayers
from .vqgan import as_token_map

TokenInput = Tuple[Tensor, Optional[Tensor], Optional[Tensor]]  # (tokens, visible, flag) of one code_emb input


class SwinTokenNet(nn.Module):
    """code_emb (shared by both inputs) -> combine([e0, e1]) -> SwinLayers -> GN -> SiLU -> 1x1 conv.

    Args:
        in_codes (int): Input channels of ``code_emb`` (codes, or codes + 1 where the last channel is the mask
            flag).
        out_channels (int): Logits per token.
        mid_dim (int): Width. Default: 256.
        num_rstb (int): RSTBs of the Swin group. Default: 4.
        depth (int): Swin blocks per RSTB. Default: 6.
        window_size (int): Swin window side. Default: 8.
        num_heads (int): Attention heads. Default: 8.
    """

    def __init__(
        self,
        in_codes: int,
        out_channels: int,
        mid_dim: int = 256,
        num_rstb: int = 4,
        depth: int = 6,
        window_size: int = 8,
        num_heads: int = 8,
    ) -> None:
        super().__init__()
        self.in_codes, self.out_channels, self.window_size = in_codes, out_channels, window_size
        self.code_emb = nn.Conv2d(in_codes, mid_dim, 1, bias=False)
        self.combine = nn.Conv2d(2 * mid_dim, mid_dim, 1, bias=False)
        self.swin_layers = SwinLayers(mid_dim, mid_dim, num_rstb, depth, window_size, num_heads)
        groups = 32 if mid_dim >= 32 else max(mid_dim // 4, 1)
        self.conv_out = nn.Sequential(
            nn.GroupNorm(groups, mid_dim, eps=1e-6), nn.SiLU(), nn.Conv2d(mid_dim, out_channels, 1)
        )

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
        """Two embedded inputs (B, mid, h, w) -> logits (B, out_channels, h, w), fp32."""
        x = self.combine(torch.cat([e0, e1], dim=1))
        return self.head(self.swin_layers(x))

    def forward_inputs(self, x0: TokenInput, x1: TokenInput) -> Tensor:
        """Logits of two ``code_emb`` inputs given as (tokens, visible, flag) (see :meth:`embed`) -> (B, out, h, w).

        Without autograd: ``combine`` as two lookups (:meth:`combined_lookup`); else the reference form.
        """
        if fast_ops.no_grad_path(x0[0]):
            return self.head(self.swin_layers(self.combined_lookup(x0, x1)))
        return self.forward_embedded(self.embed(*x0), self.embed(*x1))

    def combined_lookup(self, x0: TokenInput, x1: TokenInput) -> Tensor:
        """combine([code_emb(x0), code_emb(x1)]) as lookups in the fp32 tables (W_j @ E)^T (in_codes, mid).

        Returns:
            (B, mid, h, w) channels_last, in the autocast dtype when autocast is on.
        """
        emb = self.code_emb.weight[:, :, 0, 0].float()  # E (mid, in_codes)
        mid = emb.shape[0]
        comb = self.combine.weight[:, :, 0, 0].float()  # (mid, 2 mid)
        out = None
        for j, (tokens, visible, flag) in enumerate((x0, x1)):
            table = (comb[:, j * mid : (j + 1) * mid] @ emb).t()  # (in_codes, mid): row t = W_j E[:, t]
            part = F.embedding(as_token_map(tokens), table)  # (B, h, w, mid)
            if visible is not None:
                part.mul_(_as_map(visible, part).unsqueeze(-1))
            if flag is not None:
                part.add_(_as_map(flag, part).unsqueeze(-1) * table[-1])
            out = part if out is None else out.add_(part)
        low = _autocast_dtype(out.device.type)
        return (out if low is None else out.to(low)).permute(0, 3, 1, 2)

    def head(self, y: Tensor) -> Tensor:
        """GroupNorm -> SiLU -> 1x1 conv: (B, mid, h, w) -> logits (B, out_channels, h, w), fp32 (also under
        autocast: they are sampled)."""
        norm, act, conv = self.conv_out
        y = fast_ops.group_norm_act(y, norm, act)
        return fast_ops.logits_conv(conv, y)


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
    """phi_e: SwinTokenNet(codes -> 2). Channel 1 of the output = "this token is good".

    Args:
        codebook_size (int): Number of codes. Default: 512.
        mid_dim (int): Width. Default: 256.
        num_rstb (int): RSTBs of the Swin group. Default: 4.
        depth (int): Swin blocks per RSTB. Default: 6.
        window_size (int): Swin window side. Default: 8.
        num_heads (int): Attention heads. Default: 8.
    """

    def __init__(
        self,
        codebook_size: int = 512,
        mid_dim: int = 256,
        num_rstb: int = 4,
        depth: int = 6,
        window_size: int = 8,
        num_heads: int = 8,
    ) -> None:
        super().__init__(codebook_size, 2, mid_dim, num_rstb, depth, window_size, num_heads)
        self.codebook_size = codebook_size

    def forward(self, tokens: Tensor, cond_tokens: Tensor) -> Tensor:
        """Judge candidate tokens.

        Args:
            tokens (Tensor): Candidate token map, int64 (B, h, w).
            cond_tokens (Tensor): The condition S_l, int64 (B, h, w).

        Returns:
            Tensor: Logits of shape (B, 2, h, w); channel 1 = good.
        """
        return self.forward_inputs((tokens, None, None), (cond_tokens, None, None))


@MODELS.register_module()
class TokenRefinementNet(SwinTokenNet):
    """phi_r: SwinTokenNet(codes + 1 -> codes); input channel ``codebook_size`` is the [MASK] flag.

    Args:
        codebook_size (int): Number of codes. Default: 512.
        mid_dim (int): Width. Default: 256.
        num_rstb (int): RSTBs of the Swin group. Default: 4.
        depth (int): Swin blocks per RSTB. Default: 6.
        window_size (int): Swin window side. Default: 8.
        num_heads (int): Attention heads. Default: 8.
    """

    def __init__(
        self,
        codebook_size: int = 512,
        mid_dim: int = 256,
        num_rstb: int = 4,
        depth: int = 6,
        window_size: int = 8,
        num_heads: int = 8,
    ) -> None:
        super().__init__(codebook_size + 1, codebook_size, mid_dim, num_rstb, depth, window_size, num_heads)
        self.codebook_size = codebook_size

    def forward(self, cond_tokens: Tensor, cond_flag: Tensor, tokens: Tensor, keep: Tensor) -> Tensor:
        """Refinement logits (docs/faithfulness.md#token-networks, table "what each network receives").

        Args:
            cond_tokens (Tensor): The condition S_l, int64 (B, h, w).
            cond_flag (Tensor): Float (B, h, w), 1 where phi_e rejected S_l.
            tokens (Tensor): Current tokens, int64 (B, h, w).
            keep (Tensor): Float keep-mask (B, h, w) or (B, 1, h, w), 1 = visible.

        Returns:
            Tensor: Logits of shape (B, codebook_size, h, w).
        """
        keep = keep[:, 0] if keep.dim() == 4 and keep.shape[1] == 1 else keep
        keep = keep if keep.dtype.is_floating_point else keep.float()
        # x0 = emb(S_l) + flag * W_mask ; x1 = keep * emb(S) + (1 - keep) * W_mask
        return self.forward_inputs((cond_tokens, None, cond_flag), (tokens, keep, 1 - keep))
