"""Losses of ITER, registered into mmagic.registry.MODELS."""

from .class_balanced_ce import ClassBalancedCELoss, class_balanced_weights
from .lpips_loss import LPIPSLoss
from .ssim_loss import SSIMLoss

__all__ = ['ClassBalancedCELoss', 'class_balanced_weights', 'LPIPSLoss', 'SSIMLoss']
