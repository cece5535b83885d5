"""Per-image geometry and triplet matching shared by the ``openpsg`` and ``fair`` protocols.

Shapes used throughout: ``N`` predicted segments, ``G`` ground-truth segments, ``R`` relation
rows, ``P`` predicates, ``M`` ground-truth triplets ``(subject, object, predicate)``, ``J`` ranked
items (relation rows or ``(row, predicate)`` cells) taken into the top-K.

Segment IoU is computed once per image as an ``(N, G)`` matrix from pixel counts (a histogram of
GT ids under each predicted mask, or one joint histogram for an id map), never per triplet. A
union of zero pixels (or a zero-area box union) gives IoU 0; OpenPSG's evaluator divides by zero
there, and its NaN never passes a threshold either.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pycocotools.mask as mask_utils

from ..errors import InputError
from ..structures.masks import rle_runs


UnionIoU = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(predicted pairs (A, 2), GT pairs (B, 2)) -> (A, B)`` IoU of the subject-object unions."""


class EvaluationError(InputError, ValueError):
    """Bad input to the scene-graph evaluator; the message names the image and the field."""


def input_error(image_id: str, field: str, message: str) -> EvaluationError:
    """An :class:`EvaluationError` worded ``image_id=ID: FIELD: MESSAGE``."""
    return EvaluationError(f'image_id={image_id}: {field}: {message}')


@dataclass
class Relations:
    """One image's relation rows as a protocol sees them (after the mode's substitutions).

    ``labels (N,)`` and ``scores (N,)`` of the segments the rows point to; ``pairs (R, 2)``
    (subject, object) segment indices; ``predicate_scores (R, P)``; ``triplet_scores (R,)`` the
    ranking score or ``None``; ``no_relation_scores (R,)`` or ``None``.
    """

    labels: np.ndarray
    scores: np.ndarray
    pairs: np.ndarray
    predicate_scores: np.ndarray
    triplet_scores: np.ndarray | None = None
    no_relation_scores: np.ndarray | None = None

    def take(self, rows: np.ndarray) -> 'Relations':
        """The rows ``rows`` (indices), in that order."""
        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[rows]

        return Relations(self.labels, self.scores, self.pairs[rows], self.predicate_scores[rows],
                         pick(self.triplet_scores), pick(self.no_relation_scores))


