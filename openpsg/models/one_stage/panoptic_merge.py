"""From per-query mask logits to one panoptic segmentation: each pixel goes to the candidate with
the largest logit, candidates of one stuff class form one segment, thing candidates of one class
whose binary masks overlap may merge, and candidates left without a pixel vanish. Written once for
DETR4Seg, PSGTR and PSGFormer (OpenPSG's post-processing of all three).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from ...structures import NUM_THING_CLASSES, VOID, mask_iou


def greedy_groups(similar: np.ndarray) -> np.ndarray:
    """Greedy grouping of ``n`` ordered items by ``similar (n, n)`` bool: the first item not yet in
    a group opens one and takes every later ungrouped item similar to it. Returns the opener of
    each item's group ``(n,)`` (an item that opened its group is its own opener)."""
    n = len(similar)
    opener = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        if opener[i] >= 0:
            continue
        joins = similar[i] & (opener < 0)
        joins[:i + 1] = False
        opener[i] = i
        opener[joins] = i
    return opener


def merge_candidates(logits: torch.Tensor, binary: np.ndarray | None, labels: np.ndarray,
                     scores: np.ndarray, thing_iou_thr: float | None = 0.5,
                     num_thing_classes: int = NUM_THING_CLASSES,
                     claim_thr: float | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Panoptic merge of ``K >= 1`` candidates (OpenPSG's, in its order of operations).

    ``logits (K, H, W)`` at original size, ``labels (K,)``, ``scores (K,)``. Candidates of one stuff
    class (label >= ``num_thing_classes``) merge into the first of them; thing candidates of one
    class merge greedily (:func:`greedy_groups`, in candidate order) when the IoU of their binary
    masks ``binary (K, H, W)`` with the group's first candidate exceeds ``thing_iou_thr`` (``None``:
    things never merge, ``binary`` unused). Each pixel goes to the candidate with the largest logit
    (the first on ties: the argmax of OpenPSG's per-pixel softmax), i.e. to that candidate's group;
    with ``claim_thr`` only where that candidate's probability exceeds it (other pixels are
    void), with ``None`` every pixel (OpenPSG).

    Returns ``segment_of (K,)`` (segment of each candidate, -1 if its group got no pixel),
    ``id_map (H, W)`` int32 and the segments' ``labels (S,)`` and ``scores (S,)`` (best candidate
    score). Segments are numbered in the order of their groups' first candidates.
    """
    num = len(labels)
    rep = np.arange(num)
    first_stuff: dict[int, int] = {}
    things: dict[int, list[int]] = defaultdict(list)
    for k, label in enumerate(labels.tolist()):
        if label >= num_thing_classes:
            rep[k] = first_stuff.setdefault(label, k)
        else:
            things[label].append(k)
    if thing_iou_thr is not None:
        for members in things.values():
            if len(members) < 2:
                continue
            members = np.asarray(members)
            rep[members] = members[greedy_groups(mask_iou(binary[members],
                                                          binary[members]) > thing_iou_thr)]
    best, winner = logits.max(0)
    owner = rep[winner.cpu().numpy()]
    if claim_thr is not None:
        owner[(best.sigmoid() <= claim_thr).cpu().numpy()] = num
    present = np.unique(owner[owner < num])
    renumber = np.full(num + 1, VOID, dtype=np.int64)
    renumber[present] = np.arange(len(present))
    segment_of = renumber[rep]
    seg_scores = np.zeros(len(present), dtype=np.float32)
    alive = segment_of >= 0
    np.maximum.at(seg_scores, segment_of[alive], scores[alive].astype(np.float32))
    id_map = renumber[owner].astype(np.int32)
    return segment_of, id_map, labels[present].astype(np.int64), seg_scores
