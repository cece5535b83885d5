"""Heuristic panoptic fusion (Kirillov et al.): thing instances pasted by score, stuff from the
semantic map."""
from __future__ import annotations

import torch

from .base import SegmentResult


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
    height, width = semantic_logits.shape[-2:]
    num_stuff = semantic_logits.shape[0] - 1
    device = semantic_logits.device
    candidates = torch.nonzero(scores > score_thr)[:, 0]
    candidates = candidates[torch.argsort(scores[candidates], descending=True, stable=True)]
    binary = masks[candidates] >= mask_thr
    covered = torch.zeros((height, width), dtype=torch.bool, device=device)
    instance_map = torch.full((height, width), -1, dtype=torch.long, device=device)
    laid: list[int] = []
    for k, area in enumerate(binary.flatten(1).sum(1).tolist()):
        if area == 0 or int((binary[k] & covered).sum()) / area > overlap_thr:
            continue
        part = binary[k] & ~covered
        instance_map[part] = len(laid)
        covered |= part
        laid.append(int(candidates[k]))
    things = torch.tensor(laid, dtype=torch.long, device=device).flip(0)  # lowest score first

    probs, semantic = semantic_logits.float().softmax(0).max(0)
    stuff_pixels = ~covered & (semantic < num_stuff)
    stuff_class = semantic[stuff_pixels]
    area = torch.bincount(stuff_class, minlength=num_stuff)
    prob_sum = torch.zeros(num_stuff, dtype=probs.dtype, device=device).index_add_(
        0, stuff_class, probs[stuff_pixels])
    stuff = torch.nonzero((area > 0) & (area >= stuff_area_limit))[:, 0].flip(0)
    num_laid = len(laid)
    stuff_index = torch.full((num_stuff,), -1, dtype=torch.long, device=device)
    stuff_index[stuff] = num_laid + torch.arange(len(stuff), device=device)

    id_map = torch.full((height, width), -1, dtype=torch.int32, device=device)
    id_map[covered] = (num_laid - 1 - instance_map[covered]).int()
    id_map[stuff_pixels] = stuff_index[stuff_class].int()
    return SegmentResult(
        id_map=id_map,
        labels=torch.cat([labels[things].long(), stuff + num_things]),
        scores=torch.cat([scores[things].float(), (prob_sum[stuff] / area[stuff]).float()]))
