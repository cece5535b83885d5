"""What the two-stage relation heads take and return.

Inside the heads object classes are ``0..C-1`` with ``C`` (133 for PSG) = background and
predicates ``0..P-1`` with ``P`` (56 for PSG) = "no relation", following
:mod:`openpsg.structures.labels`. Per image a head receives an :class:`ObjectSet`; its context
model reads a batch's :class:`RelationInputs` and returns :class:`RelationOutputs`; prediction
ends in one :class:`RelationResult` per image.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...structures.pairs import concat_pairs, object_offsets
from .embeddings import box_position_features


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


def one_hot_logits(labels: torch.Tensor, num_outputs: int, value: float = 1000.0) -> torch.Tensor:
    """``(N, num_outputs)`` logits ``+value`` at ``labels`` and ``-value`` elsewhere (PredCls)."""
    logits = torch.full((len(labels), num_outputs), -value, device=labels.device)
    logits[torch.arange(len(labels), device=labels.device), labels] = value
    return logits


def foreground_argmax(logits: torch.Tensor) -> torch.Tensor:
    """Most likely non-background class ``(N,)`` of ``(N, C + 1)`` logits."""
    return logits[:, :-1].argmax(1)


@dataclass
class RelationInputs:
    """A batch ready for a head's context model; objects and pairs are concatenated over images.

    ``obj_feats (K, roi_dim)`` and ``union_feats (R, roi_dim)`` are the RoI features of the K
    objects and R pairs; ``boxes``/``pairs``/``img_shapes`` are per image (pairs index the image's
    objects); ``label_dists (K, C + 1)`` are the label distributions fed to the label embeddings
    (one-hot of the known labels, uniform over the C classes when unknown); ``known_labels (K,)``
    or ``None`` (SGCls); ``labels_given``: True in PredCls, where the head keeps ``known_labels``
    instead of classifying the objects; ``teacher_labels (K,)`` the labels of teacher forcing in
    training (the targets in SGCls, the segmenter's labels in SGDet), ``None`` otherwise.
    """

    obj_feats: torch.Tensor
    union_feats: torch.Tensor
    boxes: list[torch.Tensor]
    img_shapes: list[tuple[int, int]]
    pairs: list[torch.Tensor]
    label_dists: torch.Tensor
    known_labels: torch.Tensor | None
    labels_given: bool
    teacher_labels: torch.Tensor | None

    @property
    def num_objects(self) -> list[int]:
        return [len(b) for b in self.boxes]

    @property
    def offsets(self) -> list[int]:
        """Index of each image's first object in the concatenated objects."""
        return object_offsets(self.num_objects)

    @property
    def global_pairs(self) -> torch.Tensor:
        """``(R, 2)`` pairs indexing the concatenated objects."""
        return concat_pairs(self.pairs, self.num_objects)

    def box_features(self) -> torch.Tensor:
        """``(K, 9)`` position encoding of every object (:func:`box_position_features`)."""
        return torch.cat([box_position_features(b, s) for b, s in zip(self.boxes, self.img_shapes)])

    def split_objects(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(x.split(self.num_objects))

    def object_outputs(self, logits: torch.Tensor | None = None,
                       labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The object logits ``(K, C + 1)`` and labels ``(K,)`` a head reports.

        With ``labels_given`` (PredCls): the one-hot logits (:func:`one_hot_logits`) of
        ``known_labels`` and those labels, whatever the head computed. Otherwise the head's
        ``logits`` and ``labels`` (default: the most likely foreground class of ``logits``)."""
        if self.labels_given:
            return one_hot_logits(self.known_labels, self.label_dists.shape[1]), self.known_labels
        if logits is None:
            raise ValueError('object_outputs: the head must classify the objects (labels are '
                             'only given in PredCls)')
        return logits, (foreground_argmax(logits) if labels is None else labels)


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
