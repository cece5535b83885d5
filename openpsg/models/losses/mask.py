"""Mask losses on per-pixel logits or probabilities: focal and dice losses of set prediction
normalised by ``num_masks`` (the number of targets in the batch), and the per-mask squared dice."""
from __future__ import annotations

import torch
import torchvision


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, num_masks: float,
                       alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (RetinaNet) per pixel, averaged over each mask's pixels, summed over masks and
    divided by ``num_masks``. ``logits``, ``targets (N, P)``: N masks of P pixels, targets in {0, 1}
    (any trailing dimensions are summed: ``(B, Q, C)`` averages over ``Q``)."""
    loss = torchvision.ops.sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma)
    return loss.mean(1).sum() / num_masks


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, num_masks: float,
              smooth: float = 1.0) -> torch.Tensor:
    """``1 - (2 |p t| + s) / (|p| + |t| + s)`` per mask with ``p = sigmoid(logits)``, summed over
    masks and divided by ``num_masks``. ``logits``, ``targets (N, P)``."""
    probs = logits.sigmoid()
    numerator = 2 * (probs * targets).sum(1) + smooth
    denominator = probs.sum(1) + targets.sum(1) + smooth
    return (1 - numerator / denominator).sum() / num_masks


def squared_dice_loss(probs: torch.Tensor, targets: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-mask dice loss with squared terms in the denominator (V-Net; PanopticFCN's form):
    ``1 - 2 sum(p t) / max(sum(p^2) + sum(t^2), eps)`` over the last axis. ``probs (..., P)``
    probabilities, ``targets`` (soft) targets broadcastable to it; returns ``probs.shape[:-1]``."""
    denominator = (probs * probs).sum(-1) + (targets * targets).sum(-1)
    return 1 - 2 * (probs * targets).sum(-1) / denominator.clamp(min=eps)
