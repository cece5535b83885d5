"""The ``openpsg`` protocol: the evaluator of OpenPSG (ECCV'22), whose numbers published tables use.

Per image (one with GT relations and at least one predicted row; the others are skipped):

* rows are taken in emitted order, never re-sorted; a row's predicate is the argmax of its scores;
* a row hits a GT triplet when subject label, object label and predicate are equal and the
  subject and object IoUs are both ``>= iou_thr`` (masks, or boxes with ``match='box'``); a row
  may hit several GT triplets and a GT triplet may be hit by several rows (duplicate masks of one
  object all match);
* a GT triplet counts once, as soon as any of the first K rows hits it.

Also computed: phrase detection (labels and predicate equal, IoU of the union of subject and
object ``>= iou_thr``), pair accuracy (among rows whose (subject, object) is a GT pair, in their
order, the GT triplets hit by the first K), and no-graph-constraint recall. OpenPSG leaves the
latter empty for masks; here it follows OpenPSG's box rule for every kind: every (row, predicate)
cell is scored ``score(subject) * score(object) * p(predicate)``, the 100 best cells are kept and
recall is taken over their first K (so ``ngR@K`` for ``K > 100`` equals ``ngR@100``). Ties in
that ranking are broken by row, then predicate index.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .matching import Relations, UnionIoU, hits_at_ks, top_k_descending, triplet_hits

NG_CANDIDATES = 100  # OpenPSG keeps the 100 best cells for no-graph-constraint recall


def openpsg_triplet_hits(rel: Relations, gt_labels: np.ndarray, gt_rels: np.ndarray,
                         iou: np.ndarray, ks: Sequence[int], iou_thr: float,
                         union_iou: UnionIoU | None = None,
                         pair_accuracy: bool = False) -> dict[str, np.ndarray]:
    """GT triplets hit within the top K under OpenPSG's rules.

    Args:
        rel: the image's rows (at least one), segments as the mode defines them.
        gt_labels: ``(G,)`` GT segment labels. gt_rels: ``(M, 3)`` GT triplets (duplicates removed).
        iou: ``(N, G)`` IoU of the predicted segments against the GT segments.
        union_iou: ``(pred pairs (A, 2), GT pairs (B, 2)) -> (A, B)`` union IoU; when given,
            phrase detection (``'PhrDet'``) is computed.
        pair_accuracy: also compute pair accuracy (``'A'``), for PredCls/SGCls.

    Returns:
        ``{'R', 'ngR'[, 'PhrDet'][, 'A']}`` -> ``(len(ks), M)`` 0/1 per GT triplet.
    """
    predicate = rel.predicate_scores.argmax(1)
    seg_ok = (rel.labels[:, None] == gt_labels[None, :]) & (iou >= iou_thr)
    kmax = max(ks)
    top = np.arange(min(len(rel.pairs), kmax))

    def rows_hits(rows: np.ndarray) -> np.ndarray:
        hit = triplet_hits(rel.pairs[rows, 0], rel.pairs[rows, 1], predicate[rows], seg_ok, gt_rels)
        return hits_at_ks(hit, ks, cumulative=False)

    out = {'R': rows_hits(top), 'ngR': _no_graph_constraint(rel, seg_ok, gt_rels, ks)}
    if union_iou is not None:
        out['PhrDet'] = _phrase_hits(rel.pairs[top], predicate[top], rel.labels, gt_labels, gt_rels,
                                     union_iou, ks, iou_thr)
    if pair_accuracy:
        gt_pair = (rel.pairs[:, None, :] == gt_rels[None, :, :2]).all(-1).any(1)
        out['A'] = rows_hits(np.flatnonzero(gt_pair)[:kmax])
    return out


def _no_graph_constraint(rel: Relations, seg_ok: np.ndarray, gt_rels: np.ndarray,
                         ks: Sequence[int]) -> np.ndarray:
    pair_score = rel.scores[rel.pairs[:, 0]] * rel.scores[rel.pairs[:, 1]]
    cells = top_k_descending(pair_score[:, None] * rel.predicate_scores,
                             min(max(ks), NG_CANDIDATES))
    rows, predicate = np.divmod(cells, rel.predicate_scores.shape[1])
    hit = triplet_hits(rel.pairs[rows, 0], rel.pairs[rows, 1], predicate, seg_ok, gt_rels)
    return hits_at_ks(hit, ks, cumulative=False)


def _phrase_hits(pairs: np.ndarray, predicate: np.ndarray, labels: np.ndarray,
                 gt_labels: np.ndarray, gt_rels: np.ndarray, union_iou: UnionIoU,
                 ks: Sequence[int], iou_thr: float) -> np.ndarray:
    same = ((labels[pairs[:, 0]][:, None] == gt_labels[gt_rels[:, 0]][None, :])
            & (labels[pairs[:, 1]][:, None] == gt_labels[gt_rels[:, 1]][None, :])
            & (predicate[:, None] == gt_rels[None, :, 2]))
    candidates = same.any(1)
    hit = np.zeros_like(same)
    if candidates.any():
        hit[candidates] = same[candidates] & (union_iou(pairs[candidates], gt_rels[:, :2]) >= iou_thr)
    return hits_at_ks(hit, ks, cumulative=False)
