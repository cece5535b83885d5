"""Inference of the one-stage scene-graph models (PSGTR, PSGFormer), written once for both.

A model reduces its last decoder layer to

* *rows* (:class:`Rows`), ranked best-first: the top ``max_per_img`` (query, predicate) cells of
  the softmax predicate probabilities (:func:`top_triplets`), each pointing at a subject and an
  object *candidate* and carrying its query's full predicate distribution and its rank score (the
  probability of the cell's predicate);
* *candidates*: segment hypotheses with mask logits at original size (:func:`logits_at_original`),
  a class and a class score. PSGTR has two candidates per row (the row's subject and object
  masks), PSGFormer one per object query a row points at.

A candidate's binary mask is ``sigmoid(logit) > mask_thr``. The panoptic segmentation is
:func:`~.panoptic_merge.merge_candidates`: each pixel goes to the candidate with the largest logit,
stuff candidates of one class merge, thing candidates of one class whose binary masks overlap with
IoU > ``thing_iou_thr`` merge greedily, candidates left without pixels vanish. Three ``output``
modes build the :class:`~openpsg.structures.Prediction` (``predicate_scores`` of a row: its query's
distribution over the predicates; ``triplet_scores``: its rank score; ``no_relation_scores``: its
query's "no relation" probability; a segment's score: the best score of its candidates):

``'single_mpo'`` (default; :func:`triplet_prediction`)
    One non-overlapping mask per object and one predicate distribution per pair, as the ``fair``
    protocol expects. It differs from OpenPSG's panoptic output in three ways: the logits are
    sampled bilinearly at the original pixels (:func:`~openpsg.structures.sample_logits_at_original`)
    instead of nearest-resized; a pixel no candidate claims (best probability <=
    ``claim_thr``) is void, where OpenPSG gives it to the largest logit, so that the pixels
    of every object no kept row mentions (and of the background between objects) do not swell some
    candidate's segment until it misses its object by IoU; and a row becomes the pair (segment of
    its subject, segment of its object) only if both segments exist and differ and no
    higher-ranked row has the same pair (a query ranked for its second predicate, or two queries
    merged into one segment).
``'openpsg_panoptic'`` (:func:`triplet_prediction`)
    OpenPSG's ``eval_pan_rels=True``: logits nearest-resized
    (:func:`~openpsg.structures.openpsg_logits_to_original`), every pixel assigned, segments in the
    order of their groups' first candidates, each row re-mapped to (segment of its subject,
    segment of its object) and kept, in rank order, whenever both segments have pixels - also when
    subject and object fell into one segment and when an earlier row has the same pair. Without
    any candidate the result is OpenPSG's placeholder: one segment (label 0) covering the image, no
    relation, and a panoptic map of panoptic label 1 (OpenPSG's ``pan_results`` of ones).
``'legacy'`` (:func:`legacy_prediction`)
    OpenPSG's ``eval_pan_rels=False``, behind its published numbers: row ``r`` owns two segments,
    its subject candidate's and its object candidate's binary mask (nearest-resized logits; masks
    may overlap and repeat an object), so ``pairs[r] = (r, R + r)``; every row the model passes in
    is kept in rank order. The evaluator takes the argmax of a row's distribution, which may
    differ from the predicate the row was ranked for (OpenPSG's quirk). OpenPSG's panoptic map (of
    the ``'openpsg_panoptic'`` output of the model's panoptic candidates, without the label bugs,
    which need that output) is returned beside it as ``pan_id_map`` / ``pan_labels``.

Masks, boxes and maps are at ``meta.ori_shape``.
"""
from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

import numpy as np
import torch

from ...structures import (NUM_THING_CLASSES, ImageMeta, Prediction, id_map_to_masks, mask_iou,
                           masks_to_boxes, no_relations, openpsg_logits_to_original,
                           sample_logits_at_original)
from .panoptic_merge import greedy_groups, merge_candidates

OUTPUT_MODES = ('single_mpo', 'legacy', 'openpsg_panoptic')


