"""Which pairs a relation model sees and what it learns: training pairs drawn from an image's
relations (positives) and unrelated pairs (negatives), object targets of detected segments, and
the pairs scored at test time."""
from __future__ import annotations

import torch
from torchvision.ops import box_iou

from ...structures import Sample
from ...structures.pairs import ordered_pairs, unrelated_pairs
from .contracts import ObjectSet, RelationTargets


def inference_pairs(n: int, device: torch.device | None = None) -> torch.Tensor:
    """The pairs scored at test time: every ordered pair, or the placeholder ``(0, 0)`` for a
    single object (as OpenPSG, so that such an image still counts in the recall averages)."""
    if n == 1:
        return torch.zeros((1, 2), dtype=torch.long, device=device)
    return ordered_pairs(n, device)


def sample_negatives(related: torch.Tensor, limit: int | None,
                     generator: torch.Generator | None = None, shuffle: bool = True
                     ) -> torch.Tensor:
    """"No relation" training pairs ``(M, 2)``: the unrelated pairs of ``related (N, N)``
    (:func:`~openpsg.structures.pairs.unrelated_pairs`), at most ``limit`` of them (``None``: all)
    drawn without replacement with ``generator`` (``None``: torch's global generator).

    ``shuffle=True`` returns them in random order even when all are kept (OpenPSG's sampler);
    ``shuffle=False`` keeps the row-major order and draws random numbers only when there are
    more than ``limit``.
    """
    negatives = unrelated_pairs(related)
    if not shuffle and (limit is None or len(negatives) <= limit):
        return negatives
    keep = torch.randperm(len(negatives), generator=generator)[:limit]
    return negatives[keep.to(negatives.device)]


def assign_object_targets(boxes: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor,
                          background: int, iou_thr: float = 0.5) -> torch.Tensor:
    """Class targets ``(N,)`` of boxes ``(N, 4)`` matched to ground truth ``(G, 4)``, ``(G,)``.

    A box takes the label of its highest-IoU ground truth when that IoU is ``>= iou_thr``, else
    ``background``; then every ground truth whose best IoU is ``>= iou_thr`` also claims the boxes
    reaching that best IoU (mmdet's MaxIoUAssigner with low-quality matches, ground truth in
    order, later ones winning).
    """
    targets = torch.full((len(boxes),), background, dtype=torch.long, device=boxes.device)
    if len(boxes) == 0 or len(gt_boxes) == 0:
        return targets
    iou = box_iou(boxes, gt_boxes)
    best, best_gt = iou.max(1)
    assigned = torch.where(best >= iou_thr, best_gt, torch.full_like(best_gt, -1))
    gt_best = iou.max(0).values
    for g in torch.nonzero(gt_best >= iou_thr).squeeze(1).tolist():
        assigned[iou[:, g] == gt_best[g]] = g
    matched = assigned >= 0
    targets[matched] = gt_labels[assigned[matched]]
    return targets


class RelationSampler:
    """Draws the training pairs of an image (OpenPSG's "Motif" sampler).

    ``num_rel_per_image`` pairs at most, of which at most ``pos_fraction`` positive.

    * Ground-truth objects (PredCls, SGCls): positives are the annotated relations (a random subset
      when too many); negatives (:func:`sample_negatives`) are ordered pairs that are related in
      neither direction, labelled "no relation".
    * Detected objects (SGDet): an object matches a ground-truth object when their labels agree
      and their box IoU is ``> pos_iou_thr``. Every annotated relation ``(s, o, p)`` yields the
      pairs ``(s', o')``, ``s' != o'``, of objects matching ``s`` and ``o``, labelled ``p``; when
      there are more than ``num_sample_per_gt_rel``, that many are drawn without replacement
      with probability proportional to ``IoU(s', s) * IoU(o', o)``. Negatives as above.

    ``related`` marks (both directions) every positive pair before the cap. An image whose only
    object allows no pair gets the single pair ``(0, 0)`` labelled "no relation". Random draws use
    ``generator`` (``None``: torch's global generator), so ``torch.manual_seed`` repeats them.
    """

    def __init__(self, num_rel_per_image: int = 1024, pos_fraction: float = 0.25,
                 num_sample_per_gt_rel: int = 4, pos_iou_thr: float = 0.5) -> None:
        self.num_rel_per_image = num_rel_per_image
        self.num_pos = int(num_rel_per_image * pos_fraction)
        self.num_sample_per_gt_rel = num_sample_per_gt_rel
        self.pos_iou_thr = pos_iou_thr

    def __call__(self, objects: ObjectSet, gt: Sample, num_predicates: int, use_gt_box: bool,
                 generator: torch.Generator | None = None) -> RelationTargets:
        device = objects.boxes.device
        n = len(objects)
        rels = gt.rels.to(device)
        if use_gt_box:
            positives = rels
        else:
            positives = self._detected_positives(objects, gt, generator)
        related = torch.zeros((n, n), dtype=torch.bool, device=device)
        related[positives[:, 0], positives[:, 1]] = True
        related[positives[:, 1], positives[:, 0]] = True
        if len(positives) > self.num_pos:
            keep = torch.randperm(len(positives), generator=generator)[:self.num_pos]
            positives = positives[keep.to(device)]
        negatives = sample_negatives(related, self.num_rel_per_image - len(positives), generator)
        pairs = torch.cat([positives[:, :2], negatives])
        labels = torch.cat([positives[:, 2], negatives.new_full((len(negatives),), num_predicates)])
        if len(pairs) == 0:
            pairs = torch.zeros((1, 2), dtype=torch.long, device=device)
            labels = torch.full((1,), num_predicates, dtype=torch.long, device=device)
        return RelationTargets(pairs, labels, related)

    def _detected_positives(self, objects: ObjectSet, gt: Sample,
                            generator: torch.Generator | None) -> torch.Tensor:
        """``(M, 3)`` (subject, object, predicate) rows over the detected objects."""
        device = objects.boxes.device
        gt_boxes, gt_labels = gt.boxes.to(device), gt.labels.to(device)
        if len(gt_boxes) == 0 or len(objects) == 0:
            return torch.zeros((0, 3), dtype=torch.long, device=device)
        iou = box_iou(objects.boxes.float(), gt_boxes.float())
        match = (iou > self.pos_iou_thr) & (objects.labels[:, None] == gt_labels[None, :])
        rows = []
        for s, o, p in gt.rels.tolist():
            subj = torch.nonzero(match[:, s]).squeeze(1)
            obj = torch.nonzero(match[:, o]).squeeze(1)
            ss, oo = torch.meshgrid(subj, obj, indexing='ij')
            ss, oo = ss.reshape(-1), oo.reshape(-1)
            keep = ss != oo
            ss, oo = ss[keep], oo[keep]
            if len(ss) > self.num_sample_per_gt_rel:
                weights = (iou[ss, s] * iou[oo, o]).cpu().double()
                pick = torch.multinomial(weights, self.num_sample_per_gt_rel, replacement=False,
                                         generator=generator).to(device)
                ss, oo = ss[pick], oo[pick]
            rows.append(torch.stack([ss, oo, torch.full_like(ss, p)], 1))
        if not rows:
            return torch.zeros((0, 3), dtype=torch.long, device=device)
        return torch.cat(rows)
