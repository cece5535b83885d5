"""Hungarian matchers of the one-stage scene-graph models, with OpenPSG's (mmdet 2.x) cost terms.

* :class:`ObjectMatcher` - queries to segments (mmdet ``HungarianAssigner``; PSGFormer's objects).
* :class:`HTriMatcher` - triplet queries to GT triplets (PSGTR).
* :class:`IdMatcher` - relation queries to GT triplets through the object queries they point at
  (PSGFormer).

Box conventions are those of mmdet's cost functions, which differ from
:func:`~.matcher.detr_cost`: the L1 cost compares *normalised xyxy* boxes (``BBoxL1Cost`` with its
default ``box_format='xyxy'``) and GIoU is computed on *pixel* xyxy boxes (normalised boxes times
the ``(w, h)`` of ``img_shape``). Predicted and target boxes are passed as cxcywh normalised by
``img_shape``, as the models regress them. Every ``__call__`` returns one ``(query_idx,
target_idx)`` pair of int64 tensors per image (:data:`~.matcher.Match`).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torchvision.ops import box_convert

from .matcher import Match, class_cost, giou_cost, l1_cost, linear_assignment
from .targets import Size


def pixel_xyxy(boxes: torch.Tensor, size: Size) -> torch.Tensor:
    """Normalised cxcywh ``(..., 4)`` -> pixel xyxy for an image of ``size = (h, w)``."""
    h, w = size
    return box_convert(boxes, 'cxcywh', 'xyxy') * boxes.new_tensor([w, h, w, h])


def box_costs(boxes: torch.Tensor, target_boxes: torch.Tensor, size: Size
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L1 on normalised xyxy, -GIoU on pixel xyxy)``, each ``(Q, N)``, of predicted
    ``boxes (Q, 4)`` and ``target_boxes (N, 4)`` (both normalised cxcywh)."""
    l1 = l1_cost(box_convert(boxes, 'cxcywh', 'xyxy'), box_convert(target_boxes, 'cxcywh', 'xyxy'))
    return l1, giou_cost(pixel_xyxy(boxes, size), pixel_xyxy(target_boxes, size))


class ObjectMatcher:
    """mmdet's ``HungarianAssigner``: ``cls * -p(label) + bbox * L1 + giou * -GIoU`` per
    (query, segment) (PSGFormer: ``cls=4, bbox=3, giou=2``, its object loss weights).

    ``matcher(logits (B, Q, C + 1), boxes (B, Q, 4), targets, sizes)`` with ``targets`` a list of
    ``(labels (N_b,), boxes (N_b, 4))`` and ``sizes`` the ``img_shape`` of each image.
    """

    def __init__(self, cls: float = 1.0, bbox: float = 5.0, giou: float = 2.0) -> None:
        self.cls, self.bbox, self.giou = cls, bbox, giou

    def cost(self, logits: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor,
             target_boxes: torch.Tensor, size: Size) -> torch.Tensor:
        """``(Q, N)`` cost of one image."""
        l1, giou = box_costs(boxes, target_boxes, size)
        return self.cls * class_cost(logits.softmax(-1), labels) + self.bbox * l1 + self.giou * giou

    @torch.no_grad()
    def __call__(self, logits: torch.Tensor, boxes: torch.Tensor,
                 targets: Sequence[tuple[torch.Tensor, torch.Tensor]], sizes: Sequence[Size]
                 ) -> list[Match]:
        return [linear_assignment(self.cost(lg.float(), bx.float(), labels, tb.float(), size))
                for lg, bx, (labels, tb), size in zip(logits, boxes, targets, sizes)]

    def __repr__(self) -> str:
        return f'ObjectMatcher(cls={self.cls}, bbox={self.bbox}, giou={self.giou})'


class TripletTargets(NamedTuple):
    """One image's GT triplets: ``sub_labels``, ``obj_labels``, ``predicates`` ``(M,)`` int64 and
    ``sub_boxes``, ``obj_boxes`` ``(M, 4)`` normalised cxcywh."""

    sub_labels: torch.Tensor
    obj_labels: torch.Tensor
    predicates: torch.Tensor
    sub_boxes: torch.Tensor
    obj_boxes: torch.Tensor


class TripletOutputs(NamedTuple):
    """One decoder layer's triplet-query outputs for a batch: ``sub_logits``, ``obj_logits``
    ``(B, Q, C + 1)``, ``rel_logits (B, Q, P + 1)``, ``sub_boxes``, ``obj_boxes`` ``(B, Q, 4)``
    normalised cxcywh."""

    sub_logits: torch.Tensor
    obj_logits: torch.Tensor
    rel_logits: torch.Tensor
    sub_boxes: torch.Tensor
    obj_boxes: torch.Tensor