def check_output(output: str, owner: str, bug_flag: str, bug: bool) -> str:
    """``output`` if it is one of :data:`OUTPUT_MODES`; OpenPSG's label bugs (``bug_flag`` of
    ``owner``) exist only in its panoptic output, so ``bug=True`` needs
    ``output='openpsg_panoptic'``. Raises ``ValueError`` naming the keys otherwise."""
    if output not in OUTPUT_MODES:
        raise ValueError(f'{owner}: output must be one of {OUTPUT_MODES}, got {output!r}')
    if bug and output != 'openpsg_panoptic':
        raise ValueError(f"{owner}: {bug_flag}=True reproduces a bug of OpenPSG's panoptic output "
                         f"and needs output='openpsg_panoptic', got output={output!r}")
    return output


def logits_at_original(logits: torch.Tensor, meta: ImageMeta, output: str) -> torch.Tensor:
    """Stride-4 candidate logits ``(K, h, w)`` -> ``(K, H0, W0)``: bilinear sampling for
    ``'single_mpo'``, OpenPSG's nearest resize for its two outputs."""
    if output == 'single_mpo':
        return sample_logits_at_original(logits, meta)
    return openpsg_logits_to_original(logits, meta)


class Rows(NamedTuple):
    """Ranked rows: ``sub``, ``obj`` ``(R,)`` int64 candidate indices; ``probs (R, P + 1)`` each
    row's query distribution (last column = no relation); ``scores (R,)`` rank scores,
    non-increasing."""

    sub: np.ndarray
    obj: np.ndarray
    probs: np.ndarray
    scores: np.ndarray

    def take(self, keep: np.ndarray) -> 'Rows':
        """The rows selected by ``keep`` (bool mask or indices), in their order."""
        return Rows(*(field[keep] for field in self))

    def relation_fields(self) -> dict[str, np.ndarray]:
        """``predicate_scores``, ``triplet_scores`` and ``no_relation_scores`` of every row."""
        probs = self.probs.astype(np.float32)
        return dict(predicate_scores=probs[:, :-1], triplet_scores=self.scores.astype(np.float32),
                    no_relation_scores=probs[:, -1])


