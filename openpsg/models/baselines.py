"""Frequency baselines: predicates predicted from the classes of the two segments alone.

:class:`FrequencyBaseline` uses the ground-truth segments of each image (the PredCls setting) and
learns one predicate distribution per (subject class, object class), or a single one for every
pair; :func:`frequency_scene_graph` applies training-set counts to any model's segments (the
"FREQ" baseline in SGDet). They are the floor every relation model must beat, and a tiny real
model for testing the training machinery.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..registry import MODELS
from ..structures import (NUM_CLASSES, NUM_PREDICATES, Batch, Prediction, Sample, masks_to_boxes,
                          nearest_to_original)
from ..structures.pairs import ordered_pairs
from .base import PSGModel
from .relation_heads.sampling import sample_negatives
from .sample_checks import check_labels, checked_rels


@MODELS.register()
class FrequencyBaseline(PSGModel):
    """Scores every ordered pair of ground-truth segments with a learned table of logits.

    ``logits[subject class, object class]`` holds ``num_predicates + 1`` logits, the last one for
    "no relation" (``class_conditioned=False``: one row shared by every pair, i.e. "predict the
    most frequent predicates"). Training minimises the cross-entropy against each annotated
    relation and against "no relation" for at most ``neg_per_image`` randomly drawn unrelated pairs
    per image (``None``: all of them), averaged per image and then over the batch.

    Prediction: every ordered pair, ranked by its best predicate probability; segments are the
    ground-truth ones (score 1) at original size.
    """

    mode = 'predcls'  # needs ground-truth segments: not usable on images without annotations

    def __init__(self, num_classes: int = NUM_CLASSES, num_predicates: int = NUM_PREDICATES,
                 neg_per_image: int | None = 64, class_conditioned: bool = True) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_predicates = num_predicates
        self.neg_per_image = neg_per_image
        self.class_conditioned = class_conditioned
        rows = num_classes if class_conditioned else 1
        self.logits = nn.Parameter(torch.zeros(rows, rows, num_predicates + 1))

    def pair_logits(self, labels: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """``(R, num_predicates + 1)`` logits of the pairs ``(R, 2)`` of segments with classes
        ``labels (N,)``."""
        if not self.class_conditioned:
            return self.logits[0, 0].expand(len(pairs), -1)
        return self.logits[labels[pairs[:, 0]], labels[pairs[:, 1]]]

    def _check_sample(self, sample: Sample) -> None:
        check_labels(sample, self.num_classes)
        checked_rels(sample, self.num_predicates)

    def _training_pairs(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
        """Pairs ``(R, 2)`` and target classes ``(R,)``: every relation, then sampled negatives."""
        n = len(sample.labels)
        rels = sample.rels
        related = torch.zeros((n, n), dtype=torch.bool, device=rels.device)
        related[rels[:, 0], rels[:, 1]] = True
        negatives = sample_negatives(related, self.neg_per_image, shuffle=False)
        no_relation = negatives.new_full((len(negatives),), self.num_predicates)
        targets = torch.cat([rels[:, 2], no_relation])
        return torch.cat([rels[:, :2], negatives]), targets

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        per_image = []
        for sample in batch.samples:
            self._check_sample(sample)
            pairs, targets = self._training_pairs(sample)
            if len(pairs) == 0:
                per_image.append(self.logits.sum() * 0)
                continue
            per_image.append(F.cross_entropy(self.pair_logits(sample.labels, pairs), targets))
        return {'loss_relation': torch.stack(per_image).mean()}

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[Prediction]:
        return [self._predict_one(sample) for sample in batch.samples]

    def _predict_one(self, sample: Sample) -> Prediction:
        self._check_sample(sample)
        labels = sample.labels
        pairs = ordered_pairs(len(labels), labels.device)
        probs = self.pair_logits(labels, pairs).float().softmax(-1)
        predicate_scores = probs[:, :self.num_predicates]
        triplet_scores = predicate_scores.max(1).values
        order = torch.sort(triplet_scores, descending=True, stable=True).indices
        masks = nearest_to_original(sample.masks, sample.meta).cpu().numpy()
        return Prediction(
            image_id=sample.meta.image_id,
            labels=labels.cpu().numpy(),
            scores=np.ones(len(labels), dtype=np.float32),
            boxes=masks_to_boxes(masks),
            masks=masks,
            pairs=pairs[order].cpu().numpy(),
            predicate_scores=predicate_scores[order].cpu().numpy(),
            triplet_scores=triplet_scores[order].cpu().numpy(),
            no_relation_scores=probs[order, self.num_predicates].cpu().numpy())


def frequency_scene_graph(prediction: Prediction, counts: np.ndarray,
                          smoothing: float = 1.0) -> Prediction:
    """``prediction``'s segments with its relations replaced by training-set frequencies.

    ``counts``: ``(C, C, P + 1)`` counts of (subject class, object class, predicate), the last
    column "no relation" (see :func:`~openpsg.datasets.statistics.predicate_frequency_counts`
    with ``with_no_relation=True``), or ``(P + 1,)`` for one distribution shared by every pair
    ("the most frequent predicate").
    Every ordered pair of distinct segments gets ``(counts[s, o] + smoothing * prior) /
    (counts[s, o].sum() + smoothing)``, ``prior`` being the distribution over all pairs, and is
    ranked by ``subject score x object score x best predicate probability``.
    """
    counts = np.asarray(counts, dtype=np.float64)
    prior = counts.reshape(-1, counts.shape[-1]).sum(0)
    if prior.sum() <= 0:
        raise ValueError('frequency_scene_graph: the counts are all zero')
    prior /= prior.sum()
    i, j = ordered_pairs(prediction.num_segments).numpy().T
    pair_counts = (counts[prediction.labels[i], prediction.labels[j]] if counts.ndim == 3
                   else np.broadcast_to(counts, (len(i), len(prior))))
    probs = (pair_counts + smoothing * prior) / (pair_counts.sum(-1, keepdims=True) + smoothing)
    predicate_scores = probs[:, :-1]
    rank = prediction.scores[i] * prediction.scores[j] * predicate_scores.max(1, initial=0)
    order = np.argsort(-rank, kind='stable')
    return replace(prediction, pairs=np.stack([i, j], 1)[order].astype(np.int64),
                   predicate_scores=predicate_scores[order].astype(np.float32),
                   triplet_scores=rank[order].astype(np.float32),
                   no_relation_scores=probs[order, -1].astype(np.float32))
