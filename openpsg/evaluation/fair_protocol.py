"""The ``fair`` protocol: SingleMPO evaluation of Lorenz et al. (ECCV'24, fair-psgg).

Per image (one with GT relations; a missing or empty prediction scores 0):

1. Segments are matched once, one-to-one: IoU is set to 0 where labels differ, each predicted
   segment with an IoU strictly above ``iou_thr`` goes to its best GT segment, and each GT segment
   keeps only the best of the predicted segments sent to it (lowest index on ties).
2. Rows with the same (subject, object) are de-duplicated *before* ranking (``dedup``):
   ``'first'`` keeps the first row; ``'max'`` keeps the row with the highest predicate score;
   ``'ng'`` merges the group into one row (per-predicate maximum, mean no-relation score, maximum
   ranking score; merged rows come in lexicographic (subject, object) order); ``'fail'`` raises
   :class:`~openpsg.evaluation.matching.EvaluationError`; ``'none'`` keeps every row.
3. Rows are ranked by ``triplet_scores`` (descending, ties in row order) or, without them, in
   emitted order. A top-K row hits when both its segments are matched, the matched pair is a GT
   pair and the row's argmax predicate is one of that pair's GT predicates. Every hit counts: a GT
   triplet annotated twice is hit twice, and with ``dedup='none'`` two rows of one pair may hit the
   same triplet twice (as fair-psgg counts them).
4. No-graph-constraint: every (row, predicate) cell of all rows is scored
   ``p * (1 - no_relation_score)`` (``p`` alone without no-relation scores); the K best cells
   (ties by row, then predicate) hit like rows, so one pair may hit several predicates.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .matching import Relations, hits_at_ks, input_error, top_k_descending, triplet_hits

DEDUP_MODES = ('first', 'max', 'ng', 'fail', 'none')


def match_segments(iou: np.ndarray, pred_labels: np.ndarray, gt_labels: np.ndarray,
                   iou_thr: float) -> np.ndarray:
    """One-to-one, label-gated matching -> ``(N,)`` GT index of each predicted segment, -1 if none."""
    num_pred, num_gt = iou.shape
    match = np.full(num_pred, -1, dtype=np.int64)
    if num_pred == 0 or num_gt == 0:
        return match
    gated = np.where(pred_labels[:, None] == gt_labels[None, :], iou, 0.0)
    best_gt = gated.argmax(1)
    best_iou = gated[np.arange(num_pred), best_gt]
    candidates = np.flatnonzero(best_iou > iou_thr)
    order = np.lexsort((candidates, -best_iou[candidates], best_gt[candidates]))
    ranked = candidates[order]
    first_of_gt = np.diff(best_gt[ranked], prepend=-1) != 0
    match[ranked[first_of_gt]] = best_gt[ranked[first_of_gt]]
    return match


def deduplicate(rel: Relations, dedup: str, image_id: str) -> Relations:
    """Rows with one row per (subject, object) pair, per the ``dedup`` rule (module docstring)."""
    if dedup == 'none' or len(rel.pairs) == 0:
        return rel
    num = len(rel.labels)  # pairs index the segments: one key per pair, in (subject, object) order
    keys, first, group, size = np.unique(rel.pairs[:, 0] * num + rel.pairs[:, 1], return_index=True,
                                         return_inverse=True, return_counts=True)
    pairs = np.stack(np.divmod(keys, num), axis=1)
    group = group.ravel()
    if len(pairs) == len(rel.pairs):
        return rel
    if dedup == 'fail':
        s, o = pairs[size.argmax()]
        raise input_error(image_id, 'prediction.pairs',
                          f'pair (subject={s}, object={o}) occurs in {size.max()} rows; '
                          "dedup='fail' needs one row per (subject, object) pair")
    if dedup == 'first':
        return rel.take(np.sort(first))
    if dedup == 'max':
        best = rel.predicate_scores.max(1)
        rows = np.arange(len(rel.pairs))
        order = np.lexsort((rows, -best, group))
        starts = np.r_[0, np.cumsum(size)[:-1]]
        return rel.take(np.sort(order[starts]))
    if dedup == 'ng':
        return _merge_groups(rel, pairs, group, size)
    raise ValueError(f'unknown dedup mode {dedup!r}; choose from {DEDUP_MODES}')


def _merge_groups(rel: Relations, pairs: np.ndarray, group: np.ndarray,
                  size: np.ndarray) -> Relations:
    order = np.argsort(group, kind='stable')
    starts = np.r_[0, np.cumsum(size)[:-1]]
    rank = rel.triplet_scores
    if rank is None:  # emitted order: the first row of a group carries its rank
        rank = np.arange(len(rel.pairs))[::-1].astype(np.float64)
    no_relation = rel.no_relation_scores
    if no_relation is not None:
        sums = np.add.reduceat(no_relation[order].astype(np.float64), starts)
        no_relation = (sums / size).astype(no_relation.dtype)
    return Relations(rel.labels, rel.scores, pairs,
                     np.maximum.reduceat(rel.predicate_scores[order], starts, axis=0),
                     np.maximum.reduceat(rank[order], starts), no_relation)


def fair_triplet_hits(rel: Relations, gt_labels: np.ndarray, gt_rels: np.ndarray,
                      iou: np.ndarray, ks: Sequence[int], iou_thr: float, dedup: str,
                      image_id: str) -> dict[str, np.ndarray]:
    """Hits of each GT triplet within the top K under the fair protocol.

    Args:
        rel: the image's rows, segments as the mode defines them.
        gt_labels: ``(G,)``. gt_rels: ``(M, 3)`` GT triplets as annotated (duplicates kept).
        iou: ``(N, G)`` IoU of the predicted segments (non-overlapping) against the GT segments.

    Returns:
        ``{'R', 'ngR'}`` -> ``(len(ks), M)`` number of hits per GT triplet.
    """
    rel = deduplicate(rel, dedup, image_id)
    match = match_segments(iou, rel.labels, gt_labels, iou_thr)
    seg_ok = match[:, None] == np.arange(len(gt_labels))[None, :]
    kmax = max(ks)

    rows = (np.arange(min(len(rel.pairs), kmax)) if rel.triplet_scores is None
            else top_k_descending(rel.triplet_scores, kmax))
    predicate = rel.predicate_scores[rows].argmax(1)
    hit = triplet_hits(rel.pairs[rows, 0], rel.pairs[rows, 1], predicate, seg_ok, gt_rels)

    cell_scores = rel.predicate_scores
    if rel.no_relation_scores is not None:
        cell_scores = cell_scores * (1 - rel.no_relation_scores)[:, None]
    cell_rows, cell_predicate = np.divmod(top_k_descending(cell_scores, kmax),
                                          cell_scores.shape[1])
    ng_hit = triplet_hits(rel.pairs[cell_rows, 0], rel.pairs[cell_rows, 1], cell_predicate, seg_ok,
                          gt_rels)
    return {'R': hits_at_ks(hit, ks, cumulative=True),
            'ngR': hits_at_ks(ng_hit, ks, cumulative=True)}
