"""Heuristic panoptic fusion (Kirillov et al.): thing instances pasted by score, stuff from the
semantic map; and :class:`SegmentResult`, the panoptic output every first-stage segmenter returns."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import masks_to_boxes as _inclusive_boxes

from ...structures import Prediction
from ...structures.labels import NUM_PREDICATES
from ...structures.masks import id_map_to_masks, masks_to_boxes


@dataclass
class SegmentResult:
    """The panoptic segmentation of one image.

    ``id_map (h, w)`` int32: segment index of each pixel, ``-1`` void. ``labels (N,)`` int64 PSG
    classes (things ``0..79``, stuff ``80..132``). ``scores (N,)`` float32: a thing's detection
    score; a stuff segment's mean semantic probability of its class over its pixels.

    Order (OpenPSG's, which lists segments by descending panoptic id): things first, from the
    lowest- to the highest-scoring instance, then stuff in decreasing class index.
    """

    id_map: torch.Tensor
    labels: torch.Tensor
    scores: torch.Tensor

    @property
    def num_segments(self) -> int:
        return len(self.labels)

    def masks(self) -> torch.Tensor:
        """``(N, h, w)`` bool, one mask per segment."""
        return self.id_map[None] == torch.arange(self.num_segments, device=self.id_map.device,
                                                 dtype=self.id_map.dtype)[:, None, None]

    def boxes(self) -> torch.Tensor:
        """``(N, 4)`` float32 tight xyxy boxes of the masks, ``x2``/``y2`` exclusive."""
        if self.num_segments == 0:
            return torch.zeros((0, 4), dtype=torch.float32, device=self.id_map.device)
        return _inclusive_boxes(self.masks()).float() + self.id_map.new_tensor([0, 0, 1, 1]).float()


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
    pixel is the semantic argmax there; each stuff class gives at most one segment.
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

    probs, semantic = semantic_logits.softmax(0).max(0)
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


def segments_to_prediction(segments: SegmentResult, image_id: str,
                           num_predicates: int = NUM_PREDICATES) -> Prediction:
    """A panoptic-only :class:`~openpsg.structures.Prediction`: the segments with dense masks and
    mask boxes at the id map's size, ``pan_id_map`` = the id map, and no relations."""
    id_map = segments.id_map.cpu().numpy().astype(np.int32)
    masks = id_map_to_masks(id_map, segments.num_segments)
    return Prediction(
        image_id=image_id,
        labels=segments.labels.cpu().numpy().astype(np.int64),
        scores=segments.scores.cpu().numpy().astype(np.float32),
        boxes=masks_to_boxes(masks),
        masks=masks,
        pairs=np.zeros((0, 2), dtype=np.int64),
        predicate_scores=np.zeros((0, num_predicates), dtype=np.float32),
        triplet_scores=np.zeros((0,), dtype=np.float32),
        pan_id_map=id_map)
