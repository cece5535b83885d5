"""Bipartite (Hungarian) matching of predictions to targets for set-prediction losses.

:func:`linear_assignment` solves one cost matrix with ``scipy.optimize.linear_sum_assignment``;
:func:`class_cost`, :func:`l1_cost` and :func:`giou_cost` are the usual cost terms, combined by
:func:`detr_cost`; :class:`HungarianMatcher` matches a batch image by image (DETR's matcher).
:func:`focal_class_cost` and :func:`focal_detr_cost` are the costs of models with sigmoid focal
classification and no "no object" logit (Deformable DETR), matched by
:class:`FocalHungarianMatcher`. :func:`mask_focal_cost` and :func:`dice_cost` compare per-query
mask logits with target masks (models that match by mask as well, e.g. EGTR on PSG).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_convert, generalized_box_iou

Match = tuple[torch.Tensor, torch.Tensor]


def linear_assignment(cost: torch.Tensor) -> Match:
    """Minimum-cost one-to-one assignment for ``cost (Q, N)`` (predictions x targets).

    Returns ``(pred_idx, target_idx)``, two int64 tensors of length ``min(Q, N)`` on ``cost``'s
    device, ordered by ``pred_idx``. Raises ``ValueError`` if the matrix holds NaN or infinity.
    """
    if not torch.isfinite(cost).all():
        raise ValueError(f'Hungarian matching: the {tuple(cost.shape)} cost matrix holds NaN or '
                         f'infinite entries (the predictions have diverged)')
    rows, cols = linear_sum_assignment(cost.detach().cpu().double().numpy())
    return (torch.as_tensor(rows, dtype=torch.int64, device=cost.device),
            torch.as_tensor(cols, dtype=torch.int64, device=cost.device))


def class_cost(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``-p(target class)``: ``probs (Q, C)`` softmax outputs, ``labels (N,)`` -> ``(Q, N)``."""
    return -probs[:, labels]