def top_triplets(rel_logits: torch.Tensor, k: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``k`` best (query, predicate) cells of ``rel_logits (Q, P + 1)`` (last = no relation).

    Probabilities are the softmax over all ``P + 1`` classes; the no-relation column is not a
    candidate. Returns ``scores (k,)`` descending, ``query (k,)``, ``predicate (k,)`` in ``0..P-1``
    and the probabilities ``(Q, P + 1)``.
    """
    probs = rel_logits.float().softmax(-1)
    num_predicates = probs.shape[1] - 1
    scores, flat = probs[:, :num_predicates].flatten().topk(min(k, probs.shape[0] * num_predicates))
    return scores, flat // num_predicates, flat % num_predicates, probs


def dedup_triplets(sub_labels: np.ndarray, obj_labels: np.ndarray, predicates: np.ndarray,
                   sub_masks: np.ndarray, obj_masks: np.ndarray, iou_thr: float) -> np.ndarray:
    """OpenPSG's triplet de-duplication of ranked rows -> ``keep (R,)`` bool.

    Among rows with the same (subject label, object label, predicate), in rank order, the first
    row still standing removes every later one whose subject-mask IoU and object-mask IoU with it
    both exceed ``iou_thr``; removed rows remove nothing (:func:`~.panoptic_merge.greedy_groups`).
    ``*_masks (R, H, W)`` bool.
    """
    keep = np.ones(len(predicates), dtype=bool)
    groups: dict[tuple[int, int, int], list[int]] = defaultdict(list)
    for r, key in enumerate(zip(sub_labels.tolist(), obj_labels.tolist(), predicates.tolist())):
        groups[key].append(r)
    for rows in groups.values():
        if len(rows) < 2:
            continue
        rows = np.asarray(rows)
        duplicate = ((mask_iou(sub_masks[rows], sub_masks[rows]) > iou_thr)
                     & (mask_iou(obj_masks[rows], obj_masks[rows]) > iou_thr))
        keep[rows] = greedy_groups(duplicate) == np.arange(len(rows))
    return keep


def openpsg_placeholder(meta: ImageMeta, num_predicates: int) -> Prediction:
    """OpenPSG's panoptic result without any candidate: one segment (label 0, score 0) covering the
    image, no relation, and a panoptic map of one segment of panoptic label 1 (OpenPSG fills
    ``pan_results`` with ones: instance 0, class 1)."""
    h, w = meta.ori_shape
    return Prediction(image_id=meta.image_id, labels=np.zeros(1, np.int64),
                      scores=np.zeros(1, np.float32),
                      boxes=np.array([[0, 0, w, h]], np.float32), masks=np.ones((1, h, w), bool),
                      **no_relations(num_predicates), pan_id_map=np.zeros((h, w), np.int32),
                      pan_labels=np.ones(1, np.int64))


def triplet_prediction(meta: ImageMeta, logits: torch.Tensor, labels: np.ndarray,
                       scores: np.ndarray, rows: Rows, output: str = 'single_mpo',
                       mask_thr: float = 0.85, thing_iou_thr: float = 0.5,
                       num_thing_classes: int = NUM_THING_CLASSES,
                       claim_thr: float = 0.5) -> Prediction:
    """The ``'single_mpo'`` or ``'openpsg_panoptic'`` prediction of ranked ``rows`` over
    candidates (module docstring).

    Args:
        meta: the image (``ori_shape``, ``image_id``).
        logits: ``(K, H0, W0)`` candidate mask logits at original size.
        labels, scores: ``(K,)`` candidate classes and class scores.
        rows: the ranked rows over these candidates.
        output: ``'single_mpo'`` or ``'openpsg_panoptic'``.
        mask_thr: a candidate's binary mask is ``sigmoid(logit) > mask_thr``.
        thing_iou_thr, num_thing_classes: see :func:`~.panoptic_merge.merge_candidates`.
        claim_thr: ``'single_mpo'``: a pixel whose best candidate's probability is not above
            it is void.
    """
    num_predicates = rows.probs.shape[1] - 1
    openpsg = output == 'openpsg_panoptic'
    if len(labels) == 0:
        return (openpsg_placeholder(meta, num_predicates) if openpsg else
                Prediction.empty(meta.image_id, tuple(meta.ori_shape), num_predicates))
    binary = (logits.sigmoid() > mask_thr).cpu().numpy()
    segment_of, id_map, seg_labels, seg_scores = merge_candidates(
        logits, binary, labels, scores, thing_iou_thr, num_thing_classes,
        None if openpsg else claim_thr)
    pairs = np.stack([segment_of[rows.sub], segment_of[rows.obj]], 1)
    kept = np.flatnonzero((pairs >= 0).all(1))
    if not openpsg:
        kept = kept[pairs[kept, 0] != pairs[kept, 1]]
        _, first = np.unique(pairs[kept], axis=0, return_index=True)
        kept = kept[np.sort(first)]
    masks = id_map_to_masks(id_map, len(seg_labels))
    return Prediction(
        image_id=meta.image_id, labels=seg_labels, scores=seg_scores, boxes=masks_to_boxes(masks),
        masks=masks, pairs=pairs[kept].astype(np.int64), **rows.take(kept).relation_fields(),
        pan_id_map=id_map)


def legacy_prediction(meta: ImageMeta, logits: torch.Tensor, labels: np.ndarray,
                      scores: np.ndarray, rows: Rows, panoptic: Prediction,
                      mask_thr: float = 0.85) -> Prediction:
    """The ``'legacy'`` prediction (module docstring): every row of ``rows`` with its subject and
    object candidate's binary mask (``logits (K, H0, W0)``, ``labels``, ``scores (K,)`` of the
    candidates), and the panoptic map of ``panoptic`` (the model's ``'openpsg_panoptic'``
    prediction)."""
    cands = np.concatenate([rows.sub, rows.obj]).astype(np.int64)
    masks = (logits[torch.as_tensor(cands, device=logits.device)].sigmoid()
             > mask_thr).cpu().numpy()
    num_rows = len(rows.sub)
    pan_id_map, pan_labels = panoptic.panoptic()
    return Prediction(
        image_id=meta.image_id, labels=labels[cands].astype(np.int64),
        scores=scores[cands].astype(np.float32), boxes=masks_to_boxes(masks), masks=masks,
        pairs=np.stack([np.arange(num_rows), np.arange(num_rows) + num_rows], 1),
        **rows.relation_fields(), pan_id_map=pan_id_map, pan_labels=pan_labels)
