"""CPU inference kernels of the ITER networks, taken only where no gradient is recorded.

* oneDNN linear and convolution with the next op fused (GELU, residual add): each computes its plain PyTorch form
  (``F.linear`` then ``F.gelu``, ``F.conv2d`` then ``+ residual``) to fp32 rounding; oneDNN sums in another order
  than MKL, a fused epilogue saves a pass over memory, and oneDNN's fp32 GEMM runs ~25% faster than MKL's here.
* :func:`group_norm_act`: GroupNorm (+ SiLU / LeakyReLU in place) on channels_last tensors with stable statistics.
* :func:`call_cache`: weight-only values (bf16 weight casts, attention bias + shift mask) computed once per call.

The plain forms are used whenever autograd records, off the CPU, under fp16 autocast, or inside
:func:`reference_kernels` (also ``ITER_MM_FAST_KERNELS=0``): the reference the fast paths are tested against. Under
CPU bf16 autocast the fused kernels run in bf16, as autocast would run the plain ones.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Callable, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    'reference_kernels',
    'call_cache',
    'cached',
    'retaining',
    'retain',
    'fast_kernels_enabled',
    'no_grad_path',
    'use_fused',
    'compute_dtype',
    'compute_weight',
    'linear',
    'conv2d',
    'logits_conv',
    'group_norm_act',
]

_MKLDNN = (
    torch.backends.mkldnn.is_available()
    and hasattr(torch.ops.mkldnn, '_linear_pointwise')
    and hasattr(torch.ops.mkldnn, '_convolution_pointwise')
)
_DEFAULT_ENABLED = os.environ.get('ITER_MM_FAST_KERNELS', '1') != '0'
_LOCAL = threading.local()  # per thread: 'enabled' (reference_kernels) and 'scopes' (call_cache stack)


@contextlib.contextmanager
def reference_kernels(enabled: bool = True) -> Iterator[None]:
    """Within the block (this thread) the networks run plain PyTorch ops only: the reference the fast paths are
    tested against.

    Args:
        enabled (bool): False makes the context a no-op. Default: True.
    """
    before = fast_kernels_enabled()
    _LOCAL.enabled = before and not enabled
    try:
        yield
    finally:
        _LOCAL.enabled = before


def fast_kernels_enabled() -> bool:
    """Whether the no-grad paths (fused kernels, lookups, in-place activations) may be taken in this thread."""
    return getattr(_LOCAL, 'enabled', _DEFAULT_ENABLED)


def compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype a matmul/conv on ``x`` computes in.

    Args:
        x (Tensor): the input.

    Returns:
        torch.dtype: the CPU autocast dtype when CPU autocast is on and ``x`` is a floating CPU tensor, else x's.
    """
    if x.device.type == 'cpu' and x.is_floating_point() and torch.is_autocast_enabled('cpu'):
        return torch.get_autocast_dtype('cpu')
    return x.dtype


def no_grad_path(x: Tensor) -> bool:
    """Whether ``x`` may take the no-grad path (in-place activations, lookups; any device).

    Args:
        x (Tensor): the input (only the thread's state decides: fast kernels enabled and no autograd).

    Returns:
        bool: True without autograd while fast kernels are enabled.
    """
    return fast_kernels_enabled() and not torch.is_grad_enabled()


def use_fused(x: Tensor) -> bool:
    """Whether the oneDNN fused kernels serve ``x``.

    Args:
        x (Tensor): the input.

    Returns:
        bool: True for the no-grad path (:func:`no_grad_path`) on a CPU ``x`` computed in fp32 or bf16.
    """
    return (
        no_grad_path(x) and _MKLDNN and x.device.type == 'cpu' and compute_dtype(x) in (torch.float32, torch.bfloat16)
    )


@contextlib.contextmanager
def call_cache() -> Iterator[None]:
    """Within the block (this thread), values that depend only on the weights are computed once and dropped at the
    end: parameters cast to the autocast dtype by the fused kernels (as autocast's own weight cache) and the
    attention's bias + shift mask. The caller promises not to change the weights inside the block."""
    stack = _LOCAL.__dict__.setdefault('scopes', [])
    stack.append({})
    try:
        yield
    finally:
        stack.pop()


