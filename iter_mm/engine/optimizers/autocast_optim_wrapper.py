"""Mixed precision without loss scaling: bf16 autocast on any device (MMEngine's AMP wrapper needs a GPU)."""

from contextlib import contextmanager

import torch
from mmengine.device import get_device
from mmengine.optim import OptimWrapper

from mmagic.registry import OPTIM_WRAPPERS

from ...errors import InvalidOptionError


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward context runs under ``torch.autocast`` (default bf16).

    bf16 has fp32's exponent range, so no loss scaling is needed; parameters, gradients and optimizer states
    stay fp32. ``tools/train.py --amp`` picks this wrapper on machines without a GPU (CPU bf16 autocast) and
    MMEngine's ``AmpOptimWrapper`` (fp16 with dynamic loss scaling) on CUDA.

    Args:
        dtype (str): 'bfloat16' or 'float16' (fp16 without loss scaling: only on devices where that is safe).
            Default: 'bfloat16'.
        device_type (str, optional): autocast device, 'cpu' or 'cuda'. Default: None (the current one).
        **kwargs: ``OptimWrapper`` arguments (optimizer, accumulative_counts, clip_grad).

    Raises:
        InvalidOptionError: another ``dtype``.
        ValueError: a device other than 'cpu' or 'cuda'.
    """

    def __init__(self, dtype: str = 'bfloat16', device_type: str = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if dtype not in ('bfloat16', 'float16'):
            raise InvalidOptionError(f'AutocastOptimWrapper: dtype must be bfloat16 or float16, got {dtype!r}')
        self.cast_dtype = getattr(torch, dtype)
        self.device_type = device_type or get_device()
        if self.device_type not in ('cpu', 'cuda'):
            raise ValueError(f'AutocastOptimWrapper: unsupported device {self.device_type!r}')

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        """Gradient-accumulation context of ``OptimWrapper`` plus autocast.

        Args:
            model (torch.nn.Module): the trained model.
        """
        with super().optim_context(model), torch.autocast(device_type=self.device_type, dtype=self.cast_dtype):
            yield
