"""Inference of the one-stage scene-graph models (PSGTR, PSGFormer), written once for both.

A model reduces its last decoder layer to

* *rows*, ranked best-first: the top ``max_per_img`` (query, predicate) cells of the softmax
  predicate probabilities (:func:`top_triplets`), each pointing at a subject and an object
  *candidate* and carrying its query's full predicate distribution and its rank score (the
  probability of the cell's predicate);
* *candidates*: segment hypotheses with mask logits at original size
  (:func:`~openpsg.structures.sample_logits_at_original`), a class and a class score. PSGTR has two candidates per row
  (the row's subject and object masks), PSGFormer one per object query a row points at.

:func:`triplet_prediction` then builds the panoptic segmentation (:func:`merge_candidates`:
each pixel goes to the candidate with the largest logit - the argmax of OpenPSG's per-pixel
softmax; stuff candidates of one class merge; thing candidates of one class whose binary masks
overlap with IoU > ``thing_iou`` merge greedily; candidates left without pixels vanish) and the
:class:`~openpsg.structures.Prediction`, in one of two ``output`` modes:

``'single_mpo'`` (default)
    The segments are the merged panoptic segments (one non-overlapping mask per object, ordered by
    their first candidate). A pixel no candidate claims (best probability <= ``claim_threshold``)
    is void: OpenPSG gives it to the largest logit, so the pixels of every object that no kept row
    mentions (and of the background between objects) swell some candidate's segment, which then
    misses its object by IoU - with weak masks, most of them. A row becomes the pair (segment of
    its subject, segment of its object); rows whose subject or object segment vanished, and rows
    whose subject and object fell into the same segment, are dropped; when several rows land on
    one (subject, object) pair - a query ranked for its second predicate, or two queries merged
    into one segment - only the first, i.e. highest-ranked, row is kept. ``predicate_scores`` is that row's query distribution over
    the predicates, ``triplet_scores`` its rank score, ``no_relation_scores`` its query's
    "no relation" probability; a segment's score is the best score of its candidates.
``'legacy'``
    OpenPSG's result: row ``r`` owns two segments, its subject candidate's and its object
    candidate's binary mask (``sigmoid(logit) > mask_threshold``; masks may overlap and repeat an
    object), so ``pairs[r] = (r, R + r)``; every row is kept in rank order. The evaluator takes the
    argmax of a row's distribution, which may differ from the predicate the row was ranked for
    (OpenPSG's quirk). The merged panoptic map (every pixel assigned, as OpenPSG) is returned
    beside it as ``pan_id_map`` / ``pan_labels``.

Masks, boxes and maps are at ``meta.ori_shape``. An image without any candidate gets an empty
prediction whose panoptic map is all void.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from ...structures import (NUM_THING_CLASSES, ImageMeta, Prediction, id_map_to_masks, mask_iou,
                           masks_to_boxes)
from .panoptic_merge import greedy_groups, merge_candidates

OUTPUT_MODES = ('single_mpo', 'legacy')


def check_output_mode(output: str) -> str:
    if output not in OUTPUT_MODES:
        raise ValueError(f'output must be one of {OUTPUT_MODES}, got {output!r}')
    return output


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


def triplet_prediction(meta: ImageMeta, logits: torch.Tensor, labels: np.ndarray,
                       scores: np.ndarray, sub_cand: np.ndarray, obj_cand: np.ndarray,
                       rel_probs: np.ndarray, rank_scores: np.ndarray, output: str = 'single_mpo',
                       mask_threshold: float = 0.85, thing_iou: float = 0.5,
                       num_thing_classes: int = NUM_THING_CLASSES,
                       claim_threshold: float = 0.5) -> Prediction:
    """The :class:`~openpsg.structures.Prediction` of ranked rows over candidates (see the module
    docstring).

    Args:
        meta: the image (``ori_shape``, ``image_id``).
        logits: ``(K, H0, W0)`` candidate mask logits at original size.
        labels, scores: ``(K,)`` candidate classes and class scores.
        sub_cand, obj_cand: ``(R,)`` the subject and object candidate of each row, best row first.
        rel_probs: ``(R, P + 1)`` each row's query distribution (last column = no relation).
        rank_scores: ``(R,)`` non-increasing.
        output: ``'single_mpo'`` or ``'legacy'``.
        mask_threshold: a candidate's binary mask is ``sigmoid(logit) > mask_threshold``.
        thing_iou, num_thing_classes: see :func:`merge_candidates`.
        claim_threshold: ``'single_mpo'``: a pixel whose best candidate's probability is not above
            it is void (``'legacy'`` assigns every pixel, as OpenPSG).
    """
    num_predicates = rel_probs.shape[1] - 1
    if len(labels) == 0:
        return Prediction.empty(meta.image_id, tuple(meta.ori_shape), num_predicates)
    legacy = check_output_mode(output) == 'legacy'
    binary = (logits.sigmoid() > mask_threshold).cpu().numpy()
    segment_of, id_map, seg_labels, seg_scores = merge_candidates(
        logits, binary, labels, scores, thing_iou, num_thing_classes,
        None if legacy else claim_threshold)
    rel_probs = rel_probs.astype(np.float32)
    if legacy:
        cands = np.concatenate([sub_cand, obj_cand])
        num_rows = len(sub_cand)
        masks = binary[cands]
        return Prediction(
            image_id=meta.image_id, labels=labels[cands].astype(np.int64),
            scores=scores[cands].astype(np.float32), boxes=masks_to_boxes(masks), masks=masks,
            pairs=np.stack([np.arange(num_rows), np.arange(num_rows) + num_rows], 1),
            predicate_scores=rel_probs[:, :num_predicates],
            triplet_scores=rank_scores.astype(np.float32), no_relation_scores=rel_probs[:, -1],
            pan_id_map=id_map, pan_labels=seg_labels)
    pairs = np.stack([segment_of[sub_cand], segment_of[obj_cand]], 1)
    valid = (pairs >= 0).all(1) & (pairs[:, 0] != pairs[:, 1])
    rows = np.flatnonzero(valid)
    _, first = np.unique(pairs[rows], axis=0, return_index=True)
    rows = rows[np.sort(first)]
    masks = id_map_to_masks(id_map, len(seg_labels))
    return Prediction(
        image_id=meta.image_id, labels=seg_labels, scores=seg_scores, boxes=masks_to_boxes(masks),
        masks=masks, pairs=pairs[rows].astype(np.int64),
        predicate_scores=rel_probs[rows, :num_predicates],
        triplet_scores=rank_scores[rows].astype(np.float32), no_relation_scores=rel_probs[rows, -1],
        pan_id_map=id_map)
