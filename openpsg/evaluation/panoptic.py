"""Panoptic quality (PQ, SQ, RQ) computed from id maps, with the rules of COCO's ``pq_compute``.

Per image, :func:`pq_stats_image` compares a ground-truth and a predicted panoptic segmentation,
both given as ``(H, W)`` id maps (pixel value ``i >= 0`` = segment ``i``, ``-1`` = void) plus one
class label per segment. It returns a :class:`PQStat` of per-category counts that can be summed over
images (``sum(stats, PQStat.zeros(is_thing))`` or ``a + b``) and turned into percentages by
:func:`summarize_pq`.

Rules (those of the COCO panoptic API):

* VOID = ground-truth pixels that belong to no segment.
* A predicted and a ground-truth segment of the same category match when their IoU is **> 0.5**,
  where the union leaves out the predicted pixels that fall on VOID:
  ``union = |pred| + |gt| - |pred ∩ gt| - |pred ∩ VOID|``. Such matches are unique.
* Ground-truth *crowd* segments never match and are never false negatives.
* An unmatched predicted segment is a false positive unless more than half of its pixels lie on
  VOID or on crowd regions of its own category, in which case it is ignored.
* Every listed non-crowd ground-truth segment without a match is a false negative (a segment with
  no pixel included). Predicted segments with no pixel in the map do not exist.
* Per category: ``PQ = Σ IoU / (TP + FP/2 + FN/2)``, ``SQ = Σ IoU / TP``, ``RQ = TP / (TP + FP/2 +
  FN/2)``. PQ/SQ/RQ of All, Things and Stuff average the categories that occur (TP + FP + FN > 0).

Differences from OpenPSG's numbers, on purpose: OpenPSG's challenge grader gives every pixel its
submission does not paint the raw id 0, which its PQ step reads as class 0 (``person``); here such
pixels are simply void in the prediction and count for nothing. Several crowd segments of one
category in one image all count as that category's crowd region (COCO stores at most one).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..structures.masks import VOID
from .matching import MaskGeometry

MATCH_IOU = 0.5
IGNORE_FRACTION = 0.5
PQ_KEYS = ('PQ', 'SQ', 'RQ', 'PQ_th', 'SQ_th', 'RQ_th', 'PQ_st', 'SQ_st', 'RQ_st')


@dataclass
class PQStat:
    """Per-category panoptic counts: ``tp, fp, fn (C,)`` int64, ``iou_sum (C,)`` float64 (sum of the
    IoUs of the true positives), ``is_thing (C,)`` bool (which categories are things)."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    iou_sum: np.ndarray
    is_thing: np.ndarray

    @classmethod
    def zeros(cls, is_thing: np.ndarray) -> 'PQStat':
        is_thing = np.asarray(is_thing, dtype=bool)
        c = len(is_thing)
        return cls(np.zeros(c, np.int64), np.zeros(c, np.int64), np.zeros(c, np.int64),
                   np.zeros(c, np.float64), is_thing)

    def __add__(self, other: 'PQStat') -> 'PQStat':
        if not np.array_equal(self.is_thing, other.is_thing):
            raise ValueError('cannot add PQ statistics over different category sets')
        return PQStat(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn,
                      self.iou_sum + other.iou_sum, self.is_thing)

    def __radd__(self, other: object) -> 'PQStat':
        if other == 0:  # lets the builtin sum() start from 0
            return self
        return NotImplemented


def pq_stats_image(gt_id_map: np.ndarray, gt_labels: np.ndarray, gt_iscrowd: np.ndarray | None,
                   pred_id_map: np.ndarray, pred_labels: np.ndarray, is_thing: np.ndarray, *,
                   image_id: str = '') -> PQStat:
    """Panoptic counts of one image.

    ``gt_id_map``/``pred_id_map`` ``(H, W)`` int (segment index, ``-1`` void); ``gt_labels (N,)``,
    ``pred_labels (P,)`` 0-based categories ``< len(is_thing)``; ``gt_iscrowd (N,)`` bool or
    ``None`` (no crowd); ``is_thing (C,)`` bool per category. ``image_id`` only names the image in
    error messages.
    """
    gt_labels = np.asarray(gt_labels, dtype=np.int64).reshape(-1)
    pred_labels = np.asarray(pred_labels, dtype=np.int64).reshape(-1)
    where = f'PQ, image {image_id}: ' if image_id else 'PQ: '
    if gt_id_map.shape != pred_id_map.shape:
        raise ValueError(f'{where}predicted panoptic map is {pred_id_map.shape} (H, W) but the '
                         f'ground truth is {gt_id_map.shape}')
    for name, id_map, labels in (('ground-truth', gt_id_map, gt_labels),
                                 ('predicted', pred_id_map, pred_labels)):
        if id_map.size and (id_map.min() < VOID or id_map.max() >= len(labels)):
            raise ValueError(f'{where}{name} id map holds segment indices {int(id_map.min())}..'
                             f'{int(id_map.max())} but there are {len(labels)} labels '
                             f'(valid: -1 void, 0..{len(labels) - 1})')
    counts = MaskGeometry.from_id_map(pred_id_map, len(pred_labels), gt_id_map, len(gt_labels))
    return pq_stats_counts(counts, gt_labels, gt_iscrowd, pred_labels, is_thing,
                           image_id=image_id)


