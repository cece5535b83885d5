"""The segmenter contract: what a first-stage panoptic segmenter gives the two-stage models.

A two-stage scene-graph model is a segmenter plus a relation head. Any registered
:class:`Segmenter` subclass can be the first stage; the relation heads learn nothing about
which one it is. A segmenter provides three things:

1. **Training losses** -- ``loss(batch)`` returns a dict of scalar tensors whose keys start
   with ``loss`` (the segmenter trained on its own, e.g. ``configs/panoptic_fpn/*``).
2. **A panoptic output** -- ``panoptic_segments(feats, batch, rescale)`` returns one
   :class:`SegmentResult` per image (non-overlapping segments in a documented order, labels,
   scores), without gradient, whatever the training mode.
3. **Feature maps for the relation heads** -- ``feature_levels`` declares, finest first, the
   maps of ``extract_feats(imgs)`` that relation heads pool RoI features from, each with its
   name, stride and channel count. The two-stage model hands exactly those maps, with their
   strides and channels, to the relation head; nothing is sliced by position and no stride is
   repeated in a config.

Box-free segmenters (Panoptic-DeepLab: centres and offsets) and top-down ones (Panoptic FPN,
SOGNet: detections, masks and an overlap graph) meet the same contract: boxes of segments are
derived from the id map (:meth:`SegmentResult.boxes`), never required from the segmenter.
``tests/test_segmenter_contract.py`` checks every registered segmenter against this module.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from torchvision.ops import masks_to_boxes as _inclusive_boxes

from ...structures import Batch, Prediction, no_relations
from ...structures.labels import NUM_PREDICATES
from ...structures.masks import id_map_to_masks, masks_to_boxes
from ..base import PSGModel


@dataclass(frozen=True)
class FeatureLevel:
    """One feature map a segmenter offers the relation heads: ``extract_feats(imgs)[name]`` is
    ``(B, channels, ceil(H / stride), ceil(W / stride))`` for an input batch ``(B, 3, H, W)``
    (``H`` and ``W`` multiples of the largest stride, as the pipelines pad them)."""

    name: str
    stride: int
    channels: int


@dataclass
class SegmentResult:
    """The panoptic segmentation of one image.

    ``id_map (h, w)`` int32: segment index of each pixel, ``-1`` void. ``labels (N,)`` int64 PSG
    classes (things ``0..79``, stuff ``80..132``). ``scores (N,)`` float32 in ``[0, 1]``: a
    thing's confidence (e.g. its detection score); a stuff segment's mean class probability
    over its pixels.

    Order (OpenPSG's, which lists segments by descending panoptic id): things first, from the
    lowest- to the highest-scoring instance, then stuff in decreasing class index, each stuff
    class at most once.
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
        **no_relations(num_predicates),
        pan_id_map=id_map)


class Segmenter(PSGModel):
    """Base class of the panoptic segmenters (the first stage of the two-stage models).

    Subclasses set :attr:`feature_levels` in ``__init__`` and implement :meth:`extract_feats`,
    :meth:`loss` and :meth:`panoptic_segments`; :meth:`predict` (panoptic-only predictions at the
    original image size, evaluated with PQ) follows from them.
    """

    #: The maps relation heads pool from, finest first (strides strictly increasing).
    feature_levels: tuple[FeatureLevel, ...] = ()

    def extract_feats(self, imgs: torch.Tensor) -> Mapping[str, torch.Tensor]:
        """``imgs (B, 3, H, W)`` (normalised, zero-padded) -> named feature maps; holds at least
        every :attr:`feature_levels` entry and may hold more (maps the segmenter itself uses)."""
        raise NotImplementedError

    def relation_features(self, feats: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        """The :attr:`feature_levels` maps of ``feats``, finest first."""
        return [feats[level.name] for level in self.feature_levels]

    def panoptic_segments(self, feats: Mapping[str, torch.Tensor], batch: Batch,
                          rescale: bool = False) -> list[SegmentResult]:
        """One :class:`SegmentResult` per image of ``batch`` from ``feats``
        (:meth:`extract_feats`), without gradient, in train or eval mode alike.

        ``rescale=False``: segments at the input size ``meta.img_shape`` (what the two-stage
        models pool from); ``rescale=True``: at the original size ``meta.ori_shape``.
        """
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[Prediction]:
        """Panoptic predictions at ``meta.ori_shape`` (no relations): labels, scores, dense masks,
        mask boxes and ``pan_id_map``."""
        segments = self.panoptic_segments(self.extract_feats(batch.imgs), batch, rescale=True)
        return [segments_to_prediction(s, m.image_id) for s, m in zip(segments, batch.metas)]


def check_feature_levels(levels: Sequence[FeatureLevel], owner: str) -> None:
    """Raise ``ValueError`` naming ``owner`` unless ``levels`` is non-empty with distinct names and
    strictly increasing strides."""
    if not levels:
        raise ValueError(f'{owner}: feature_levels is empty')
    names = [level.name for level in levels]
    strides = [level.stride for level in levels]
    if len(set(names)) != len(names) or any(a >= b for a, b in zip(strides, strides[1:])):
        raise ValueError(f'{owner}: feature_levels need distinct names and strictly increasing '
                         f'strides, got {list(zip(names, strides))}')
