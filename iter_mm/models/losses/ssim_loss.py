"""1 - SSIM loss with pyiqa's 'ssimc' semantics (docs/faithfulness.md#stage-i-training)."""

import torch
import torch.nn as nn

from mmagic.registry import MODELS


@MODELS.register_module()
class SSIMLoss(nn.Module):
    """loss_weight * mean_b (1 - SSIM(pred_b, target_b)).

    SSIM is pyiqa's own implementation as its metric 'ssimc' runs it: colour SSIM over the RGB channels
    (no Y conversion), 11x11 Gaussian window (sigma 1.5), no downsampling, values scaled to [0, 255] and
    rounded with a straight-through gradient, computed in float64.

    Args:
        loss_weight (float): Multiplier of the loss; 0 builds nothing and returns 0. Default: 1.0.
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.ssim = None
        if loss_weight != 0:
            from pyiqa.archs.ssim_arch import SSIM  # parameter-free; nothing to download

            self.ssim = SSIM(downsample=False, test_y_channel=False)  # = pyiqa DEFAULT_CONFIGS['ssimc']

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            pred (torch.Tensor): Predicted images in [0, 1], shape (B, C, H, W) with H, W >= 11.
            target (torch.Tensor): Target images of the same shape.

        Returns:
            torch.Tensor: The scalar loss.
        """
        if pred.shape != target.shape or pred.dim() != 4:
            raise ValueError(
                f'pred and target must be (B, C, H, W) of equal shape, got '
                f'{tuple(pred.shape)} and {tuple(target.shape)}'
            )
        if self.ssim is None:
            return pred.new_zeros(())
        if min(pred.shape[-2:]) < 11:
            raise ValueError(f'SSIM needs images of at least 11x11 pixels, got {tuple(pred.shape[-2:])}')
        score = self.ssim(pred, target)  # (B,) float64
        return self.loss_weight * (1.0 - score).mean().to(pred.dtype)