def pq_stats_counts(counts: MaskGeometry, gt_labels: np.ndarray, gt_iscrowd: np.ndarray | None,
                    pred_labels: np.ndarray, is_thing: np.ndarray, *,
                    image_id: str = '') -> PQStat:
    """Panoptic counts of one image from the pixel counts of its non-overlapping predicted
    segments against its ground-truth segments (``counts.inter (P, N)``, ``pred_area (P,)``,
    ``gt_area (N,)``, ``on_void (P,)``; e.g. the resolved
    :func:`~openpsg.evaluation.sgg.prediction_geometry` of the relation segments). Labels and
    ``is_thing`` as in :func:`pq_stats_image`.
    """
    is_thing = np.asarray(is_thing, dtype=bool)
    gt_labels = np.asarray(gt_labels, dtype=np.int64).reshape(-1)
    pred_labels = np.asarray(pred_labels, dtype=np.int64).reshape(-1)
    n, p = len(gt_labels), len(pred_labels)
    crowd = np.zeros(n, bool) if gt_iscrowd is None else np.asarray(gt_iscrowd, bool).reshape(-1)
    _check_inputs(gt_labels, pred_labels, crowd, len(is_thing), image_id)

    inter = counts.inter.astype(np.float64)
    on_void = counts.on_void.astype(np.float64)
    pred_area = counts.pred_area.astype(np.float64)
    gt_area = counts.gt_area.astype(np.float64)
    same_class = pred_labels[:, None] == gt_labels[None, :]
    union = pred_area[:, None] + gt_area[None, :] - inter - on_void[:, None]
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = np.where((inter > 0) & same_class & ~crowd[None, :], inter / union, 0.0)
    pi, gi = np.nonzero(iou > MATCH_IOU)

    stat = PQStat.zeros(is_thing)
    np.add.at(stat.tp, gt_labels[gi], 1)
    np.add.at(stat.iou_sum, gt_labels[gi], iou[pi, gi])

    gt_matched = np.zeros(n, bool)
    gt_matched[gi] = True
    np.add.at(stat.fn, gt_labels[~gt_matched & ~crowd], 1)

    pred_matched = np.zeros(p, bool)
    pred_matched[pi] = True
    ignored_area = on_void + (inter * (same_class & crowd[None, :])).sum(1)
    with np.errstate(divide='ignore', invalid='ignore'):
        ignored = ignored_area / pred_area > IGNORE_FRACTION
    is_fp = (pred_area > 0) & ~pred_matched & ~ignored
    np.add.at(stat.fp, pred_labels[is_fp], 1)
    return stat


def _check_inputs(gt_labels: np.ndarray, pred_labels: np.ndarray, crowd: np.ndarray,
                  num_classes: int, image_id: str) -> None:
    where = f'PQ, image {image_id}: ' if image_id else 'PQ: '
    if len(crowd) != len(gt_labels):
        raise ValueError(f'{where}gt_iscrowd has {len(crowd)} entries for {len(gt_labels)} '
                         'segments')
    for name, labels in (('ground-truth', gt_labels), ('predicted', pred_labels)):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        if len(bad):
            raise ValueError(f'{where}{name} labels {sorted(set(bad.tolist()))} are outside '
                             f'0..{num_classes - 1}')


def summarize_pq(stat: PQStat) -> dict[str, float]:
    """Percentages (0-100) ``PQ, SQ, RQ`` over all categories, ``*_th`` over things and ``*_st``
    over stuff; a group in which no category occurs scores 0."""
    out: dict[str, float] = {}
    for suffix, group in (('', np.ones_like(stat.is_thing)), ('_th', stat.is_thing),
                          ('_st', ~stat.is_thing)):
        tp, fp, fn, iou_sum = (x[group] for x in (stat.tp, stat.fp, stat.fn, stat.iou_sum))
        present = tp + fp + fn > 0
        denom = np.where(present, tp + 0.5 * fp + 0.5 * fn, 1.0)
        pq = iou_sum / denom
        sq = np.where(tp > 0, iou_sum / np.maximum(tp, 1), 0.0)
        rq = tp / denom
        n = int(present.sum())
        for name, values in (('PQ', pq), ('SQ', sq), ('RQ', rq)):
            out[name + suffix] = 100.0 * float(values[present].sum()) / n if n else 0.0
    return {key: out[key] for key in PQ_KEYS}
