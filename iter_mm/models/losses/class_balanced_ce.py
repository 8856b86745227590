"""Class-balanced cross-entropy (paper Eq. 9; docs/faithfulness.md#loss-terms, term 2)."""

from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine import dist

from mmagic.registry import MODELS


def class_balanced_weights(counts: torch.Tensor, beta: float = 0.9999) -> torch.Tensor:
    """Effective-number class weights w_c = (1 - beta) / (1 - beta^{n_c} + 1e-8).

    Args:
        counts (torch.Tensor): Number of samples of each class, shape (C,).
        beta (float): Hyper-parameter of the effective number of samples. Default: 0.9999.

    Returns:
        torch.Tensor: Float64 weights of shape (C,); a class with n_c = 0 gets a large weight that no sample uses.
    """
    counts = counts.to(torch.float64)
    return (1.0 - beta) / (1.0 - torch.pow(torch.full_like(counts, beta), counts) + 1e-8)


@MODELS.register_module()
class ClassBalancedCELoss(nn.Module):
    """Cross-entropy weighted per class by the effective number of samples of the batch.

    loss = loss_weight * sum_i w_{y_i} CE_i / sum_i w_{y_i}, with w_c from the class counts of ``labels``
    (the authors additionally rescale w to sum to C, which cancels in this ratio).

    With ``sync_counts=True`` and an initialised process group, the counts are summed over all processes
    (the authors count per GPU: docs/faithfulness.md#class-balanced-counts) and each process normalises by the
    *global* weight sum
    times the world size, so that DDP's gradient averaging yields exactly the full-batch loss: neither the
    weights nor the gradient depend on how the batch is split. The logged value is then this process's
    share of the global loss (their mean over processes is the global loss).

    Args:
        beta (float): Effective-number hyper-parameter, in [0, 1). Default: 0.9999 (the paper's).
        loss_weight (float): Multiplier of the loss. Default: 1.0.
        sync_counts (bool): Whether to sum the class counts over processes under distributed training.
            Default: True.
    """

    def __init__(self, beta: float = 0.9999, loss_weight: float = 1.0, sync_counts: bool = True) -> None:
        super().__init__()
        if not 0.0 <= beta < 1.0:
            raise ValueError(f'beta must be in [0, 1), got {beta}')
        self.beta = beta
        self.loss_weight = loss_weight
        self.sync_counts = sync_counts

    @staticmethod
    def _check(logits: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Validate shapes/values; returns logits (B, C, ...) and int64 labels (B, ...)."""
        if logits.dim() < 2:
            raise ValueError(f'logits must be (B, C, ...), got shape {tuple(logits.shape)}')
        if labels.dim() == logits.dim() and labels.shape[1] == 1:  # (B, 1, ...) label maps
            labels = labels.squeeze(1)
        if labels.shape != logits.shape[:1] + logits.shape[2:]:
            raise ValueError(
                f'labels of shape {tuple(labels.shape)} do not match logits of shape '
                f'{tuple(logits.shape)}: expected {tuple(logits.shape[:1] + logits.shape[2:])}'
            )
        if labels.is_floating_point() or labels.is_complex():
            raise TypeError(f'labels must be an integer tensor, got {labels.dtype}')
        labels = labels.long()
        num_classes = logits.shape[1]
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f'labels must lie in [0, {num_classes}), got [{int(labels.min())}, {int(labels.max())}]')
        return logits, labels

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            logits (torch.Tensor): Raw scores of shape (B, C, ...).
            labels (torch.Tensor): Integer labels in [0, C) of shape (B, ...) or (B, 1, ...).

        Returns:
            torch.Tensor: The scalar loss.
        """
        logits, labels = self._check(logits, labels)
        num_classes = logits.shape[1]
        counts = torch.bincount(labels.flatten(), minlength=num_classes)
        world_size = 1
        if self.sync_counts and dist.is_distributed():
            dist.all_reduce(counts, op='sum')
            world_size = dist.get_world_size()
        weights = class_balanced_weights(counts, self.beta)  # (C,) float64, no gradient
        # Global weight sum sum_c w_c n_c; per-process share = global / world_size.
        denom = (weights * counts.to(torch.float64)).sum() / world_size
        if labels.numel() == 0:  # empty local batch (after the collective call, so no process hangs)
            return logits.sum() * 0.0
        ce = F.cross_entropy(logits.float(), labels, reduction='none')  # fp32 like the authors' other CEs
        w_i = weights.to(ce.dtype)[labels]
        loss = (w_i * ce).sum() / denom.to(ce.dtype)
        return self.loss_weight * loss.to(logits.dtype)