def l1_cost(boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
    """Pairwise L1 distance of ``boxes (Q, 4)`` and ``target_boxes (N, 4)`` -> ``(Q, N)``."""
    return torch.cdist(boxes, target_boxes, p=1)


def giou_cost(boxes_xyxy: torch.Tensor, target_boxes_xyxy: torch.Tensor) -> torch.Tensor:
    """``-GIoU`` of every prediction/target pair of xyxy boxes -> ``(Q, N)``."""
    return -generalized_box_iou(boxes_xyxy, target_boxes_xyxy)


def detr_cost(logits: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor,
              target_boxes: torch.Tensor, cost_class: float = 1.0, cost_bbox: float = 5.0,
              cost_giou: float = 2.0) -> torch.Tensor:
    """DETR's matching cost ``(Q, N)``.

    ``logits (Q, C + 1)`` class logits (last = no object), ``boxes (Q, 4)`` predicted and
    ``target_boxes (N, 4)`` target boxes as normalised cxcywh, ``labels (N,)``. Cost =
    ``cost_class * -p(label) + cost_bbox * L1(cxcywh) + cost_giou * -GIoU(xyxy)``.
    """
    cost = cost_class * class_cost(logits.softmax(-1), labels)
    cost = cost + cost_bbox * l1_cost(boxes, target_boxes)
    return cost + cost_giou * giou_cost(box_convert(boxes, 'cxcywh', 'xyxy'),
                                        box_convert(target_boxes, 'cxcywh', 'xyxy'))


class HungarianMatcher:
    """Match each image's queries to its targets with :func:`detr_cost`.

    ``matcher(logits (B, Q, C + 1), boxes (B, Q, 4) cxcywh, targets)`` where ``targets`` is a list
    of ``(labels (N_b,), boxes (N_b, 4) normalised cxcywh)`` -> one ``(query_idx, target_idx)`` pair
    of int64 tensors per image.
    """

    def __init__(self, cost_class: float = 1.0, cost_bbox: float = 5.0, cost_giou: float = 2.0) -> None:
        if cost_class == 0 and cost_bbox == 0 and cost_giou == 0:
            raise ValueError('HungarianMatcher: all cost weights are 0')
        self.cost_class = cost_class
        self.cost_bbox = cost_bbox
        self.cost_giou = cost_giou

    def cost(self, logits: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor,
             target_boxes: torch.Tensor) -> torch.Tensor:
        """One image's ``(Q, N)`` matching cost (:func:`detr_cost` with this matcher's weights)."""
        return detr_cost(logits, boxes, labels, target_boxes, self.cost_class, self.cost_bbox,
                         self.cost_giou)

    @torch.no_grad()
    def __call__(self, logits: torch.Tensor, boxes: torch.Tensor,
                 targets: list[tuple[torch.Tensor, torch.Tensor]]) -> list[Match]:
        return [linear_assignment(self.cost(lg.float(), bx.float(), labels, tgt_boxes.float()))
                for lg, bx, (labels, tgt_boxes) in zip(logits, boxes, targets)]

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(cost_class={self.cost_class}, cost_bbox={self.cost_bbox}, '
                f'cost_giou={self.cost_giou}{self.extra_repr()})')

    def extra_repr(self) -> str:
        """More ``, name=value`` settings for ``repr`` (subclasses)."""
        return ''


def focal_class_cost(probs: torch.Tensor, labels: torch.Tensor, alpha: float = 0.25,
                     gamma: float = 2.0, eps: float = 1e-8) -> torch.Tensor:
    """Focal-loss difference at the target class: ``probs (Q, C)`` sigmoid outputs, ``labels
    (N,)`` -> ``(Q, N)`` with ``p = probs[:, label]``::

        alpha (1 - p)^gamma (-log(p + eps)) - (1 - alpha) p^gamma (-log(1 - p + eps))

    (the focal loss of calling the class positive minus that of calling it negative).
    """
    p = probs[:, labels]
    positive = alpha * (1 - p) ** gamma * -(p + eps).log()
    negative = (1 - alpha) * p ** gamma * -(1 - p + eps).log()
    return positive - negative


def focal_detr_cost(logits: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor,
                    target_boxes: torch.Tensor, cost_class: float = 2.0, cost_bbox: float = 5.0,
                    cost_giou: float = 2.0, alpha: float = 0.25, gamma: float = 2.0
                    ) -> torch.Tensor:
    """Deformable DETR's matching cost ``(Q, N)``: ``logits (Q, C)`` sigmoid class logits (no "no
    object" logit), ``boxes (Q, 4)`` and ``target_boxes (N, 4)`` normalised cxcywh, ``labels
    (N,)``. Cost = ``cost_class * focal_class_cost + cost_bbox * L1(cxcywh) + cost_giou *
    -GIoU(xyxy)``."""
    cost = cost_class * focal_class_cost(logits.sigmoid(), labels, alpha, gamma)
    cost = cost + cost_bbox * l1_cost(boxes, target_boxes)
    return cost + cost_giou * giou_cost(box_convert(boxes, 'cxcywh', 'xyxy'),
                                        box_convert(target_boxes, 'cxcywh', 'xyxy'))


def mask_focal_cost(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25,
                    gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss of every predicted mask against every target mask, averaged over the
    pixels: ``logits (Q, P)`` mask logits and ``targets (N, P)`` 0/1 masks of ``P`` pixels ->
    ``(Q, N)``. With ``p = sigmoid(logit)``, a target pixel costs ``alpha (1 - p)^gamma
    (-log p)`` and a background pixel ``(1 - alpha) p^gamma (-log(1 - p))`` - the value of
    :func:`~openpsg.models.losses.sigmoid_focal_loss` for that one pair; 0 for a perfect mask."""
    probs = logits.sigmoid()
    positive = alpha * (1 - probs) ** gamma * F.softplus(-logits)
    negative = (1 - alpha) * probs ** gamma * F.softplus(logits)
    return (positive @ targets.T + negative @ (1 - targets).T) / logits.shape[1]


def dice_cost(logits: torch.Tensor, targets: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """``1 - (2 |p t| + smooth) / (|p| + |t| + smooth)`` of every predicted mask ``p =
    sigmoid(logits)`` against every target mask: ``logits (Q, P)``, ``targets (N, P)`` 0/1 ->
    ``(Q, N)`` - the value of :func:`~openpsg.models.losses.dice_loss` for that one pair; 0 for
    a perfect mask."""
    probs = logits.sigmoid()
    numerator = 2 * probs @ targets.T + smooth
    denominator = probs.sum(1)[:, None] + targets.sum(1)[None] + smooth
    return 1 - numerator / denominator


class FocalHungarianMatcher(HungarianMatcher):
    """Match each image's queries to its targets with :func:`focal_detr_cost` (weights
    ``cost_class``, ``cost_bbox``, ``cost_giou``; focal ``alpha``, ``gamma``).

    ``matcher(logits (B, Q, C), boxes (B, Q, 4) cxcywh, targets)`` as :class:`HungarianMatcher`.
    """

    def __init__(self, cost_class: float = 2.0, cost_bbox: float = 5.0, cost_giou: float = 2.0,
                 alpha: float = 0.25, gamma: float = 2.0) -> None:
        super().__init__(cost_class, cost_bbox, cost_giou)
        self.alpha = alpha
        self.gamma = gamma

    def cost(self, logits: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor,
             target_boxes: torch.Tensor) -> torch.Tensor:
        """One image's ``(Q, N)`` matching cost (:func:`focal_detr_cost`)."""
        return focal_detr_cost(logits, boxes, labels, target_boxes, self.cost_class,
                               self.cost_bbox, self.cost_giou, self.alpha, self.gamma)

    def cost_weights(self) -> dict[str, float]:
        """The weight of each cost term by name (``class``, ``bbox``, ``giou``): what the
        perfect-match cost of :mod:`.relation_smoothing` is computed from."""
        return {'class': self.cost_class, 'bbox': self.cost_bbox, 'giou': self.cost_giou}

    def extra_repr(self) -> str:
        return f', alpha={self.alpha}, gamma={self.gamma}'


class FocalMaskHungarianMatcher(FocalHungarianMatcher):
    """:class:`FocalHungarianMatcher` whose cost, where mask logits are given
    (:meth:`mask_cost`, :meth:`match_with_masks`), adds ``cost_mask * mask_focal_cost + cost_dice * dice_cost``
    (focal ``alpha``, ``gamma`` as the class cost). Called like its parent it matches by class
    and box alone (decoder layers without masks)."""

    def __init__(self, cost_class: float = 2.0, cost_bbox: float = 5.0, cost_giou: float = 2.0,
                 cost_mask: float = 1.0, cost_dice: float = 1.0, alpha: float = 0.25,
                 gamma: float = 2.0) -> None:
        super().__init__(cost_class, cost_bbox, cost_giou, alpha, gamma)
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice

    def mask_cost(self, logits: torch.Tensor, boxes: torch.Tensor, mask_logits: torch.Tensor,
                  labels: torch.Tensor, target_boxes: torch.Tensor, target_masks: torch.Tensor
                  ) -> torch.Tensor:
        """``(Q, N)`` cost of one image: ``logits (Q, C)``, ``boxes (Q, 4)`` and ``target_boxes
        (N, 4)`` as :func:`focal_detr_cost`; ``mask_logits (Q, P)`` and ``target_masks (N, P)``
        0/1 on the same ``P`` pixels."""
        cost = focal_detr_cost(logits, boxes, labels, target_boxes, self.cost_class,
                               self.cost_bbox, self.cost_giou, self.alpha, self.gamma)
        cost = cost + self.cost_mask * mask_focal_cost(mask_logits, target_masks, self.alpha,
                                                       self.gamma)
        return cost + self.cost_dice * dice_cost(mask_logits, target_masks)

    @torch.no_grad()
    def match_with_masks(self, logits: torch.Tensor, boxes: torch.Tensor,
                         mask_logits: torch.Tensor,
                         targets: list[tuple[torch.Tensor, torch.Tensor]],
                         target_masks: list[torch.Tensor]
                         ) -> tuple[list[Match], list[torch.Tensor]]:
        """Per image the assignment by :meth:`mask_cost` and the cost of each matched pair ``(K,)``:
        ``logits (B, Q, C)``, ``boxes (B, Q, 4)``, ``mask_logits (B, Q, P)``, ``targets`` as
        :class:`HungarianMatcher`, ``target_masks`` one ``(N_b, P)`` per image."""
        matches, costs = [], []
        for lg, bx, masks, (labels, tgt_boxes), tgt_masks in zip(logits, boxes, mask_logits,
                                                                  targets, target_masks):
            cost = self.mask_cost(lg.float(), bx.float(), masks.float(), labels,
                                  tgt_boxes.float(), tgt_masks.float())
            match = linear_assignment(cost)
            matches.append(match)
            costs.append(cost[match])
        return matches, costs

    def cost_weights(self) -> dict[str, float]:
        """:meth:`FocalHungarianMatcher.cost_weights` and ``mask``, ``dice``."""
        return {**super().cost_weights(), 'mask': self.cost_mask, 'dice': self.cost_dice}

    def extra_repr(self) -> str:
        return f', cost_mask={self.cost_mask}, cost_dice={self.cost_dice}{super().extra_repr()}'
