"""Panoptic fusion: thing instances pasted by score, stuff from a semantic map, assembled into a
:class:`~.base.SegmentResult`.

:func:`heuristic_fusion` is Panoptic FPN's (Kirillov et al.), :func:`combine_things_and_stuff`
PanopticFCN's (panopticapi's ``combine_semantic_and_instance_predictions``); both are built from
:func:`paste_instances`, :func:`free_stuff` and :func:`compose_segments`.
"""
from __future__ import annotations

import torch

from .base import SegmentResult


def paste_instances(binary: torch.Tensor, overlap_thr: float) -> tuple[torch.Tensor, list[int]]:
    """Lay the binary masks ``binary (N, H, W)`` one after the other, in the given order.

    A mask is skipped when it is empty or when more than ``overlap_thr`` of it is already covered
    by the masks laid before it; otherwise it takes its uncovered pixels.

    Returns ``owner (H, W)`` int64: for each pixel the position in ``laid`` of the mask that took
    it, ``-1`` where none did; and ``laid``: the indices into ``binary`` of the laid masks, in the
    order they were laid.
    """
    height, width = binary.shape[-2:]
    covered = torch.zeros((height, width), dtype=torch.bool, device=binary.device)
    owner = torch.full((height, width), -1, dtype=torch.long, device=binary.device)
    laid: list[int] = []
    for k, area in enumerate(binary.flatten(1).sum(1).tolist()):
        if area == 0 or int((binary[k] & covered).sum()) / area > overlap_thr:
            continue
        part = binary[k] & ~covered
        owner[part] = len(laid)
        covered |= part
        laid.append(k)
    return owner, laid


def free_stuff(semantic: torch.Tensor, free: torch.Tensor, num_stuff: int,
               stuff_area_limit: float) -> torch.Tensor:
    """The stuff segments a semantic map leaves on the free pixels.

    ``semantic (H, W)`` int64 holds a stuff index ``0..num_stuff - 1`` per pixel (any other value
    is not stuff, e.g. a "thing" class); ``free (H, W)`` bool marks the pixels no instance took.
    Returns ``(H, W)`` int64: the stuff index on the free pixels of every stuff class that has at
    least ``stuff_area_limit`` (and at least one) free pixels, ``-1`` elsewhere.
    """
    is_stuff = free & (semantic >= 0) & (semantic < num_stuff)
    area = torch.bincount(semantic[is_stuff], minlength=num_stuff)
    large = (area > 0) & (area >= stuff_area_limit)
    keep = is_stuff & large[semantic.clamp(0, num_stuff - 1)]
    return torch.where(keep, semantic, torch.full_like(semantic, -1))


def compose_segments(owner: torch.Tensor, thing_labels: torch.Tensor, thing_scores: torch.Tensor,
                     stuff_map: torch.Tensor, stuff_scores: torch.Tensor,
                     num_things: int) -> SegmentResult:
    """A :class:`SegmentResult` in the contract's order from the pixels of things and stuff.

    Args:
        owner: ``(H, W)`` int64, the instance ``k`` of each thing pixel, ``-1`` elsewhere; instances
            are numbered from the highest score down (``k = 0`` is the best).
        thing_labels, thing_scores: ``(K,)`` class (``0..num_things - 1``) and score of instance k.
        stuff_map: ``(H, W)`` int64, the stuff index ``s`` (PSG class ``num_things + s``) of each
            stuff pixel, ``-1`` elsewhere; disjoint from the thing pixels.
        stuff_scores: ``(S,)`` the score of each stuff index (read for those present only).
        num_things: number of thing classes (80 for PSG).

    Segments: the instances from the lowest to the highest score, then every stuff index present
    in ``stuff_map``, in decreasing class.
    """
    device = owner.device
    num_stuff = len(stuff_scores)
    num_laid = len(thing_labels)
    on_stuff = stuff_map >= 0
    present = torch.bincount(stuff_map[on_stuff], minlength=num_stuff) > 0
    stuff = torch.nonzero(present)[:, 0].flip(0)
    stuff_index = torch.full((num_stuff,), -1, dtype=torch.long, device=device)
    stuff_index[stuff] = num_laid + torch.arange(len(stuff), device=device)
    on_thing = owner >= 0
    id_map = torch.full(owner.shape, -1, dtype=torch.int32, device=device)
    id_map[on_thing] = (num_laid - 1 - owner[on_thing]).int()
    id_map[on_stuff] = stuff_index[stuff_map[on_stuff]].int()
    return SegmentResult(
        id_map=id_map,
        labels=torch.cat([thing_labels.flip(0).long(), stuff + num_things]),
        scores=torch.cat([thing_scores.flip(0).float(), stuff_scores[stuff].float()]))


