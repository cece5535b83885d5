"""From a head's logits to one image's ranked relations."""
from __future__ import annotations

import torch

from .contracts import RelationResult


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