def top_k_descending(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest ``scores`` (flattened row-major), best first; ties keep index
    order, so equal-score rows stay in emitted order and equal cells in (row, predicate) order.

    Linear-time selection, then a stable sort of the selected: the same as the first ``k`` of a
    stable descending sort of everything.
    """
    negated = -np.asarray(scores).ravel()
    if k < negated.size:
        kth = np.partition(negated, k - 1)[k - 1]
        selected = np.flatnonzero(negated <= kth)
    else:
        selected = np.arange(negated.size)
    return selected[np.argsort(negated[selected], kind='stable')][:k]


def box_iou(a: np.ndarray, b: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """IoU of xyxy boxes ``a (N, 4)`` and ``b (G, 4)`` -> ``(N, G)`` float32, computed in float32.

    Areas are ``(x2 - x1) * (y2 - y1)`` (no +1). With ``eps > 0`` the union is clamped to ``eps``
    (mmdet's ``bbox_overlaps``, used by OpenPSG); with ``eps = 0`` it is the plain ratio
    (torchvision's ``box_iou``, used by fair-psgg) and a zero union gives 0.
    """
    a = np.asarray(a, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(bottom_right - top_left, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    if eps > 0:
        union = np.maximum(union, np.float32(eps))
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(union > 0, inter / union, np.float32(0)).astype(np.float32)


def _union_boxes(boxes: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """``(A, 4)`` smallest boxes holding both boxes of each ``(A, 2)`` pair."""
    first, second = boxes[pairs[:, 0]], boxes[pairs[:, 1]]
    return np.concatenate([np.minimum(first[:, :2], second[:, :2]),
                           np.maximum(first[:, 2:], second[:, 2:])], axis=1)


@dataclass
class BoxGeometry:
    """Predicted boxes ``(N, 4)`` against ground-truth boxes ``(G, 4)``, xyxy pixels."""

    pred_boxes: np.ndarray
    gt_boxes: np.ndarray

    def iou(self, eps: float = 0.0) -> np.ndarray:
        """``(N, G)`` box IoU, see :func:`box_iou`."""
        return box_iou(self.pred_boxes, self.gt_boxes, eps)

    def pair_union_iou(self, pred_pairs: np.ndarray, gt_pairs: np.ndarray,
                       eps: float = 1e-6) -> np.ndarray:
        """``(A, B)`` IoU between the union box of each predicted pair and of each GT pair."""
        return box_iou(_union_boxes(np.asarray(self.pred_boxes, np.float32), pred_pairs),
                       _union_boxes(np.asarray(self.gt_boxes, np.float32), gt_pairs), eps)


def _ratio(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    inter = inter.astype(np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(union > 0, inter / union, 0.0)


@dataclass
class MaskGeometry:
    """Pixel counts of ``N`` predicted segments against the ``G`` segments of a GT id map.

    ``inter (N, G)``, ``pred_area (N,)``, ``gt_area (G,)`` and ``on_void (N,)`` (pixels of each
    predicted segment on GT void) are int64 pixel counts; they serve the segment IoUs of both
    protocols and panoptic quality. When the predicted masks overlap, ``masks (N, H*W)`` keeps
    them and ``gt_flat (H*W,)`` the GT id map shifted by one (0 = void) in the same pixel order
    (union areas need the pixels), and ``lost (N, G + 1)`` counts, per GT segment (column 0 =
    void), the pixels each mask shares with a lower-index mask.
    """

    inter: np.ndarray
    pred_area: np.ndarray
    gt_area: np.ndarray
    on_void: np.ndarray
    masks: np.ndarray | None = None
    gt_flat: np.ndarray | None = None
    lost: np.ndarray | None = None

    @classmethod
    def _from_keys(cls, keys: np.ndarray, num_pred: int, num_gt: int) -> 'MaskGeometry':
        """Counts from one joint histogram: ``keys`` = (predicted index + 1) * (G + 1) + GT index
        + 1 per pixel (index -1 = none)."""
        joint = np.bincount(keys.ravel(), minlength=(num_pred + 1) * (num_gt + 1))
        joint = joint.reshape(num_pred + 1, num_gt + 1)
        return cls(joint[1:, 1:], joint[1:].sum(1), joint[:, 1:].sum(0), joint[1:, 0])

    @classmethod
    def from_id_map(cls, pred_id_map: np.ndarray, num_pred: int, gt_id_map: np.ndarray,
                    num_gt: int) -> 'MaskGeometry':
        """Non-overlapping predicted segments given as an ``(H, W)`` id map (``-1`` void; values
        below ``num_pred``)."""
        keys = pred_id_map.astype(np.int64) * (num_gt + 1)
        keys += gt_id_map
        keys += num_gt + 2
        return cls._from_keys(keys, num_pred, num_gt)

    @classmethod
    def from_masks(cls, masks: np.ndarray | Sequence[dict], gt_id_map: np.ndarray,
                   num_gt: int) -> 'MaskGeometry':
        """Predicted masks, which may overlap: dense ``(N, H, W)`` bool or ``N`` RLE dicts.

        RLE masks that do not overlap (told from their runs, without drawing them) are counted
        with one joint histogram; other masks one at a time, an RLE decoded on its own and read
        in its column-major pixel order (the GT id map is flattened the same way).
        """
        if not isinstance(masks, np.ndarray):
            starts, lengths, owner = rle_runs(masks)
            if _disjoint(starts, lengths):
                return cls._from_runs(starts, lengths, owner, len(masks), gt_id_map, num_gt)
        return cls._one_mask_at_a_time(masks, gt_id_map, num_gt)

    @classmethod
    def _from_runs(cls, starts: np.ndarray, lengths: np.ndarray, owner: np.ndarray,
                   num_pred: int, gt_id_map: np.ndarray, num_gt: int) -> 'MaskGeometry':
        """Counts of disjoint runs (see :func:`~openpsg.structures.masks.rle_runs`): the runs
        and the gaps between them, repeated into one column-major id map."""
        order = np.argsort(starts, kind='stable')
        starts, lengths, owner = starts[order], lengths[order], owner[order]
        height, width = gt_id_map.shape
        ends = starts + lengths
        values = np.ones(2 * len(starts) + 1, dtype=np.int64)  # key of "no segment" - GT index
        values[1::2] += (owner + 1) * (num_gt + 1)
        repeats = np.empty_like(values)
        repeats[0:-1:2] = starts - np.concatenate([[0], ends[:-1]])
        repeats[1::2] = lengths
        repeats[-1] = height * width - (ends[-1] if len(ends) else 0)
        keys = np.repeat(values, repeats).reshape(width, height)  # column-major pixel order
        keys += gt_id_map.T
        return cls._from_keys(keys, num_pred, num_gt)

    @classmethod
    def _one_mask_at_a_time(cls, masks: np.ndarray | Sequence[dict], gt_id_map: np.ndarray,
                            num_gt: int) -> 'MaskGeometry':
        dense = isinstance(masks, np.ndarray)
        order = 'C' if dense else 'F'
        gt_flat = gt_id_map.ravel(order=order).astype(np.int64) + 1
        flat = (np.asarray(masks, dtype=bool).reshape(len(masks), gt_flat.size) if dense
                else [_decode_column_major(rle) for rle in masks])
        counts = np.zeros((len(flat), num_gt + 1), dtype=np.int64)
        lost = np.zeros_like(counts)
        covered = np.zeros(gt_flat.size, dtype=bool)
        for i, mask in enumerate(flat):
            counts[i] = np.bincount(gt_flat[mask], minlength=num_gt + 1)
            shared = mask & covered
            if shared.any():
                lost[i] = np.bincount(gt_flat[shared], minlength=num_gt + 1)
            covered |= mask
        gt_area = np.bincount(gt_flat, minlength=num_gt + 1)[1:]
        if not lost.any():
            return cls(counts[:, 1:], counts.sum(1), gt_area, counts[:, 0])
        return cls(counts[:, 1:], counts.sum(1), gt_area, counts[:, 0], np.stack(flat), gt_flat,
                   lost)

    def resolved(self) -> 'MaskGeometry':
        """The counts of the id map the masks make when the lowest index wins each pixel (the
        masks themselves when they do not overlap)."""
        if self.lost is None:
            return self
        return MaskGeometry(self.inter - self.lost[:, 1:], self.pred_area - self.lost.sum(1),
                            self.gt_area, self.on_void - self.lost[:, 0])

    def iou(self) -> np.ndarray:
        """``(N, G)`` float64 mask IoU."""
        union = self.pred_area[:, None] + self.gt_area[None, :] - self.inter
        return _ratio(self.inter, union)

    def pair_union_iou(self, pred_pairs: np.ndarray, gt_pairs: np.ndarray) -> np.ndarray:
        """``(A, B)`` IoU between the union mask of each predicted pair ``(A, 2)`` and of each GT
        pair ``(B, 2)`` (subject mask OR object mask)."""
        num = len(self.inter)  # one key per (subject, object), in the order of the pairs
        keys, inverse = np.unique(pred_pairs[:, 0] * num + pred_pairs[:, 1], return_inverse=True)
        pairs = np.stack(np.divmod(keys, num), axis=1)
        subj, obj = pairs[:, 0], pairs[:, 1]
        distinct = subj != obj
        if self.masks is None:
            hist = self.inter[subj] + np.where(distinct[:, None], self.inter[obj], 0)
            area = self.pred_area[subj] + np.where(distinct, self.pred_area[obj], 0)
        else:
            union_masks = self.masks[subj] | self.masks[obj]
            hist = np.stack([np.bincount(self.gt_flat[m], minlength=len(self.gt_area) + 1)[1:]
                             for m in union_masks])
            area = union_masks.sum(1)
        gs, go = gt_pairs[:, 0], gt_pairs[:, 1]
        gt_distinct = gs != go
        inter = hist[:, gs] + np.where(gt_distinct[None, :], hist[:, go], 0)
        gt_area = self.gt_area[gs] + np.where(gt_distinct, self.gt_area[go], 0)
        return _ratio(inter, area[:, None] + gt_area[None, :] - inter)[inverse.ravel()]


def _disjoint(starts: np.ndarray, lengths: np.ndarray) -> bool:
    """Whether non-empty runs ``[start, start + length)`` share no pixel."""
    order = np.argsort(starts, kind='stable')
    return bool((starts[order][1:] >= (starts + lengths)[order][:-1]).all())


def _decode_column_major(rle: dict) -> np.ndarray:
    """One pycocotools RLE -> its ``(H * W,)`` bool pixels in column-major order (no copy)."""
    counts = rle['counts']
    pixels = mask_utils.decode({'size': rle['size'],
                                'counts': counts.encode('ascii') if isinstance(counts, str)
                                else counts})
    return pixels.ravel(order='F').view(bool)


def triplet_hits(subj: np.ndarray, obj: np.ndarray, predicate: np.ndarray, seg_ok: np.ndarray,
                 gt_rels: np.ndarray) -> np.ndarray:
    """``(J, M)`` bool: item ``j`` = ``(subj[j], obj[j], predicate[j])`` hits GT triplet ``t``.

    ``seg_ok (N, G)`` bool says which predicted segment may stand for which GT segment; a hit needs
    it for the subject and the object, and the predicate equal to the triplet's.
    """
    return (seg_ok[subj][:, gt_rels[:, 0]] & seg_ok[obj][:, gt_rels[:, 1]]
            & (predicate[:, None] == gt_rels[None, :, 2]))


def hits_at_ks(hit: np.ndarray, ks: Sequence[int], cumulative: bool) -> np.ndarray:
    """Per GT triplet, its hits among the first ``K`` items, for each ``K`` -> ``(len(ks), M)``.

    ``hit (J, M)`` holds the items in rank order. ``cumulative=False`` gives 0/1 (the triplet is in
    the union of the matches, OpenPSG); ``cumulative=True`` gives the number of items hitting it
    (fair-psgg counts every hit, so duplicates of a GT triplet or of a row count again).
    """
    num_items, num_gt = hit.shape
    ks = np.asarray(ks, dtype=np.int64)
    if num_items == 0:
        return np.zeros((len(ks), num_gt), dtype=np.int64)
    if cumulative:
        running = np.cumsum(hit, axis=0, dtype=np.int64)
        return running[np.minimum(ks, num_items) - 1]
    first = np.where(hit.any(0), hit.argmax(0), np.iinfo(np.int64).max)
    return (first[None, :] < ks[:, None]).astype(np.int64)