def cached(owners: tuple, tag: str, compute: Callable[[], Tensor]) -> Tensor:
    """``compute()``, memoised inside :func:`call_cache`; outside it computed each time.

    An entry keeps its owners alive, so their ids are not reused meanwhile.

    Args:
        owners (tuple): objects whose identities key the entry (with ``tag``).
        tag (str): kind of the value.
        compute (Callable[[], Tensor]): builds the value.

    Returns:
        Tensor: the memoised or fresh value.
    """
    stack = getattr(_LOCAL, 'scopes', None)
    if not stack:
        return compute()
    key = (tag,) + tuple(id(o) for o in owners)
    hit = stack[-1].get(key)
    if hit is None or any(a is not b for a, b in zip(hit[0], owners)):
        hit = (owners, compute())
        stack[-1][key] = hit
    return hit[1]


@contextlib.contextmanager
def retaining(into: list) -> Iterator[None]:
    """Within the block (this thread), tensors handed out by module-level caches (:func:`retain`) are also appended
    to ``into``: a CUDA graph captured in the block reads them, so it must keep them alive after an eviction.

    Args:
        into (list): the list that collects the tensors.
    """
    stack = _LOCAL.__dict__.setdefault('retained', [])
    stack.append(into)
    try:
        yield
    finally:
        stack.pop()


def retain(t: Tensor) -> Tensor:
    """``t``, noted in the innermost :func:`retaining` list if one is open.

    Args:
        t (Tensor): a tensor from a module-level cache.

    Returns:
        Tensor: ``t`` itself.
    """
    stack = getattr(_LOCAL, 'retained', None)
    if stack:
        stack[-1].append(t)
    return t


def _cast(w: Tensor, dtype: torch.dtype) -> Tensor:
    """``w.to(dtype)``, memoised for parameters inside :func:`call_cache`."""
    if w.dtype == dtype:
        return w
    if not isinstance(w, nn.Parameter):
        return w.to(dtype)
    return cached((w, dtype), 'cast', lambda: w.to(dtype))


def compute_weight(w: Tensor, x: Tensor) -> Tensor:
    """A weight in the dtype the fused kernels compute ``x`` in (cast once inside :func:`call_cache`).

    Args:
        w (Tensor): the weight.
        x (Tensor): the input it will multiply.

    Returns:
        Tensor: ``w`` in :func:`compute_dtype` of ``x``.
    """
    return _cast(w, compute_dtype(x))


def linear(
    x: Tensor,
    layer: nn.Linear,
    act: Optional[str] = None,
    residual: Optional[Tensor] = None,
    weight: Optional[Tensor] = None,
) -> Tensor:
    """``residual + act(x @ W^T + b)``, fused by oneDNN when :func:`use_fused` allows.

    Args:
        x (Tensor): (..., in).
        layer (nn.Linear): supplies the bias and, unless ``weight`` is given, the weight (out, in).
        act (str, optional): None or 'gelu' (erf); not together with ``residual``. Default: None.
        residual (Tensor, optional): (..., out) added to the output. Default: None.
        weight (Tensor, optional): (out, in) weight replacing the layer's. Default: None.

    Returns:
        Tensor: (..., out) in the compute dtype.

    Raises:
        ValueError: ``act`` is another activation, or both ``act`` and ``residual`` are given.
    """
    w = layer.weight if weight is None else weight
    b = layer.bias
    if act not in (None, 'gelu') or (act is not None and residual is not None):
        raise ValueError(f'unsupported linear epilogue act={act!r} with residual={residual is not None}')
    if not use_fused(x):
        y = F.linear(x, w, b)
        if act == 'gelu':
            y = F.gelu(y)
        return y if residual is None else residual + y
    dt = compute_dtype(x)
    x, w = x.to(dt).contiguous(), _cast(w, dt)
    b = None if b is None else _cast(b, dt)
    if residual is not None:
        return torch.ops.mkldnn._linear_pointwise.binary(x, residual.to(dt).contiguous(), w, b, 'add')
    if act == 'gelu':
        return torch.ops.mkldnn._linear_pointwise(x, w, b, 'gelu', [], 'none')
    return torch.ops.mkldnn._linear_pointwise(x, w, b, 'none', [], '')


def _plain_conv(conv: nn.Conv2d) -> bool:
    return conv.padding_mode == 'zeros' and isinstance(conv.padding, tuple)


