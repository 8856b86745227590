"""Swin-VQGAN: the HQ-stage autoencoder E_H / D_H and its codebook (docs/faithfulness.md#swin-vqgan).

Module names equal the official ``VQModel`` (``encoder.blocks.N``, ``decoder.blocks.N``,
``quantize.embedding.weight``); the official ``generator`` alias of the decoder is handled by
``iter_mm.utils.checkpoint``.

Without autograd the encoder and decoder run channels_last (oneDNN's faster convolution layout) with in-place
activations and the residual adds fused into the convolutions, and ``Upsample`` runs as four 2x2 convolutions on
the low-resolution map (nearest x2 then a 3x3 conv, with 4/9 of the multiply-adds); ``forward`` (training and
``reconstruct``) keeps the reference kernels. The quantiser's distances are fp32 under autocast: the argmin is a
token.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...utils.padding import padded_apply
from . import fast_ops
from .registry import MODELS
from .swin import SwinLayers


def normalize(channels: int, groups: int = 32) -> nn.GroupNorm:
    """GroupNorm of the VQGAN: ``groups`` groups (32 released; C // 4 below that many channels), eps 1e-6, affine
    (docs/faithfulness.md#vqgan-blocks). The group count changes no parameter: weight and bias are (C,) whatever it
    is."""
    return nn.GroupNorm(groups if channels >= groups else max(channels // 4, 1), channels, eps=1e-6, affine=True)


class VQGANResBlock(nn.Module):
    """GN -> swish -> conv3x3 -> GN -> swish -> conv3x3, plus identity or 1x1 ``conv_out`` shortcut.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels; a 1x1 ``conv_out`` shortcut when they differ from the input's.
        norm_groups (int): GroupNorm groups. Default: 32.
    """

    def __init__(self, in_channels: int, out_channels: int, norm_groups: int = 32) -> None:
        super().__init__()
        self.norm1 = normalize(in_channels, norm_groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.norm2 = normalize(out_channels, norm_groups)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.conv_out = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: Tensor, overwrite_input: bool = False) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H, W). ``overwrite_input``: without autograd the output may reuse x's
        memory (the caller no longer needs x)."""
        if fast_ops.no_grad_path(x):  # in-place norm/SiLU; the shortcut accumulated inside conv2
            silu = nn.SiLU()
            h = fast_ops.conv2d(fast_ops.group_norm_act(x, self.norm1, silu), self.conv1)
            h = fast_ops.group_norm_act(h, self.norm2, silu, inplace=True)
            if self.conv_out is None:
                return fast_ops.conv2d(h, self.conv2, residual=x, accumulate=overwrite_input)
            return fast_ops.conv2d(h, self.conv2, residual=fast_ops.conv2d(x, self.conv_out), accumulate=True)
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (x if self.conv_out is None else self.conv_out(x))


class Downsample(nn.Module):
    """Zero pad right/bottom by 1, then conv3x3 stride 2 without padding: (B, C, H, W) -> (B, C, H/2, W/2).

    Args:
        channels (int): Input and output channels.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 2, 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


@functools.lru_cache(maxsize=8)
def _subpixel_fold(device: torch.device, dtype: torch.dtype) -> Tensor:
    """Which kernel taps each output phase a reads through low-res offset r: (2, 2, 3) 0/1, cached per device and
    dtype (no host-to-device copy at each call, which a CUDA graph capture forbids). Read-only."""
    return torch.tensor([[[1, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]], dtype=dtype, device=device)


class Upsample(nn.Module):
    """Nearest x2, then conv3x3: (B, C, H, W) -> (B, C, 2H, 2W).

    Args:
        channels (int): Input and output channels.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        if fast_ops.no_grad_path(x):
            return self.forward_subpixel(x)
        return self.conv(F.interpolate(x, scale_factor=2.0, mode='nearest'))

    def subpixel_weight(self) -> Tensor:
        """The 3x3 kernel folded onto the four output phases: (4 C_out, C_in, 2, 2), phase p = 2a + b.

        Output pixel (2i + a, 2j + b) of nearest x2 + conv3x3 (zero padding) reads low-res rows i - 1 + a + r and
        columns j - 1 + b + s (r, s in {0, 1}) with kernel rows/columns summed by ``fold[a]``.
        """
        w = self.conv.weight
        fold = fast_ops.retain(_subpixel_fold(w.device, w.dtype))  # (a, r, 3): taps read by r
        k = torch.einsum('arx,oixy,bsy->aboirs', fold, w, fold)  # (2, 2, C_out, C_in, 2, 2)
        return k.reshape(4 * w.shape[0], w.shape[1], 2, 2)

    def forward_subpixel(self, x: Tensor) -> Tensor:
        """nearest x2 + conv3x3 as one 2x2 conv on x with 4 C_out outputs, interleaved: (B, C, H, W) ->
        (B, C, 2H, 2W) channels_last. Equal to the plain form to fp32 rounding (taps summed in another order)."""
        b, c, h, w = x.shape
        bias = None if self.conv.bias is None else self.conv.bias.repeat(4)
        x = x.contiguous(memory_format=torch.channels_last)
        ph = fast_ops.conv2d(x, self.conv, weight=self.subpixel_weight(), bias=bias, padding=(1, 1))
        co = ph.shape[1] // 4
        ph = ph.permute(0, 2, 3, 1).view(b, h + 1, w + 1, 2, 2, co)  # (B, H+1, W+1, a, b, C) (a view)
        out = ph.new_empty(b, h, 2, w, 2, co)  # = (B, 2H, 2W, C) row-major
        for a in (0, 1):
            for bb in (0, 1):
                out[:, :, a, :, bb] = ph[:, a : a + h, bb : bb + w, a, bb]
        return out.view(b, 2 * h, 2 * w, co).permute(0, 3, 1, 2)


def _swin(channels: int, swin_dim: int, num_rstb: int, depth: int, window: int, heads: int) -> SwinLayers:
    return SwinLayers(channels, swin_dim, num_rstb, depth, window, heads, input_resolution=(32, 32))


class VQGANEncoder(nn.Module):
    """The VQGAN encoder (docs/faithfulness.md#vqgan-encoder-and-decoder): image in [-1, 1] (B, 3, H, W) -> latent
    (B, embed_dim, H/8, W/8).

    Args:
        in_channels (int): Image channels. Default: 3.
        nf (int): Base width. Default: 128.
        ch_mult (Sequence[int]): Width multipliers of the resolution levels. Default: (1, 2, 2, 4).
        num_res_blocks (int): ResBlocks per level. Default: 2.
        embed_dim (int): Width of the latent (the code width). Default: 128.
        swin_dim (int): Width of the Swin group. Default: 256.
        swin_window (int): Swin window side. Default: 8.
        swin_depth (int): Swin blocks per RSTB. Default: 6.
        swin_num_rstb (int): RSTBs of the Swin group. Default: 1.
        swin_heads (int): Attention heads. Default: 8.
        norm_groups (int): GroupNorm groups. Default: 32.
    """

    def __init__(
        self,
        in_channels: int = 3,
        nf: int = 128,
        ch_mult: Sequence[int] = (1, 2, 2, 4),
        num_res_blocks: int = 2,
        embed_dim: int = 128,
        swin_dim: int = 256,
        swin_window: int = 8,
        swin_depth: int = 6,
        swin_num_rstb: int = 1,
        swin_heads: int = 8,
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        g = norm_groups
        blocks: list[nn.Module] = [nn.Conv2d(in_channels, nf, 3, 1, 1)]
        in_mult = (1,) + tuple(ch_mult)
        ch = nf
        for i, mult in enumerate(ch_mult):
            ch, out = nf * in_mult[i], nf * mult
            for _ in range(num_res_blocks):
                blocks.append(VQGANResBlock(ch, out, g))
                ch = out
            if i != len(ch_mult) - 1:
                blocks.append(Downsample(ch))
        blocks += [
            VQGANResBlock(ch, ch, g),
            _swin(ch, swin_dim, swin_num_rstb, swin_depth, swin_window, swin_heads),
            VQGANResBlock(ch, ch, g),
            normalize(ch, g),
            nn.Conv2d(ch, embed_dim, 3, 1, 1),
        ]  # no act before conv
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> Tensor:
        return _run_blocks(self.blocks, x)


def _run_blocks(blocks: nn.ModuleList, x: Tensor) -> Tensor:
    """Apply ``blocks`` in turn; without autograd on the CPU in channels_last with fused kernels (output contiguous
    NCHW)."""
    if not fast_ops.use_fused(x):
        for blk in blocks:
            x = blk(x)
        return x
    y = x.contiguous(memory_format=torch.channels_last)
    for blk in blocks:
        if isinstance(blk, nn.Conv2d):
            y = fast_ops.conv2d(y, blk)
        elif isinstance(blk, nn.GroupNorm):
            y = fast_ops.group_norm_act(y, blk, inplace=y is not x)
        elif isinstance(blk, VQGANResBlock):
            y = blk(y, overwrite_input=y is not x)
        else:
            y = blk(y)
    return y.contiguous()


class VQGANDecoder(nn.Module):
    """The VQGAN decoder (docs/faithfulness.md#vqgan-encoder-and-decoder): latent (B, embed_dim, h, w) -> raw image
    (B, 3, 8h, 8w) in ~[-1, 1].

    Args:
        out_channels (int): Image channels. Default: 3.
        nf (int): Base width. Default: 128.
        ch_mult (Sequence[int]): Width multipliers of the resolution levels. Default: (1, 2, 2, 4).
        num_res_blocks (int): ResBlocks per level. Default: 2.
        embed_dim (int): Width of the latent (the code width). Default: 128.
        swin_dim (int): Width of the Swin group. Default: 256.
        swin_window (int): Swin window side. Default: 8.
        swin_depth (int): Swin blocks per RSTB. Default: 6.
        swin_num_rstb (int): RSTBs of the Swin group. Default: 1.
        swin_heads (int): Attention heads. Default: 8.
        norm_groups (int): GroupNorm groups. Default: 32.
    """

    def __init__(
        self,
        out_channels: int = 3,
        nf: int = 128,
        ch_mult: Sequence[int] = (1, 2, 2, 4),
        num_res_blocks: int = 2,
        embed_dim: int = 128,
        swin_dim: int = 256,
        swin_window: int = 8,
        swin_depth: int = 6,
        swin_num_rstb: int = 1,
        swin_heads: int = 8,
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        g = norm_groups
        ch = nf * ch_mult[-1]
        blocks: list[nn.Module] = [
            nn.Conv2d(embed_dim, ch, 3, 1, 1),
            VQGANResBlock(ch, ch, g),
            _swin(ch, swin_dim, swin_num_rstb, swin_depth, swin_window, swin_heads),
            VQGANResBlock(ch, ch, g),
        ]
        for i in reversed(range(len(ch_mult))):
            out = nf * ch_mult[i]
            for _ in range(num_res_blocks):
                blocks.append(VQGANResBlock(ch, out, g))
                ch = out
            if i != 0:
                blocks.append(Upsample(ch))
        blocks += [normalize(ch, g), nn.Conv2d(ch, out_channels, 3, 1, 1)]  # no activation before the final conv
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> Tensor:
        return _run_blocks(self.blocks, x)


class VectorQuantizer(nn.Module):
    """Nearest-code quantizer with straight-through gradient and the legacy VQ loss
    (docs/faithfulness.md#quantizer-and-vq-loss).

    Args:
        codebook_size (int): Number of codes n. Default: 512.
        embed_dim (int): Code width C. Default: 128.
        beta (float): Weight of the codebook term of the VQ loss. Default: 0.25.
    """

    def __init__(self, codebook_size: int = 512, embed_dim: int = 128, beta: float = 0.25) -> None:
        super().__init__()
        self.codebook_size, self.embed_dim, self.beta = codebook_size, embed_dim, beta
        self.embedding = nn.Embedding(codebook_size, embed_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / codebook_size, 1.0 / codebook_size)

    def indices(self, z: Tensor) -> Tensor:
        """Nearest code per latent vector. z: (B, C, h, w) -> int64 (B, h, w); first minimum on ties."""
        b, c, h, w = z.shape
        with torch.autocast(z.device.type, enabled=False):  # fp32 distances also under autocast
            flat = z.permute(0, 2, 3, 1).reshape(-1, c).float()
            e = self.embedding.weight.float()
            dist = flat.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * flat @ e.t()  # ||z||^2 + ||e||^2 - 2ze
        return dist.argmin(1).view(b, h, w)

    def lookup(self, indices: Tensor) -> Tensor:
        """Codes of a token map. indices: (B, h, w) or (B, 1, h, w) int -> (B, C, h, w)."""
        return self.embedding(as_token_map(indices)).permute(0, 3, 1, 2).contiguous()

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Quantise latents.

        Args:
            z (Tensor): Latents of shape (B, C, h, w).

        Returns:
            tuple[Tensor, Tensor, Tensor]: The straight-through quantised latents z_q (B, C, h, w), the scalar VQ
            loss and the indices, int64 (B, h, w).
        """
        idx = self.indices(z)
        zq = self.lookup(idx)
        # legacy (taming) form: commitment weight 1, codebook weight beta (docs/faithfulness.md#quantizer-and-vq-loss)
        loss = torch.mean((zq.detach() - z) ** 2) + self.beta * torch.mean((zq - z.detach()) ** 2)
        zq = z + (zq - z).detach()
        return zq, loss, idx


def as_token_map(tokens: Tensor) -> Tensor:
    """Accept (B, h, w) or (B, 1, h, w) integer token maps; return (B, h, w)."""
    if tokens.dim() == 4 and tokens.shape[1] == 1:
        tokens = tokens[:, 0]
    if tokens.dim() != 3:
        raise ValueError(f'token map must be (B, h, w) or (B, 1, h, w), got shape {tuple(tokens.shape)}')
    if tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
        raise TypeError(f'token map must be an integer tensor, got {tokens.dtype}')
    return tokens.long()


def _check_image(img: Tensor, channels: int) -> None:
    if img.dim() != 4 or img.shape[1] != channels:
        raise ValueError(f'expected an image batch (B, {channels}, H, W), got shape {tuple(img.shape)}')


@MODELS.register_module()
class SwinVQGAN(nn.Module):
    """Swin-VQGAN autoencoder (the authors' ``VQModel``); defaults are the released configuration.

    Images at the public API are RGB in [0, 1]; H and W of ``forward``/``encode`` must be multiples of
    ``pad_multiple`` (8 * swin_window) so that the token grid fits the Swin windows.

    ``norm_groups`` (32 released) is the GroupNorm group count. Narrow networks need fewer: with 32 groups a layer
    of 32 channels normalises every channel on its own (instance norm), which removes each channel's mean and
    contrast over the image, so the colour and brightness of a patch cannot pass through (the colour cast of the
    tiny configs). It changes no state-dict entry.

    Args:
        in_channels (int): Image channels. Default: 3.
        nf (int): Base width. Default: 128.
        ch_mult (Sequence[int]): Width multipliers of the resolution levels; len - 1 downsamplings.
            Default: (1, 2, 2, 4).
        num_res_blocks (int): ResBlocks per level. Default: 2.
        codebook_size (int): Number of codes. Default: 512.
        embed_dim (int): Code width. Default: 128.
        swin_dim (int): Width of the Swin groups of encoder and decoder. Default: 256.
        swin_window (int): Swin window side. Default: 8.
        swin_depth (int): Swin blocks per RSTB. Default: 6.
        swin_num_rstb (int): RSTBs per Swin group. Default: 1.
        swin_heads (int): Attention heads. Default: 8.
        beta (float): Weight of the codebook term of the VQ loss. Default: 0.25.
        norm_groups (int): GroupNorm groups. Default: 32.
    """

    def __init__(
        self,
        in_channels: int = 3,
        nf: int = 128,
        ch_mult: Sequence[int] = (1, 2, 2, 4),
        num_res_blocks: int = 2,
        codebook_size: int = 512,
        embed_dim: int = 128,
        swin_dim: int = 256,
        swin_window: int = 8,
        swin_depth: int = 6,
        swin_num_rstb: int = 1,
        swin_heads: int = 8,
        beta: float = 0.25,
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        kw = dict(
            nf=nf,
            ch_mult=tuple(ch_mult),
            num_res_blocks=num_res_blocks,
            embed_dim=embed_dim,
            swin_dim=swin_dim,
            swin_window=swin_window,
            swin_depth=swin_depth,
            swin_num_rstb=swin_num_rstb,
            swin_heads=swin_heads,
            norm_groups=norm_groups,
        )
        self.in_channels, self.codebook_size, self.embed_dim = in_channels, codebook_size, embed_dim
        self.swin_window = swin_window
        self.encoder = VQGANEncoder(in_channels, **kw)
        self.decoder = VQGANDecoder(in_channels, **kw)
        self.quantize = VectorQuantizer(codebook_size, embed_dim, beta)
        self.downscale = 2 ** (len(ch_mult) - 1)

    @property
    def pad_multiple(self) -> int:
        """Image side multiple needed by ``forward``: downscale * swin_window (64 released)."""
        return self.downscale * self.swin_window

    def encode(self, img: Tensor) -> Tensor:
        """img (B, 3, H, W) in [0, 1] -> latent z (B, embed_dim, H/8, W/8)."""
        _check_image(img, self.in_channels)
        return self.encoder(img.clamp(0, 1) * 2 - 1)

    def encode_indices(self, img: Tensor) -> Tensor:
        """img (B, 3, H, W) in [0, 1] -> token map int64 (B, H/8, W/8)."""
        return self.quantize.indices(self.encode(img))

    def decode(self, z_q: Tensor) -> Tensor:
        """Quantized latent (B, embed_dim, h, w) -> image (B, 3, 8h, 8w) in [0, 1]."""
        return ((self.decoder(z_q) + 1) / 2).clamp(0, 1)

    def decode_indices(self, indices: Tensor) -> Tensor:
        """Token map (B, h, w) or (B, 1, h, w) -> image (B, 3, 8h, 8w) in [0, 1]."""
        return self.decode(self.quantize.lookup(indices))

    def decode_onehot(self, onehot: Tensor) -> Tensor:
        """(Soft) one-hot (B, n_codes, h, w) -> image in [0, 1]; the codebook is detached, grads reach onehot."""
        if onehot.dim() != 4 or onehot.shape[1] != self.codebook_size:
            raise ValueError(f'one-hot map must be (B, {self.codebook_size}, h, w), got {tuple(onehot.shape)}')
        code = self.quantize.embedding.weight.detach()
        z = onehot.permute(0, 2, 3, 1).to(code.dtype) @ code  # (B, h, w, C)
        return self.decode(z.permute(0, 3, 1, 2))

    def forward(self, img: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Encode, quantise and decode (the training forward).

        Args:
            img (Tensor): RGB images in [0, 1], shape (B, 3, H, W) with H, W multiples of ``pad_multiple``.

        Returns:
            tuple[Tensor, Tensor, Tensor]: The reconstruction in [0, 1] (B, 3, H, W), the scalar VQ loss and the
            token map, int64 (B, H/8, W/8).
        """
        _check_image(img, self.in_channels)
        m = self.pad_multiple
        if img.shape[-2] % m or img.shape[-1] % m:
            raise ValueError(
                f'SwinVQGAN.forward needs H and W multiples of {m}, got {tuple(img.shape[-2:])}; '
                'use reconstruct() for arbitrary sizes'
            )
        # reference kernels: the straight-through z_q = z + (code - z) carries z's last bits into the decoder,
        # which amplifies them; so reconstruct() (no autograd) stays equal to the training forward
        with fast_ops.reference_kernels():
            z_q, loss, idx = self.quantize(self.encode(img))
            return self.decode(z_q), loss, idx

    @torch.no_grad()
    def reconstruct(self, img: Tensor, always_pad: bool = False) -> Tensor:
        """Any-size reconstruction: mirror-pad bottom/right to a multiple of ``pad_multiple``, run, crop back.

        Args:
            img (Tensor): RGB images in [0, 1], shape (B, 3, H, W), any size.
            always_pad (bool): Follow the authors' self-test, which adds a full extra multiple when the size is
                already a multiple (the global gate of the Swin MLP makes results depend on the padding).
                Default: False.

        Returns:
            Tensor: The reconstruction in [0, 1], shape (B, 3, H, W).
        """
        _check_image(img, self.in_channels)
        return padded_apply(lambda x: self(x)[0], img, self.pad_multiple, official=always_pad)
