"""Shared parts of the two-stage relation heads (IMP, MOTIFS, VCTree, GPSNet).

A head receives the feature pyramid of a batch and, per image, an :class:`ObjectSet` (boxes in
input pixels, labels when they are known, optional masks). Training pairs come from the
:class:`RelationSampler`; at test time every ordered pair is scored. Inside the heads object
classes are ``0..C-1`` with ``C`` (133 for PSG) = background, predicates ``0..P-1`` with ``P``
(56 for PSG) = "no relation", following :mod:`openpsg.structures.labels`.

This module holds everything the heads share: multi-level RoIAlign, the object and union-box
feature extractors (with the two-rectangle spatial branch), the 9-d box position encoding, the
relation sampler and the object target assigner, the frequency bias, class-name embeddings, the
MOTIFS/VCTree pair classifier, the post-processor and the :class:`RelationHead` base class.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_iou, roi_align

from ...structures import CLASSES, NUM_CLASSES, NUM_PREDICATES, Sample
from ..baselines import ordered_pairs
from ..glove import class_name_vectors

MODES = ('predcls', 'sgcls', 'sgdet')
NUM_BOX_FEATS = 9
BACKGROUND_NAME = '__background__'


# ---------------------------------------------------------------------------------------------
# inputs and outputs


@dataclass
class ObjectSet:
    """The objects of one image, as the relation head sees them.

    ``boxes (N, 4)`` float xyxy in input pixels; ``img_shape`` the ``(h, w)`` of the resized image
    (before padding). ``labels (N,)`` int64 are the known classes (GT in PredCls, the segmenter's
    in SGDet) or ``None`` when the head has to classify the objects (SGCls). ``masks (N, H, W)``
    bool in input pixels (only read with mask features). ``targets (N,)`` int64 are the training
    targets of the object classifier, background = ``num_classes``.
    """

    boxes: torch.Tensor
    img_shape: tuple[int, int]
    labels: torch.Tensor | None = None
    masks: torch.Tensor | None = None
    targets: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass
class RelationTargets:
    """Training pairs of one image: ``pairs (R, 2)`` int64 (subject, object) indices into its
    objects, ``labels (R,)`` int64 predicates (``num_predicates`` = no relation) and ``related
    (N, N)`` bool, symmetric, True where two objects form a positive pair (VCTree's target)."""

    pairs: torch.Tensor
    labels: torch.Tensor
    related: torch.Tensor


@dataclass
class RelationInputs:
    """A batch ready for a head's context model; objects and pairs are concatenated over images.

    ``obj_feats (K, roi_dim)`` and ``union_feats (R, roi_dim)`` are the RoI features of the K
    objects and R pairs; ``boxes``/``pairs``/``img_shapes`` are per image (pairs index the image's
    objects); ``label_dists (K, C + 1)`` are the label distributions fed to the label embeddings
    (one-hot of the known labels, uniform over the C classes when unknown); ``known_labels (K,)``
    or ``None`` (SGCls); ``teacher_labels (K,)`` the labels of teacher forcing in training (the
    targets in SGCls, the segmenter's labels in SGDet), ``None`` otherwise.
    """

    obj_feats: torch.Tensor
    union_feats: torch.Tensor
    boxes: list[torch.Tensor]
    img_shapes: list[tuple[int, int]]
    pairs: list[torch.Tensor]
    label_dists: torch.Tensor
    known_labels: torch.Tensor | None
    teacher_labels: torch.Tensor | None

    @property
    def num_objects(self) -> list[int]:
        return [len(b) for b in self.boxes]

    @property
    def offsets(self) -> list[int]:
        """Index of each image's first object in the concatenated objects."""
        return np.cumsum([0, *self.num_objects[:-1]]).tolist()

    @property
    def global_pairs(self) -> torch.Tensor:
        """``(R, 2)`` pairs indexing the concatenated objects."""
        return torch.cat([p + o for p, o in zip(self.pairs, self.offsets)])

    def box_features(self) -> torch.Tensor:
        """``(K, 9)`` position encoding of every object (:func:`box_position_features`)."""
        return torch.cat([box_position_features(b, s) for b, s in zip(self.boxes, self.img_shapes)])

    def split_objects(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(x.split(self.num_objects))


@dataclass
class RelationOutputs:
    """A head's raw output for a batch: ``obj_logits (K, C + 1)``, ``obj_labels (K,)`` (the labels
    the head used for its edge context: known, teacher-forced or predicted), ``rel_logits
    (R, P + 1)`` and, for VCTree, ``pair_logits`` (one ``(N, N)`` tree-score logit map per
    image)."""

    obj_logits: torch.Tensor
    obj_labels: torch.Tensor
    rel_logits: torch.Tensor
    pair_logits: list[torch.Tensor] | None = None


@dataclass
class RelationResult:
    """Post-processed relations of one image (tensors). ``labels (N,)``, ``scores (N,)``;
    ``pairs (R, 2)`` ranked by ``triplet_scores (R,)`` (non-increasing); ``predicate_scores (R, P)``
    and ``no_relation_scores (R,)`` are the predicate probabilities."""

    labels: torch.Tensor
    scores: torch.Tensor
    pairs: torch.Tensor
    predicate_scores: torch.Tensor
    no_relation_scores: torch.Tensor
    triplet_scores: torch.Tensor


# ---------------------------------------------------------------------------------------------
# boxes


def union_boxes(subj: torch.Tensor, obj: torch.Tensor) -> torch.Tensor:
    """Smallest boxes ``(R, 4)`` holding both ``subj (R, 4)`` and ``obj (R, 4)`` (xyxy)."""
    return torch.cat([torch.minimum(subj[:, :2], obj[:, :2]),
                      torch.maximum(subj[:, 2:], obj[:, 2:])], 1)


def box_position_features(boxes: torch.Tensor, img_shape: tuple[int, int]) -> torch.Tensor:
    """The 9-d position encoding ``(N, 9)`` of boxes ``(N, 4)`` xyxy in an image of ``(h, w)``:
    ``w, h, cx, cy, x1, y1, x2, y2`` divided by the image width/height, and ``w * h`` divided by
    the image area (box width = ``x2 - x1``)."""
    img_h, img_w = float(img_shape[0]), float(img_shape[1])
    x1, y1, x2, y2 = boxes.unbind(1)
    w, h = x2 - x1, y2 - y1
    return torch.stack([w / img_w, h / img_h, (x1 + 0.5 * w) / img_w, (y1 + 0.5 * h) / img_h,
                        x1 / img_w, y1 / img_h, x2 / img_w, y2 / img_h, w * h / (img_w * img_h)], 1)


def inference_pairs(n: int, device: torch.device | None = None) -> torch.Tensor:
    """The pairs scored at test time: every ordered pair, or the placeholder ``(0, 0)`` for a
    single object (as OpenPSG, so that such an image still counts in the recall averages)."""
    if n == 1:
        return torch.zeros((1, 2), dtype=torch.long, device=device)
    return ordered_pairs(n, device)


# ---------------------------------------------------------------------------------------------
# RoI features


def roi_levels(boxes: torch.Tensor, num_levels: int, finest_scale: float = 56.0) -> torch.Tensor:
    """FPN level of each box ``(K, 4)``: ``clamp(floor(log2(sqrt(w h) / finest_scale)), 0,
    num_levels - 1)`` (mmdet's rule: boxes under 112 px go to the stride-4 level)."""
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0)
    scale = torch.sqrt(wh[:, 0] * wh[:, 1])
    levels = torch.floor(torch.log2(scale / finest_scale + 1e-6))
    return levels.clamp(0, num_levels - 1).long()


def multilevel_roi_align(feats: Sequence[torch.Tensor], rois: torch.Tensor, output_size: int,
                         strides: Sequence[int], finest_scale: float = 56.0,
                         sampling_ratio: int = 2) -> torch.Tensor:
    """RoIAlign ``(K, C, S, S)`` of ``rois (K, 5)`` (batch index, xyxy in input pixels), each read
    from the FPN level :func:`roi_levels` picks; ``feats[i]`` has stride ``strides[i]``. Sampling
    runs in float32 (box coordinates need it); the output has the features' dtype."""
    out = feats[0].new_zeros((len(rois), feats[0].shape[1], output_size, output_size))
    if len(rois) == 0:
        return out
    levels = roi_levels(rois[:, 1:], len(strides), finest_scale)
    for level, (feat, stride) in enumerate(zip(feats, strides)):
        idx = torch.nonzero(levels == level).squeeze(1)
        if len(idx):
            out[idx] = roi_align(feat.float(), rois[idx].float(), output_size,
                                 spatial_scale=1.0 / stride, sampling_ratio=sampling_ratio,
                                 aligned=True).to(out.dtype)
    return out


def pooled_masks(masks: torch.Tensor, mask_index: torch.Tensor, boxes: torch.Tensor,
                 output_size: int) -> torch.Tensor:
    """``(K, 1, S, S)`` RoIAlign of mask ``mask_index[k]`` of ``masks (M, H, W)`` over ``boxes[k]``
    (input pixels): the fraction of each RoI bin covered by the mask."""
    rois = torch.cat([mask_index[:, None].to(boxes.dtype), boxes], 1)
    return roi_align(masks[:, None].to(boxes.dtype), rois, output_size, sampling_ratio=2,
                     aligned=True)


def two_rect_maps(subj: torch.Tensor, obj: torch.Tensor, img_sizes: torch.Tensor, size: int = 27,
                  rect_coord_bug: bool = False) -> torch.Tensor:
    """Binary maps ``(R, 2, size, size)`` of the subject (channel 0) and object (channel 1) boxes
    ``(R, 4)`` drawn on a ``size x size`` grid covering the image (``img_sizes (R, 2)`` = ``h, w``).

    Box coordinates are scaled by ``size / w`` and ``size / h``; grid cell ``(y, x)`` is inside
    when ``floor(x1) <= x <= ceil(x2)`` and ``floor(y1) <= y <= ceil(y2)``. ``rect_coord_bug``
    reproduces OpenPSG's object rectangle, which reads its x-range from ``(x1, y1)`` and its
    y-range from ``(x2, y2)``.
    """
    h, w = img_sizes[:, 0:1].to(subj.dtype), img_sizes[:, 1:2].to(subj.dtype)
    scale = torch.cat([size / w, size / h, size / w, size / h], 1)
    s, o = subj * scale, obj * scale
    grid = torch.arange(size, device=subj.device, dtype=subj.dtype)
    xs, ys = grid.view(1, 1, size), grid.view(1, size, 1)

    def rect(x_lo: torch.Tensor, x_hi: torch.Tensor, y_lo: torch.Tensor,
             y_hi: torch.Tensor) -> torch.Tensor:
        def col(v: torch.Tensor) -> torch.Tensor:
            return v.view(-1, 1, 1)
        return ((xs >= col(x_lo.floor())) & (xs <= col(x_hi.ceil())) &
                (ys >= col(y_lo.floor())) & (ys <= col(y_hi.ceil())))

    subj_rect = rect(s[:, 0], s[:, 2], s[:, 1], s[:, 3])
    if rect_coord_bug:
        obj_rect = rect(o[:, 0], o[:, 1], o[:, 2], o[:, 3])
    else:
        obj_rect = rect(o[:, 0], o[:, 2], o[:, 1], o[:, 3])
    return torch.stack([subj_rect, obj_rect], 1).to(subj.dtype)


class SpatialBranch(nn.Sequential):
    """Two-rectangle maps ``(R, 2, 27, 27)`` -> ``(R, C, 7, 7)``: conv 7x7/2 (2 -> C/2), ReLU, BN,
    max-pool 3/2, conv 3x3 (C/2 -> C), ReLU, BN."""

    def __init__(self, channels: int = 256) -> None:
        mid = channels // 2
        super().__init__(
            nn.Conv2d(2, mid, 7, stride=2, padding=3), nn.ReLU(inplace=True), nn.BatchNorm2d(mid),
            nn.MaxPool2d(3, stride=2, padding=1),
            nn.Conv2d(mid, channels, 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm2d(channels))


class RoIFeatureExtractor(nn.Module):
    """RoIAlign on the FPN levels, optionally weighted by the RoI-aligned mask and summed with the
    spatial branch, then FC -> ReLU -> FC -> ReLU: ``(K, out_dim)``.

    ``forward(feats, rois (K, 5), mask_weights (K, 1, S, S) | None, rects (K, 2, 27, 27) | None)``.
    """

    def __init__(self, in_channels: int = 256, out_dim: int = 1024, roi_size: int = 7,
                 strides: Sequence[int] = (4, 8, 16, 32), finest_scale: float = 56.0,
                 sampling_ratio: int = 2, with_spatial: bool = False) -> None:
        super().__init__()
        self.roi_size = roi_size
        self.strides = tuple(strides)
        self.finest_scale = finest_scale
        self.sampling_ratio = sampling_ratio
        self.spatial = SpatialBranch(in_channels) if with_spatial else None
        self.fc = nn.Sequential(nn.Linear(in_channels * roi_size * roi_size, out_dim),
                                nn.ReLU(inplace=True), nn.Linear(out_dim, out_dim),
                                nn.ReLU(inplace=True))

    def forward(self, feats: Sequence[torch.Tensor], rois: torch.Tensor,
                mask_weights: torch.Tensor | None = None,
                rects: torch.Tensor | None = None) -> torch.Tensor:
        x = multilevel_roi_align(feats, rois, self.roi_size, self.strides, self.finest_scale,
                                 self.sampling_ratio)
        if mask_weights is not None:
            x = x * mask_weights
        if self.spatial is not None:
            x = x + self.spatial(rects)
        return self.fc(x.flatten(1))


class PositionEmbedding(nn.Module):
    """9-d box encoding -> Linear 9->32 -> BN -> Linear 32->out -> ReLU: ``(N, out_dim)``.

    A training batch of a single box uses the running batch-norm statistics (batch statistics of
    one sample are undefined)."""

    def __init__(self, out_dim: int = 128) -> None:
        super().__init__()
        self.fc1 = nn.Linear(NUM_BOX_FEATS, 32)
        self.bn = nn.BatchNorm1d(32)
        self.fc2 = nn.Linear(32, out_dim)

    def forward(self, box_feats: torch.Tensor) -> torch.Tensor:
        x = self.fc1(box_feats)
        use_batch = self.training and len(x) > 1
        x = F.batch_norm(x, self.bn.running_mean, self.bn.running_var, self.bn.weight, self.bn.bias,
                         use_batch, self.bn.momentum, self.bn.eps)
        return F.relu(self.fc2(x))


# ---------------------------------------------------------------------------------------------
# training targets


def assign_object_targets(boxes: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor,
                          background: int, iou_thr: float = 0.5) -> torch.Tensor:
    """Class targets ``(N,)`` of boxes ``(N, 4)`` matched to ground truth ``(G, 4)``, ``(G,)``.

    A box takes the label of its highest-IoU ground truth when that IoU is ``>= iou_thr``, else
    ``background``; then every ground truth whose best IoU is ``>= iou_thr`` also claims the boxes
    reaching that best IoU (mmdet's MaxIoUAssigner with low-quality matches, ground truth in
    order, later ones winning).
    """
    targets = torch.full((len(boxes),), background, dtype=torch.long, device=boxes.device)
    if len(boxes) == 0 or len(gt_boxes) == 0:
        return targets
    iou = box_iou(boxes, gt_boxes)
    best, best_gt = iou.max(1)
    assigned = torch.where(best >= iou_thr, best_gt, torch.full_like(best_gt, -1))
    gt_best = iou.max(0).values
    for g in torch.nonzero(gt_best >= iou_thr).squeeze(1).tolist():
        assigned[iou[:, g] == gt_best[g]] = g
    matched = assigned >= 0
    targets[matched] = gt_labels[assigned[matched]]
    return targets


def _random_subset(n: int, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """``min(n, k)`` distinct indices of ``range(n)`` in random order (CPU int64)."""
    return torch.randperm(n, generator=generator)[:k]


class RelationSampler:
    """Draws the training pairs of an image (OpenPSG's "Motif" sampler).

    ``num_rel_per_image`` pairs at most, of which at most ``pos_fraction`` positive.

    * Ground-truth objects (PredCls, SGCls): positives are the annotated relations (a random subset
      when too many); negatives are ordered pairs that are related in neither direction, labelled
      "no relation".
    * Detected objects (SGDet): an object matches a ground-truth object when their labels agree
      and their box IoU is ``> pos_iou_thr``. Every annotated relation ``(s, o, p)`` yields the
      pairs ``(s', o')``, ``s' != o'``, of objects matching ``s`` and ``o``, labelled ``p``; when
      there are more than ``num_sample_per_gt_rel``, that many are drawn without replacement
      with probability proportional to ``IoU(s', s) * IoU(o', o)``. Negatives as above.

    ``related`` marks (both directions) every positive pair before the cap. An image whose only
    object allows no pair gets the single pair ``(0, 0)`` labelled "no relation". Random draws use
    ``generator`` (``None``: torch's global generator), so ``torch.manual_seed`` repeats them.
    """

    def __init__(self, num_rel_per_image: int = 1024, pos_fraction: float = 0.25,
                 num_sample_per_gt_rel: int = 4, pos_iou_thr: float = 0.5) -> None:
        self.num_rel_per_image = num_rel_per_image
        self.num_pos = int(num_rel_per_image * pos_fraction)
        self.num_sample_per_gt_rel = num_sample_per_gt_rel
        self.pos_iou_thr = pos_iou_thr

    def __call__(self, objects: ObjectSet, gt: Sample, num_predicates: int, use_gt_box: bool,
                 generator: torch.Generator | None = None) -> RelationTargets:
        device = objects.boxes.device
        n = len(objects)
        rels = gt.rels.to(device)
        if use_gt_box:
            positives = rels
        else:
            positives = self._detected_positives(objects, gt, generator)
        related = torch.zeros((n, n), dtype=torch.bool, device=device)
        related[positives[:, 0], positives[:, 1]] = True
        related[positives[:, 1], positives[:, 0]] = True
        if len(positives) > self.num_pos:
            keep = _random_subset(len(positives), self.num_pos, generator)
            positives = positives[keep.to(device)]
        candidates = ordered_pairs(n, device)
        negatives = candidates[~related[candidates[:, 0], candidates[:, 1]]]
        keep = _random_subset(len(negatives), self.num_rel_per_image - len(positives), generator)
        negatives = negatives[keep.to(device)]
        pairs = torch.cat([positives[:, :2], negatives])
        labels = torch.cat([positives[:, 2], negatives.new_full((len(negatives),), num_predicates)])
        if len(pairs) == 0:
            pairs = torch.zeros((1, 2), dtype=torch.long, device=device)
            labels = torch.full((1,), num_predicates, dtype=torch.long, device=device)
        return RelationTargets(pairs, labels, related)

    def _detected_positives(self, objects: ObjectSet, gt: Sample,
                            generator: torch.Generator | None) -> torch.Tensor:
        """``(M, 3)`` (subject, object, predicate) rows over the detected objects."""
        device = objects.boxes.device
        gt_boxes, gt_labels = gt.boxes.to(device), gt.labels.to(device)
        if len(gt_boxes) == 0 or len(objects) == 0:
            return torch.zeros((0, 3), dtype=torch.long, device=device)
        iou = box_iou(objects.boxes.float(), gt_boxes.float())
        match = (iou > self.pos_iou_thr) & (objects.labels[:, None] == gt_labels[None, :])
        rows = []
        for s, o, p in gt.rels.tolist():
            subj = torch.nonzero(match[:, s]).squeeze(1)
            obj = torch.nonzero(match[:, o]).squeeze(1)
            ss, oo = torch.meshgrid(subj, obj, indexing='ij')
            ss, oo = ss.reshape(-1), oo.reshape(-1)
            keep = ss != oo
            ss, oo = ss[keep], oo[keep]
            if len(ss) > self.num_sample_per_gt_rel:
                weights = (iou[ss, s] * iou[oo, o]).cpu().double()
                pick = torch.multinomial(weights, self.num_sample_per_gt_rel, replacement=False,
                                         generator=generator).to(device)
                ss, oo = ss[pick], oo[pick]
            rows.append(torch.stack([ss, oo, torch.full_like(ss, p)], 1))
        if not rows:
            return torch.zeros((0, 3), dtype=torch.long, device=device)
        return torch.cat(rows)


# ---------------------------------------------------------------------------------------------
# frequency bias


def predicate_frequency_counts(ann_file: str, num_classes: int = NUM_CLASSES,
                               num_predicates: int = NUM_PREDICATES,
                               with_no_relation: bool = False) -> np.ndarray:
    """``(C, C, P + 1)`` float64 counts of ``(subject class, object class, predicate)`` over the
    relations of the training split of ``ann_file`` (every relation row of the file). The last
    column, "no relation", stays 0 unless ``with_no_relation``: then it counts the ordered pairs
    of distinct segments of the split's images that have no relation.
    """
    from ...datasets.annotations import load_annotations, split_rows, triplet_counts

    ann = load_annotations(ann_file, with_masks=False)
    if len(ann.classes) != num_classes or len(ann.predicate_classes) != num_predicates:
        raise ValueError(f'{ann_file}: {len(ann.classes)} classes and {len(ann.predicate_classes)} '
                         f'predicates, the model expects {num_classes} and {num_predicates}')
    rows = split_rows(ann, 'train')
    counts = np.zeros((num_classes, num_classes, num_predicates + 1), dtype=np.float64)
    counts[..., :num_predicates] = triplet_counts(ann, rows)
    if with_no_relation:
        for row in rows:
            labels = ann.labels[ann.segments(row)]
            own = ann.relations(row)
            related = np.zeros((len(labels), len(labels)), dtype=bool)
            related[own[:, 0], own[:, 1]] = True
            i, j = np.nonzero(~related & ~np.eye(len(labels), dtype=bool))
            np.add.at(counts, (labels[i], labels[j], num_predicates), 1)
    return counts


def log_frequencies(counts: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """OpenPSG's prior ``log(f / sum_p f + eps)`` with ``f = counts + eps`` (same shape)."""
    freq = counts + eps
    return np.log(freq / freq.sum(-1, keepdims=True) + eps)


def load_frequency_counts(cache: str | None, ann_file: str | None, num_classes: int,
                          num_predicates: int) -> np.ndarray:
    """The counts of :func:`predicate_frequency_counts`, read from the ``.npy`` file ``cache`` when
    it exists, else computed from ``ann_file`` (and written to ``cache`` when given)."""
    shape = (num_classes, num_classes, num_predicates + 1)
    if cache is not None and os.path.isfile(cache):
        counts = np.load(cache, allow_pickle=False)
        if counts.shape != shape:
            raise ValueError(f'{cache}: frequency counts of shape {counts.shape}, expected {shape}')
        return counts
    if ann_file is None:
        raise ValueError('the frequency bias needs `freq_ann_file` (the training annotations) '
                         f'or an existing `freq_cache` file (got {cache!r})')
    counts = predicate_frequency_counts(ann_file, num_classes, num_predicates)
    if cache is not None:
        os.makedirs(os.path.dirname(os.path.abspath(cache)), exist_ok=True)
        np.save(cache, counts)
    return counts


class FrequencyBias(nn.Module):
    """Learned predicate logits ``(R, P + 1)`` per (subject class, object class), initialised with
    :func:`log_frequencies` of training counts ``(C, C, P + 1)``."""

    def __init__(self, counts: np.ndarray) -> None:
        super().__init__()
        c, _, p = counts.shape
        self.num_classes = c
        self.table = nn.Embedding(c * c, p)
        with torch.no_grad():
            self.table.weight.copy_(torch.from_numpy(log_frequencies(counts)).reshape(c * c, p))

    def forward(self, subj_labels: torch.Tensor, obj_labels: torch.Tensor) -> torch.Tensor:
        return self.table(subj_labels * self.num_classes + obj_labels)


# ---------------------------------------------------------------------------------------------
# classifiers and post-processing


class ContextPairClassifier(nn.Module):
    """MOTIFS/VCTree predicate classifier over edge contexts ``(K, ctx_dim)``.

    ``post_emb`` (ctx -> 2 ctx, ReLU for VCTree) is split into a subject half and an object half;
    a pair's ``[subject half; object half]`` goes through ``post_cat`` (2 ctx -> pooling_dim), is
    multiplied by the union feature projected to ``pooling_dim`` and classified by
    ``rel_compress`` (pooling_dim -> P + 1).
    """

    def __init__(self, ctx_dim: int, roi_dim: int, pooling_dim: int, num_outputs: int,
                 emb_relu: bool = False) -> None:
        super().__init__()
        self.ctx_dim = ctx_dim
        self.post_emb = nn.Linear(ctx_dim, 2 * ctx_dim)
        self.emb_relu = emb_relu
        self.post_cat = nn.Linear(2 * ctx_dim, pooling_dim)
        self.up_dim = nn.Linear(roi_dim, pooling_dim) if roi_dim != pooling_dim else nn.Identity()
        self.rel_compress = nn.Linear(pooling_dim, num_outputs)
        nn.init.normal_(self.post_emb.weight, 0.0, 10.0 * (1.0 / ctx_dim) ** 0.5)
        nn.init.zeros_(self.post_emb.bias)
        for layer in (self.post_cat, self.rel_compress, self.up_dim):
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, edge_ctx: torch.Tensor, union_feats: torch.Tensor,
                pairs: torch.Tensor) -> torch.Tensor:
        emb = self.post_emb(edge_ctx)
        if self.emb_relu:
            emb = F.relu(emb)
        head, tail = emb.split(self.ctx_dim, dim=1)
        pair_rep = self.post_cat(torch.cat([head[pairs[:, 0]], tail[pairs[:, 1]]], 1))
        return self.rel_compress(pair_rep * self.up_dim(union_feats))


def one_hot_logits(labels: torch.Tensor, num_outputs: int, value: float = 1000.0) -> torch.Tensor:
    """``(N, num_outputs)`` logits ``+value`` at ``labels`` and ``-value`` elsewhere (PredCls)."""
    logits = torch.full((len(labels), num_outputs), -value, device=labels.device)
    logits[torch.arange(len(labels), device=labels.device), labels] = value
    return logits


def foreground_argmax(logits: torch.Tensor) -> torch.Tensor:
    """Most likely non-background class ``(N,)`` of ``(N, C + 1)`` logits."""
    return logits[:, :-1].argmax(1)


def object_scores(obj_logits: torch.Tensor, known_labels: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(labels, scores)`` of ``(N, C + 1)`` logits: softmax with the background removed, score =
    max probability, label = argmax, or ``known_labels`` (PredCls, SGDet) when given."""
    probs = obj_logits.float().softmax(1)[:, :-1]
    scores, labels = probs.max(1)
    return (labels if known_labels is None else known_labels), scores


def rank_relations(rel_logits: torch.Tensor, pairs: torch.Tensor, labels: torch.Tensor,
                   scores: torch.Tensor) -> RelationResult:
    """Rank the pairs ``(R, 2)`` of one image by triplet score = best predicate probability x
    subject score x object score (softmax over the ``P + 1`` logits, last = no relation)."""
    probs = rel_logits.float().softmax(1)
    predicate_scores = probs[:, :-1]
    triplet = predicate_scores.max(1).values * scores[pairs[:, 0]] * scores[pairs[:, 1]]
    order = torch.sort(triplet, descending=True, stable=True).indices
    return RelationResult(labels=labels, scores=scores, pairs=pairs[order],
                          predicate_scores=predicate_scores[order],
                          no_relation_scores=probs[order, -1], triplet_scores=triplet[order])


# ---------------------------------------------------------------------------------------------
# base head


class RelationHead(nn.Module):
    """Base class of the two-stage relation heads.

    Subclasses build their context model in ``__init__`` and implement :meth:`context`
    (``RelationInputs -> RelationOutputs``); this class extracts the features, draws training
    pairs, computes the losses and post-processes predictions.

    Args:
        mode: ``'predcls'`` (ground-truth objects and labels), ``'sgcls'`` (ground-truth objects)
            or ``'sgdet'`` (the segmenter's objects); set by the two-stage model.
        num_classes / num_predicates: C and P (the background / no-relation index is C / P).
        class_names: the C class names for the word embeddings (default: the PSG classes).
        in_channels, roi_size, featmap_strides, finest_scale: FPN channels and RoIAlign settings.
        roi_dim: size of object and union features; hidden_dim: context size; embed_dim: word
            embedding size; pooling_dim: MOTIFS/VCTree pair representation size; pos_dim: size
            of the box position embedding; dropout_rate: MOTIFS's recurrent dropout (and between
            stacked LSTM layers).
        with_mask_feats: weight RoI features by the RoI-aligned object (union: subject or object)
            masks. rect_coord_bug: reproduce OpenPSG's object rectangle in the spatial branch.
        glove_file: GloVe text file for the class-name embeddings (random vectors if missing).
        use_bias, freq_cache, freq_ann_file: add the learned frequency bias to the relation
            logits, initialised from counts read from ``freq_cache`` or computed from the training
            split of ``freq_ann_file`` (see :func:`load_frequency_counts`).
        sampler: :class:`RelationSampler` arguments. loss_weights: weights of ``loss_object`` and
            ``loss_relation`` (and head-specific terms).
    """

    def __init__(self, mode: str = 'predcls', num_classes: int = NUM_CLASSES,
                 num_predicates: int = NUM_PREDICATES, class_names: Sequence[str] | None = None,
                 in_channels: int = 256, roi_size: int = 7,
                 featmap_strides: Sequence[int] = (4, 8, 16, 32), finest_scale: float = 56.0,
                 roi_dim: int = 1024, hidden_dim: int = 512, embed_dim: int = 200,
                 pooling_dim: int = 4096, pos_dim: int = 128, dropout_rate: float = 0.2,
                 with_mask_feats: bool = False, rect_coord_bug: bool = False,
                 glove_file: str | None = 'data/glove/glove.6B.200d.txt', use_bias: bool = False,
                 freq_cache: str | None = None, freq_ann_file: str | None = None,
                 sampler: Mapping | None = None,
                 loss_weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f'relation head mode must be one of {MODES}, got {mode!r}')
        class_names = tuple(CLASSES if class_names is None else class_names)
        if len(class_names) != num_classes:
            raise ValueError(f'relation head: {len(class_names)} class_names for '
                             f'num_classes={num_classes}')
        self.mode = mode
        self.num_classes = num_classes
        self.num_predicates = num_predicates
        self.class_names = class_names
        self.roi_size = roi_size
        self.roi_dim = roi_dim
        self.hidden_dim = hidden_dim
        self.embed_dim = embed_dim
        self.pooling_dim = pooling_dim
        self.pos_dim = pos_dim
        self.dropout_rate = dropout_rate
        self.with_mask_feats = with_mask_feats
        self.rect_coord_bug = rect_coord_bug
        self.glove_file = glove_file
        self.num_levels = len(featmap_strides)
        extractor = dict(in_channels=in_channels, out_dim=roi_dim, roi_size=roi_size,
                         strides=featmap_strides, finest_scale=finest_scale)
        self.obj_extractor = RoIFeatureExtractor(**extractor)
        self.union_extractor = RoIFeatureExtractor(**extractor, with_spatial=True)
        self.freq_bias = FrequencyBias(load_frequency_counts(
            freq_cache, freq_ann_file, num_classes, num_predicates)) if use_bias else None
        self.sampler = RelationSampler(**(sampler or {}))
        self.loss_weights = {'loss_object': 1.0, 'loss_relation': 1.0, **(loss_weights or {})}

    # ----------------------------------------------------------------------------- building blocks
    def class_embedding(self) -> nn.Embedding:
        """``Embedding(C + 1, embed_dim)`` initialised from the class names' word vectors (the
        background row from the name ``__background__``)."""
        vectors = class_name_vectors((*self.class_names, BACKGROUND_NAME), self.embed_dim,
                                     self.glove_file)
        return nn.Embedding.from_pretrained(vectors, freeze=False)

    def embed_labels(self, embedding: nn.Embedding, label_dists: torch.Tensor) -> torch.Tensor:
        """Expected embedding ``(K, embed_dim)`` under label distributions ``(K, C + 1)``."""
        return label_dists @ embedding.weight

    @property
    def predcls(self) -> bool:
        return self.mode == 'predcls'

    # ----------------------------------------------------------------------------- features
    def build_inputs(self, feats: Sequence[torch.Tensor], objects: Sequence[ObjectSet],
                     pairs: Sequence[torch.Tensor], training: bool) -> RelationInputs:
        """RoI features of the objects and pairs of a batch (image ``i`` of ``objects`` is batch
        row ``i`` of ``feats``), and their label information."""
        levels = list(feats)[:self.num_levels]
        device = levels[0].device
        boxes = [o.boxes.to(device=device, dtype=torch.float32) for o in objects]
        pairs = [p.to(device) for p in pairs]
        obj_feats, union_feats = self._roi_features(levels, objects, boxes, pairs)
        known = None
        if objects[0].labels is not None:
            known = torch.cat([o.labels.to(device) for o in objects])
        teacher = None
        if training and self.mode == 'sgdet':
            teacher = known
        elif training and self.mode == 'sgcls':
            teacher = torch.cat([o.targets.to(device) for o in objects])
        return RelationInputs(obj_feats=obj_feats, union_feats=union_feats, boxes=boxes,
                              img_shapes=[tuple(o.img_shape) for o in objects], pairs=pairs,
                              label_dists=self._label_dists(known, sum(map(len, boxes)), device),
                              known_labels=known, teacher_labels=teacher)

    def _roi_features(self, levels: list[torch.Tensor], objects: Sequence[ObjectSet],
                      boxes: list[torch.Tensor], pairs: list[torch.Tensor]
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Object features ``(K, roi_dim)`` and union features ``(R, roi_dim)``."""
        device = levels[0].device
        image = torch.cat([torch.full((len(b),), i, dtype=b.dtype, device=device)
                           for i, b in enumerate(boxes)])
        obj_boxes = torch.cat(boxes)
        offsets = np.cumsum([0] + [len(b) for b in boxes[:-1]]).tolist()
        global_pairs = torch.cat([p + off for p, off in zip(pairs, offsets)])
        subj, obj = obj_boxes[global_pairs[:, 0]], obj_boxes[global_pairs[:, 1]]
        union = union_boxes(subj, obj)
        pair_image = image[global_pairs[:, 0]]
        sizes = torch.tensor([o.img_shape for o in objects], device=device)[pair_image.long()]
        rects = two_rect_maps(subj, obj, sizes, rect_coord_bug=self.rect_coord_bug)
        obj_weights = union_weights = None
        if self.with_mask_feats:
            masks = self._padded_masks(objects, device)
            size = self.roi_size
            obj_weights = pooled_masks(masks, torch.arange(len(obj_boxes), device=device),
                                       obj_boxes, size)
            union_weights = torch.maximum(pooled_masks(masks, global_pairs[:, 0], union, size),
                                          pooled_masks(masks, global_pairs[:, 1], union, size))
        obj_feats = self.obj_extractor(levels, torch.cat([image[:, None], obj_boxes], 1),
                                       obj_weights)
        union_feats = self.union_extractor(levels, torch.cat([pair_image[:, None], union], 1),
                                           union_weights, rects)
        return obj_feats, union_feats

    def _label_dists(self, known: torch.Tensor | None, k: int,
                     device: torch.device) -> torch.Tensor:
        if known is None:
            dists = torch.full((k, self.num_classes + 1), 1.0 / self.num_classes, device=device)
            dists[:, -1] = 0
            return dists
        return F.one_hot(known, self.num_classes + 1).float()

    @staticmethod
    def _padded_masks(objects: Sequence[ObjectSet], device: torch.device) -> torch.Tensor:
        """All objects' masks ``(K, H, W)`` zero-padded to the largest mask size of the batch."""
        h = max(o.masks.shape[1] for o in objects)
        w = max(o.masks.shape[2] for o in objects)
        return torch.cat([F.pad(o.masks.to(device),
                                (0, w - o.masks.shape[2], 0, h - o.masks.shape[1]))
                          for o in objects])

    # ----------------------------------------------------------------------------- forward
    def context(self, x: RelationInputs) -> RelationOutputs:
        """The head's own model: object and relation logits from the inputs."""
        raise NotImplementedError

    def forward(self, feats: Sequence[torch.Tensor], objects: Sequence[ObjectSet],
                pairs: Sequence[torch.Tensor]) -> tuple[RelationInputs, RelationOutputs]:
        """Features -> :meth:`context`; PredCls object logits are the one-hot of the known labels
        and the frequency bias (if used) is added to the relation logits."""
        x = self.build_inputs(feats, objects, pairs, self.training)
        out = self.context(x)
        if self.predcls:
            out.obj_logits = one_hot_logits(x.known_labels, self.num_classes + 1)
            out.obj_labels = x.known_labels
        if self.freq_bias is not None:
            gp = x.global_pairs
            bias = self.freq_bias(out.obj_labels[gp[:, 0]], out.obj_labels[gp[:, 1]])
            out.rel_logits = out.rel_logits + bias
        return x, out

    # ----------------------------------------------------------------------------- training
    def loss(self, feats: Sequence[torch.Tensor], objects: Sequence[ObjectSet],
             samples: Sequence[Sample],
             generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Draw training pairs, run the head and return the weighted losses: ``loss_relation``
        (cross-entropy over the P + 1 predicate classes of the sampled pairs) and, unless PredCls,
        ``loss_object`` (cross-entropy of the object classifier against ``ObjectSet.targets``),
        plus :meth:`extra_losses`."""
        targets = [self.sampler(o, s, self.num_predicates, self.mode != 'sgdet', generator)
                   for o, s in zip(objects, samples)]
        x, out = self(feats, objects, [t.pairs for t in targets])
        rel_labels = torch.cat([t.labels for t in targets]).to(out.rel_logits.device)
        losses = {'loss_relation': F.cross_entropy(out.rel_logits, rel_labels)}
        if not self.predcls:
            obj_targets = torch.cat([o.targets for o in objects]).to(out.obj_logits.device)
            losses['loss_object'] = F.cross_entropy(out.obj_logits, obj_targets)
        losses.update(self.extra_losses(x, out, targets))
        return {k: v * self.loss_weights.get(k, 1.0) for k, v in losses.items()}

    def extra_losses(self, x: RelationInputs, out: RelationOutputs,
                     targets: Sequence[RelationTargets]) -> dict[str, torch.Tensor]:
        """Head-specific loss terms (none by default)."""
        return {}

    # ----------------------------------------------------------------------------- inference
    @torch.no_grad()
    def predict(self, feats: Sequence[torch.Tensor],
                objects: Sequence[ObjectSet]) -> list[RelationResult]:
        """Score every ordered pair of every image (see :func:`inference_pairs`) and rank them."""
        pairs = [inference_pairs(len(o), o.boxes.device) for o in objects]
        x, out = self(feats, objects, pairs)
        known = ([None] * len(objects) if x.known_labels is None
                 else x.split_objects(x.known_labels))
        obj_logits = x.split_objects(out.obj_logits)
        rel_logits = out.rel_logits.split([len(p) for p in x.pairs])
        results = []
        for logits, labels, rel, p in zip(obj_logits, known, rel_logits, x.pairs):
            labels, scores = object_scores(logits, labels)
            results.append(rank_relations(rel, p, labels, scores))
        return results