def conv2d(
    x: Tensor,
    conv: nn.Conv2d,
    residual: Optional[Tensor] = None,
    weight: Optional[Tensor] = None,
    bias: Optional[Tensor] = None,
    padding: Optional[tuple] = None,
    accumulate: bool = False,
) -> Tensor:
    """``residual + conv(x)``, fused by oneDNN when :func:`use_fused` allows.

    Args:
        x (Tensor): (B, C_in, H, W), any memory format (the output keeps a channels_last input's format).
        conv (nn.Conv2d): supplies stride, dilation, groups and, unless replaced, weight, bias and padding.
        residual (Tensor, optional): (B, C_out, H', W') added to the output. Default: None.
        weight (Tensor, optional): weight replacing the layer's (for derived kernels); then the bias is
            ``bias``, not the layer's. Default: None.
        bias (Tensor, optional): bias replacing the layer's. Default: None.
        padding (tuple, optional): padding replacing the layer's. Default: None.
        accumulate (bool): the fused path may write the sum into ``residual`` (which the caller no longer
            needs). Default: False.

    Returns:
        Tensor: (B, C_out, H', W').
    """
    w = conv.weight if weight is None else weight
    b = conv.bias if bias is None and weight is None else bias
    pad = conv.padding if padding is None else tuple(padding)
    if not (use_fused(x) and _plain_conv(conv)):
        y = (
            F.conv2d(x, w, b, conv.stride, pad, conv.dilation, conv.groups)
            if (weight is not None or padding is not None)
            else conv(x)
        )
        return y if residual is None else residual + y
    dt = compute_dtype(x)
    x, w = x.to(dt), _cast(w, dt)
    b = None if b is None else _cast(b, dt)
    args = (list(pad), list(conv.stride), list(conv.dilation), conv.groups)
    if residual is not None:
        if (
            accumulate
            and residual.dtype == dt
            and residual.is_contiguous(memory_format=torch.channels_last)
            and x.is_contiguous(memory_format=torch.channels_last)
        ):
            return torch.ops.mkldnn._convolution_pointwise_.binary(residual, x, w, b, *args, 'add', 1.0, None, [], None)
        return torch.ops.mkldnn._convolution_pointwise.binary(
            x, residual.to(dt), w, b, *args, 'add', 1.0, None, [], None
        )
    return torch.ops.mkldnn._convolution_pointwise(x, w, b, *args, 'none', [], None)


def logits_conv(conv: nn.Conv2d, y: Tensor) -> Tensor:
    """A 1x1 conv producing logits that are sampled or ranked, always in fp32.

    Under autocast it runs in fp32 (autocast off, input cast up); on a channels_last input without autograd it is
    one fused matmul over the tokens (the output is then a channels_last view).

    Args:
        conv (nn.Conv2d): the logits layer.
        y (Tensor): (B, C, h, w) features.

    Returns:
        Tensor: (B, out, h, w) logits.
    """
    if torch.is_autocast_enabled(y.device.type):
        with torch.autocast(y.device.type, enabled=False):
            return logits_conv(conv, y.float())
    if (
        conv.kernel_size == (1, 1)
        and conv.groups == 1
        and use_fused(y)
        and y.is_contiguous(memory_format=torch.channels_last)
    ):
        b, c, h, w = y.shape
        out = linear(y.permute(0, 2, 3, 1).reshape(b, h * w, c), conv, weight=conv.weight[:, :, 0, 0])
        return out.view(b, h, w, -1).permute(0, 3, 1, 2)
    return conv(y)


_GN_CHUNK = 1 << 18  # elements per chunk of the GroupNorm passes (1 MiB in fp32: stays in the core's cache)


