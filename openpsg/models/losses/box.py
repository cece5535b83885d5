"""Box regression losses of set prediction, summed over matched pairs and divided by ``num_boxes``
(the number of targets in the batch, so that images with many objects weigh more)."""
from __future__ import annotations

from typing import Sequence

import torch
from torchvision.ops import box_convert, generalized_box_iou_loss


def l1_loss(boxes: torch.Tensor, target_boxes: torch.Tensor, num_boxes: float) -> torch.Tensor:
    """``sum |boxes - target_boxes| / num_boxes`` for matched ``(N, 4)`` boxes (any one format)."""
    return (boxes - target_boxes).abs().sum() / num_boxes


def giou_loss(boxes_xyxy: torch.Tensor, target_boxes_xyxy: torch.Tensor,
              num_boxes: float) -> torch.Tensor:
    """``sum (1 - GIoU) / num_boxes`` for matched ``(N, 4)`` xyxy boxes."""
    return generalized_box_iou_loss(boxes_xyxy, target_boxes_xyxy, reduction='sum') / num_boxes


def mmdet_box_losses(boxes: torch.Tensor, target_boxes: torch.Tensor,
                     sizes: Sequence[tuple[int, int]], num_boxes: float
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """mmdet's DETR-head box losses (OpenPSG's): ``(L1 on normalised cxcywh, 1 - GIoU on pixel
    xyxy)`` of matched ``(K, 4)`` cxcywh boxes normalised by their image's ``sizes[k] = (h, w)``,
    summed and divided by ``num_boxes``. DETR's own GIoU (:func:`giou_loss` on normalised boxes)
    differs on non-square images."""
    if len(boxes) == 0:
        zero = boxes.sum() * 0
        return zero, zero
    scale = boxes.new_tensor([[w, h, w, h] for h, w in sizes])
    giou = giou_loss(box_convert(boxes, 'cxcywh', 'xyxy') * scale,
                     box_convert(target_boxes, 'cxcywh', 'xyxy') * scale, num_boxes)
    return l1_loss(boxes, target_boxes, num_boxes), giou
