"""Adaptive relation-label smoothing (EGTR, Im et al. CVPR'24): a relation's target is weighted by
how well its subject and object queries match their ground-truth objects.

Each matched query has the Hungarian cost ``c`` of its match (the matcher's weighted sum of cost
terms). The cost is shifted so that a perfect match lands at ``logit(s)``::

    c' = c - c_min + logit(s)        u = sigmoid(c')        w = 1 - u

``s`` is the smoothing (EGTR: 1e-14): a perfect match gets ``u = s`` and ``w ~ 1``, a poor one
``u -> 1`` and ``w -> 0``. The target of predicate ``p`` for the ordered pair ``(i, j)`` becomes
``y_ijp * w_i * w_j``; an unmatched query has ``w = 0`` (EGTR gives it a constant cost so large
that ``1 - sigmoid`` is 0 in float32), so every pair touching it has target 0.

**The perfect-match cost** ``c_min`` is the cost of a prediction equal to its target::

    c_min = sum over the matcher's cost terms t of  weight_t * minimum_t

with the minima of :data:`COST_TERM_MINIMA`:

* ``class``: the focal class cost ``alpha (1 - p)^gamma (-ln(p + eps)) - (1 - alpha) p^gamma
  (-ln(1 - p + eps))`` at ``p = 1`` is ``(1 - alpha) ln(eps)``;
* ``bbox``: the L1 box cost is 0; ``giou``: the ``-GIoU`` cost is -1;
* ``mask`` (panoptic setting): the per-pixel sigmoid focal loss averaged over the pixels
  (:func:`~.matcher.mask_focal_cost`) is a mean of non-negative terms, each 0 at a perfect pixel
  (``p -> 1`` on the target, ``p -> 0`` off it): minimum 0;
* ``dice`` (panoptic setting): ``1 - (2 |p t| + 1) / (|p| + |t| + 1)``
  (:func:`~.matcher.dice_cost`) at ``p = t`` is ``1 - (2 |t| + 1) / (2 |t| + 1) = 0`` (also for
  an empty target), and the fraction never exceeds 1 for ``0 <= p <= 1``: minimum 0.

With EGTR's weights (class 2, L1 5, GIoU 2; alpha 0.25, eps 1e-8), ``c_min = 2 * 0.75 * ln(1e-8)
- 2 = -29.63``; the two mask terms add ``weight * 0``, so ``c_min`` is the same with them. A cost
term that joins the matcher must add its own minimum here, or :func:`perfect_match_cost` refuses
the weights: a cost clamped by an ``eps`` inside a log has the value at that clamp, a negated
similarity (like ``-GIoU``) has ``-1``. Leaving a term with a non-zero minimum out would shift
every ``c'`` by its weighted minimum.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import torch

#: the smallest value of each matching-cost term (its value for a perfect prediction), as a
#: function of the focal parameters ``alpha`` and ``eps`` (see the module docstring)
COST_TERM_MINIMA: dict[str, Callable[[float, float], float]] = {
    'class': lambda alpha, eps: (1 - alpha) * math.log(eps),
    'bbox': lambda alpha, eps: 0.0,
    'giou': lambda alpha, eps: -1.0,
    'mask': lambda alpha, eps: 0.0,
    'dice': lambda alpha, eps: 0.0,
}


def perfect_match_cost(weights: Mapping[str, float], alpha: float = 0.25,
                       eps: float = 1e-8) -> float:
    """``c_min = sum_t weights[t] * minimum_t`` over the matcher's cost terms ``weights``
    (``{'class': 2.0, 'bbox': 5.0, 'giou': 2.0}`` -> -29.63). A term without a known minimum is a
    ``ValueError``."""
    unknown = sorted(set(weights) - set(COST_TERM_MINIMA))
    if unknown:
        raise ValueError(f'perfect_match_cost: no known minimum for the cost term(s) {unknown}; '
                         f'add it to COST_TERM_MINIMA (known: {sorted(COST_TERM_MINIMA)})')
    return sum(w * COST_TERM_MINIMA[t](alpha, eps) for t, w in weights.items())


def check_smoothing(smoothing: float) -> float:
    """``smoothing`` if it is in ``[0, 1)`` (0 turns smoothing off), else ``ValueError``."""
    if not 0 <= smoothing < 1:
        raise ValueError(f'smoothing must be in [0, 1), got {smoothing}')
    return smoothing


def match_weights(costs: torch.Tensor, perfect_cost: float, smoothing: float) -> torch.Tensor:
    """``w = 1 - sigmoid(c - c_min + logit(s))`` of the matched costs ``costs (K,)``.

    ``smoothing`` must be in ``[0, 1)``; 0 turns smoothing off (``w = 1``: hard targets)."""
    if check_smoothing(smoothing) == 0:
        return torch.ones_like(costs)
    shift = math.log(smoothing / (1 - smoothing)) - perfect_cost
    return 1 - torch.sigmoid(costs + shift)


def query_weights(num_queries: int, matched_queries: torch.Tensor,
                  weights: torch.Tensor) -> torch.Tensor:
    """``(Q,)`` smoothing weight of every query: ``weights (K,)`` at ``matched_queries (K,)``,
    0 elsewhere."""
    out = weights.new_zeros(num_queries)
    out[matched_queries] = weights
    return out


def smoothed_targets(targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``targets (Q, Q, P) * w_i * w_j`` for query weights ``weights (Q,)``."""
    return targets * (weights[:, None] * weights[None, :])[..., None]
