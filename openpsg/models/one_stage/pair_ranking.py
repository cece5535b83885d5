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

The scores of tied entries come out in an unspecified order (:func:`rank_pairs`).

In the panoptic setting several queries may merge into one segment (stuff of one class), and a
query may end without any pixel: :func:`rank_segment_pairs` ranks the same cells, leaves out those
that would become a self pair or point at no segment, and keeps one row per segment pair.
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


def cell_scores(scores: torch.Tensor, rel_probs: torch.Tensor, graph_constraint: bool = True
                ) -> torch.Tensor:
    """The scores rows are ranked by: ``max_p r_ij * S_ij`` ``(Q, Q)`` with the graph constraint,
    else ``r_ijp * S_ij`` ``(Q, Q, P)``; object ``scores (Q,)``, ``rel_probs (Q, Q, P)``."""
    prior = pair_prior(scores)
    if graph_constraint:
        return rel_probs.max(-1).values * prior
    return rel_probs * prior[..., None]


def cell_rows(rel_probs: torch.Tensor, flat: torch.Tensor, graph_constraint: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(pairs (R, 2), predicate_scores (R, P))`` of the cells ``flat (R,)`` (flat indices into
    :func:`cell_scores`): a pair's whole row ``r_ij`` with the graph constraint, else only the
    cell's own predicate probability."""
    num_queries, _, num_predicates = rel_probs.shape
    if graph_constraint:
        i, j = flat // num_queries, flat % num_queries
        return torch.stack([i, j], 1), rel_probs[i, j]
    pair, predicate = flat // num_predicates, flat % num_predicates
    i, j = pair // num_queries, pair % num_queries
    rows = torch.zeros((len(flat), num_predicates), dtype=rel_probs.dtype, device=rel_probs.device)
    rows[torch.arange(len(flat), device=flat.device), predicate] = rel_probs[i, j, predicate]
    return torch.stack([i, j], 1), rows


def rank_pairs(scores: torch.Tensor, rel_probs: torch.Tensor, k: int = 100,
               graph_constraint: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(pairs (R, 2), predicate_scores (R, P), triplet_scores (R,))`` ranked best-first, ``R =
    min(k, candidates)``, from object ``scores (Q,)`` and ``rel_probs (Q, Q, P)`` (module
    docstring)."""
    cells = cell_scores(scores, rel_probs, graph_constraint)
    top, flat = cells.flatten().topk(min(k, cells.numel()))
    return (*cell_rows(rel_probs, flat, graph_constraint), top)


def rank_segment_pairs(scores: torch.Tensor, rel_probs: torch.Tensor, segment_of: torch.Tensor,
                       k: int = 100, graph_constraint: bool = True
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`rank_pairs` for queries that form segments: query ``q`` belongs to segment
    ``segment_of[q]`` (``-1``: none; several queries may share one).

    The candidates are the cells (pairs, or (pair, predicate) cells without the graph
    constraint) whose subject and object queries have segments and different ones - pairs that
    would map to no segment or to a self pair are left out. Ranked by :func:`cell_scores` (ties in
    query order), only the best cell of each segment pair (of each segment pair and predicate,
    without the graph constraint) stays, and the ``k`` best of those. Returns the query pairs
    ``(R, 2)`` (their segments are ``segment_of[pairs]``), ``predicate_scores (R, P)`` and
    ``triplet_scores (R,)``."""
    num_predicates = rel_probs.shape[-1]
    seg_i, seg_j = segment_of[:, None], segment_of[None]
    valid = (seg_i >= 0) & (seg_j >= 0) & (seg_i != seg_j)
    keys = seg_i * (int(segment_of.max()) + 1 if len(segment_of) else 0) + seg_j
    cells = cell_scores(scores, rel_probs, graph_constraint)
    if not graph_constraint:
        keys = keys[..., None] * num_predicates + torch.arange(num_predicates,
                                                               device=keys.device)
        valid = valid[..., None].expand_as(cells)
    flat = valid.flatten().nonzero()[:, 0]
    flat = flat[cells.flatten()[flat].argsort(descending=True, stable=True)]
    _, group = keys.flatten()[flat].unique(return_inverse=True)
    position = torch.arange(len(flat), device=flat.device)
    first = torch.full((int(group.max()) + 1 if len(group) else 0,), len(flat),
                       device=flat.device).scatter_reduce(0, group, position, 'amin')
    flat = flat[first.sort().values[:k]]
    return (*cell_rows(rel_probs, flat, graph_constraint), cells.flatten()[flat])