class HTriMatcher:
    """OpenPSG's triplet matcher (PSGTR).

    Cost of query ``q`` for GT triplet ``m``::

        cls_scale * (sub_cls * -p_s(label_s) + obj_cls * -p_o(label_o)
                     + predicate_cls * -p_r(pred)) / 3
        + box_scale * (bbox * (L1_s + L1_o) + giou * (-GIoU_s - GIoU_o)) / 2

    with softmax probabilities of the subject, object and predicate heads (the predicate head's
    "no relation" class included in the softmax) and the box terms of :func:`box_costs`. Defaults
    are OpenPSG's: ``cls_scale=1.2, box_scale=1``, class weights 1/1/2, ``bbox=5``, ``giou=2``.
    """

    def __init__(self, sub_cls: float = 1.0, obj_cls: float = 1.0, predicate_cls: float = 2.0,
                 bbox: float = 5.0, giou: float = 2.0, cls_scale: float = 1.2,
                 box_scale: float = 1.0) -> None:
        self.sub_cls, self.obj_cls, self.predicate_cls = sub_cls, obj_cls, predicate_cls
        self.bbox, self.giou = bbox, giou
        self.cls_scale, self.box_scale = cls_scale, box_scale

    def cost(self, out: TripletOutputs, target: TripletTargets, size: Size) -> torch.Tensor:
        """``(Q, M)`` cost of one image (``out`` fields without the batch dimension)."""
        cls = (self.sub_cls * class_cost(out.sub_logits.softmax(-1), target.sub_labels)
               + self.obj_cls * class_cost(out.obj_logits.softmax(-1), target.obj_labels)
               + self.predicate_cls * class_cost(out.rel_logits.softmax(-1), target.predicates)) / 3
        l1_s, giou_s = box_costs(out.sub_boxes, target.sub_boxes, size)
        l1_o, giou_o = box_costs(out.obj_boxes, target.obj_boxes, size)
        box = (self.bbox * (l1_s + l1_o) + self.giou * (giou_s + giou_o)) / 2
        return self.cls_scale * cls + self.box_scale * box

    @torch.no_grad()
    def __call__(self, out: TripletOutputs, targets: Sequence[TripletTargets],
                 sizes: Sequence[Size]) -> list[Match]:
        matches = []
        for b, (target, size) in enumerate(zip(targets, sizes)):
            image = TripletOutputs(*(t[b].float() for t in out))
            matches.append(linear_assignment(self.cost(image, TripletTargets(
                *(t.float() if t.is_floating_point() else t for t in target)), size)))
        return matches

    def __repr__(self) -> str:
        return (f'HTriMatcher(sub_cls={self.sub_cls}, obj_cls={self.obj_cls}, '
                f'predicate_cls={self.predicate_cls}, bbox={self.bbox}, giou={self.giou}, '
                f'cls_scale={self.cls_scale}, box_scale={self.box_scale})')


class IdMatcher:
    """OpenPSG's relation-query matcher (PSGFormer).

    Each GT triplet ``m`` names the object queries its subject and object segments were matched to
    (``sub_query[m]``, ``obj_query[m]``). The cost of relation query ``r`` for it is
    ``-sub * softmax(sub_scores[r])[sub_query[m]] - obj * softmax(obj_scores[r])[obj_query[m]]
    - predicate * softmax(rel_logits[r])[predicate[m]]``.

    ``matcher(sub_scores (Qr, Q), obj_scores (Qr, Q), rel_logits (Qr, P + 1), sub_query (M,),
    obj_query (M,), predicates (M,))`` matches one image.
    """

    def __init__(self, sub: float = 1.0, obj: float = 1.0, predicate: float = 1.0) -> None:
        self.sub, self.obj, self.predicate = sub, obj, predicate

    def cost(self, sub_scores: torch.Tensor, obj_scores: torch.Tensor, rel_logits: torch.Tensor,
             sub_query: torch.Tensor, obj_query: torch.Tensor,
             predicates: torch.Tensor) -> torch.Tensor:
        return (self.sub * class_cost(sub_scores.softmax(-1), sub_query)
                + self.obj * class_cost(obj_scores.softmax(-1), obj_query)
                + self.predicate * class_cost(rel_logits.softmax(-1), predicates))

    @torch.no_grad()
    def __call__(self, sub_scores: torch.Tensor, obj_scores: torch.Tensor,
                 rel_logits: torch.Tensor, sub_query: torch.Tensor, obj_query: torch.Tensor,
                 predicates: torch.Tensor) -> Match:
        return linear_assignment(self.cost(sub_scores.float(), obj_scores.float(),
                                           rel_logits.float(), sub_query, obj_query, predicates))

    def __repr__(self) -> str:
        return f'IdMatcher(sub={self.sub}, obj={self.obj}, predicate={self.predicate})'