def heuristic_fusion(masks: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                     semantic_logits: torch.Tensor, num_things: int, score_thr: float = 0.6,
                     mask_thr: float = 0.5, overlap_thr: float = 0.5,
                     stuff_area_limit: float = 4096) -> SegmentResult:
    """Fuse thing instances and a semantic map into one panoptic segmentation of size ``(H, W)``.

    Args:
        masks: ``(N, H, W)`` float mask probabilities (or bool) of N thing instances.
        scores: ``(N,)`` instance scores; instances scoring ``<= score_thr`` are dropped.
        labels: ``(N,)`` int64 thing classes ``0..num_things - 1``.
        semantic_logits: ``(S + 1, H, W)``: S stuff classes (PSG class ``num_things + s``), then the
            "thing" channel.
        num_things: number of thing classes (80 for PSG).
        score_thr, mask_thr: instance score threshold and mask binarisation threshold (``>=``).
        overlap_thr: an instance is dropped when more than this fraction of its mask is already
            covered by higher-scoring instances; otherwise it takes its uncovered pixels.
        stuff_area_limit: a stuff class covering fewer pixels than this (after the things) is void.

    Pixels the semantic argmax calls "thing" but no instance covers are void. The stuff class of a
    pixel is the semantic argmax there; each stuff class gives at most one segment, scored by the
    mean softmax probability of its pixels (computed in float32 whatever the logits' dtype: a
    bfloat16 or float16 sum over thousands of pixels stops growing long before it is complete).
    """
    num_stuff = semantic_logits.shape[0] - 1
    candidates = torch.nonzero(scores > score_thr)[:, 0]
    candidates = candidates[torch.argsort(scores[candidates], descending=True, stable=True)]
    owner, laid = paste_instances(masks[candidates] >= mask_thr, overlap_thr)
    things = candidates[torch.tensor(laid, dtype=torch.long, device=candidates.device)]

    probs, semantic = semantic_logits.float().softmax(0).max(0)
    stuff_map = free_stuff(semantic, owner < 0, num_stuff, stuff_area_limit)
    on_stuff = stuff_map >= 0
    area = torch.bincount(stuff_map[on_stuff], minlength=num_stuff)
    prob_sum = torch.zeros(num_stuff, dtype=probs.dtype, device=probs.device).index_add_(
        0, stuff_map[on_stuff], probs[on_stuff])
    return compose_segments(owner, labels[things], scores[things], stuff_map,
                            prob_sum / area.clamp(min=1), num_things)


def combine_things_and_stuff(masks: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                             semantic: torch.Tensor, stuff_scores: torch.Tensor, num_things: int,
                             score_thr: float = 0.2, overlap_thr: float = 0.5,
                             stuff_area_limit: float = 4096) -> SegmentResult:
    """PanopticFCN's panoptic combination (panopticapi style) at the size ``(H, W)`` of the maps.

    Args:
        masks: ``(N, H, W)`` bool binary masks of N thing instances.
        scores: ``(N,)`` instance scores; instances scoring ``>= score_thr`` are laid in
            decreasing score order (see :func:`paste_instances` for ``overlap_thr``).
        labels: ``(N,)`` int64 thing classes ``0..num_things - 1``.
        semantic: ``(H, W)`` int64 stuff index ``s`` (PSG class ``num_things + s``) of each pixel,
            any value outside ``0..S - 1`` where the semantic map says "thing" (those pixels stay
            void unless an instance takes them).
        stuff_scores: ``(S,)`` the score of each stuff class.
        num_things: number of thing classes (80 for PSG).
        stuff_area_limit: a stuff class with fewer free pixels than this is void.
    """
    candidates = torch.nonzero(scores >= score_thr)[:, 0]
    candidates = candidates[torch.argsort(scores[candidates], descending=True, stable=True)]
    owner, laid = paste_instances(masks[candidates], overlap_thr)
    things = candidates[torch.tensor(laid, dtype=torch.long, device=candidates.device)]
    stuff_map = free_stuff(semantic, owner < 0, len(stuff_scores), stuff_area_limit)
    return compose_segments(owner, labels[things], scores[things], stuff_map, stuff_scores,
                            num_things)
