"""Ranking the ordered pairs of object queries into scene-graph rows (EGTR's inference).

Every query is an object: class = argmax and score = max of the **softmax** over its ``C`` class
logits (EGTR's evaluation does this although the classifier is trained with sigmoid focal loss).
The pair prior is ``S = s s^T`` with a zero diagonal (no self-relations). With relation
probabilities ``r (Q, Q, P)`` (predicate probability x connectivity):

* graph constraint (one predicate per pair, the reported setting): pair score
  ``max_p r_ij * S_ij``; the ``k`` best pairs, best first, each with its row ``r_ij`` (the
  evaluator takes its argmax);
* no graph constraint: the ``k`` best ``(i, j, p)`` by ``r_ijp * S_ij``; a row carries only its
  own predicate's probability (the other entries 0), so the same pair may appear several times.

The scores of tied entries come out in an unspecified order.
"""
from __future__ import annotations

import torch


def softmax_object_scores(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scores (Q,), labels (Q,))``: max and argmax of the softmax over ``logits (Q, C)``."""
    return logits.float().softmax(-1).max(-1)


def pair_prior(scores: torch.Tensor) -> torch.Tensor:
    """``(Q, Q)`` subject score x object score, 0 on the diagonal."""
    prior = scores[:, None] * scores[None, :]
    prior.fill_diagonal_(0)
    return prior


def rank_pairs(scores: torch.Tensor, rel_probs: torch.Tensor, k: int = 100,
               graph_constraint: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(pairs (R, 2), predicate_scores (R, P), triplet_scores (R,))`` ranked best-first, ``R =
    min(k, candidates)``, from object ``scores (Q,)`` and ``rel_probs (Q, Q, P)`` (module
    docstring)."""
    num_queries, _, num_predicates = rel_probs.shape
    prior = pair_prior(scores)
    if graph_constraint:
        pair_scores = rel_probs.max(-1).values * prior
        top, flat = pair_scores.flatten().topk(min(k, pair_scores.numel()))
        i, j = flat // num_queries, flat % num_queries
        return torch.stack([i, j], 1), rel_probs[i, j], top
    triplet_scores = rel_probs * prior[..., None]
    top, flat = triplet_scores.flatten().topk(min(k, triplet_scores.numel()))
    pair, predicate = flat // num_predicates, flat % num_predicates
    i, j = pair // num_queries, pair % num_queries
    rows = torch.zeros((len(flat), num_predicates), dtype=rel_probs.dtype, device=rel_probs.device)
    rows[torch.arange(len(flat), device=flat.device), predicate] = rel_probs[i, j, predicate]
    return torch.stack([i, j], 1), rows, top