def _group_norm_channels_last(
    x: Tensor, gn: nn.GroupNorm, inplace: bool = False, act: Optional[Callable[[Tensor], Tensor]] = None
) -> Tensor:
    """``act(GroupNorm(x))`` of a channels_last fp32 (B, C, H, W) with well-conditioned statistics, channels_last.

    PyTorch's channels_last CPU kernel sums x and x^2 in one pass in plain fp32, which loses digits when a group's
    mean is large against its spread (1e-4 relative error at mean/std = 30, also ~1e-4 over 256^2 pixels); the
    NCHW kernel does not. Here each group is first shifted by K, its mean over a few pixels (GroupNorm does not
    change under that shift), the moments of d = x - K are summed per cache-sized block of pixels (fp32 within a
    block, float64 across blocks), and y = act(d * scale + shift) is written over d block by block. Two passes
    over memory (d = x - K with its moments; y over d), one new buffer (none with ``inplace``, which overwrites x).
    ``act`` must work in place (``act(t)`` writes ``t``).
    """
    b, c, h, w = x.shape
    g, n = gn.num_groups, h * w
    rows = x.permute(0, 2, 3, 1).reshape(b, n, c)  # a view
    sample = rows[:, :: max(1, n // 64)].reshape(b, -1, g, c // g)  # up to ~64 pixels
    k = sample.mean(dim=(1, 3)).repeat_interleave(c // g, dim=1).unsqueeze(1)  # (B, 1, C): K of each group
    d = rows if inplace else torch.empty_like(rows)  # (B, HW, C) contiguous
    step = max(1, _GN_CHUNK // (b * c))
    blocks = [slice(i, min(i + step, n)) for i in range(0, n, step)]
    s1 = torch.zeros(b, c, dtype=torch.float64)
    s2 = torch.zeros_like(s1)
    for blk in blocks:
        part = torch.sub(rows[:, blk], k, out=d[:, blk]) if not inplace else d[:, blk].sub_(k)
        s1 += part.sum(1).double()
        s2 += part.square().sum(1).double()
    m_c, q_c = (s1 / n).view(b, g, -1), (s2 / n).view(b, g, -1)  # per channel E[d], E[d^2]
    m_g = m_c.mean(-1, keepdim=True)
    var_g = (q_c.mean(-1, keepdim=True) - m_g.square()).clamp_(min=0)  # well conditioned: d is centred-ish
    scale = (var_g + gn.eps).rsqrt().expand(-1, -1, c // g)  # (B, G, C/G)
    if gn.weight is not None:
        scale = scale * gn.weight.double().view(g, -1)
    shift = -m_g * scale
    if gn.bias is not None:
        shift = shift + gn.bias.double().view(g, -1)
    scale, shift = scale.float().reshape(b, 1, c), shift.float().reshape(b, 1, c)
    for blk in blocks:
        part = torch.addcmul(shift, d[:, blk], scale, out=d[:, blk])
        if act is not None:
            act(part)
    return d.view(b, h, w, c).permute(0, 3, 1, 2)


def _inplace_act(act: Optional[nn.Module]) -> Optional[Callable[[Tensor], Tensor]]:
    """SiLU / LeakyReLU as an in-place function; None for no activation or another kind."""
    if isinstance(act, nn.SiLU):
        return lambda t: F.silu(t, inplace=True)
    if isinstance(act, nn.LeakyReLU):
        return lambda t: F.leaky_relu(t, act.negative_slope, inplace=True)
    return None


def group_norm_act(x: Tensor, gn: nn.GroupNorm, act: Optional[nn.Module] = None, inplace: bool = False) -> Tensor:
    """``act(gn(x))``; without autograd the activation (SiLU or LeakyReLU) runs in place, a channels_last fp32 x
    on the CPU takes :func:`_group_norm_channels_last` (stable statistics, no layout change, the activation applied
    per block while it is in cache) and ``inplace=True`` lets it overwrite x (no new buffer: a fresh large tensor
    costs more in page faults than the pass over it).

    Args:
        x (Tensor): (B, C, H, W) (any shape ``gn`` accepts off the channels_last path).
        gn (nn.GroupNorm): the normalisation.
        act (nn.Module, optional): activation after it. Default: None.
        inplace (bool): the channels_last path may overwrite ``x``. Default: False.

    Returns:
        Tensor: same shape as ``x``.
    """
    if not no_grad_path(x):
        y = gn(x)
        return y if act is None else act(y)
    fn = _inplace_act(act)
    if (
        use_fused(x)
        and x.dim() == 4
        and x.dtype == torch.float32
        and x.is_contiguous(memory_format=torch.channels_last)
        and x.shape[1] % gn.num_groups == 0
        and x.shape[1] > 1
        and (act is None or fn is not None)
    ):
        return _group_norm_channels_last(x, gn, inplace, fn)
    y = gn(x)
    if act is None:
        return y
    return fn(y) if fn is not None else act(y)
