"""Box regression losses of set prediction, summed over matched pairs and divided by ``num_boxes``
(the number of targets in the batch, so that images with many objects weigh more)."""
from __future__ import annotations

import torch
from torchvision.ops import generalized_box_iou_loss


def l1_loss(boxes: torch.Tensor, target_boxes: torch.Tensor, num_boxes: float) -> torch.Tensor:
    """``sum |boxes - target_boxes| / num_boxes`` for matched ``(N, 4)`` boxes (any one format)."""
    return (boxes - target_boxes).abs().sum() / num_boxes


def giou_loss(boxes_xyxy: torch.Tensor, target_boxes_xyxy: torch.Tensor,
              num_boxes: float) -> torch.Tensor:
    """``sum (1 - GIoU) / num_boxes`` for matched ``(N, 4)`` xyxy boxes."""
    return generalized_box_iou_loss(boxes_xyxy, target_boxes_xyxy, reduction='sum') / num_boxes
