"""Dense relation targets over object queries and EGTR's relation sampling with hard negatives.

A one-stage model that scores every ordered pair of its ``Q`` object queries with ``P`` independent
predicate logits ``(Q, Q, P)`` learns from a target tensor of the same shape: 1 where the queries
matched to a ground-truth subject and object carry that predicate (several predicates per pair
allowed), 0 elsewhere (:func:`query_relation_targets`). Most entries are 0, so training looks at a
sample of them (:func:`sample_relation_entries`, EGTR's ``rel_sample_negatives`` /
``rel_sample_nonmatching``):

* positives: every entry with target 1;
* negatives: entries with target 0 between two *matched* queries - the ``negatives x #positives``
  with the largest logits (hard negatives), or drawn at random;
* non-matching: entries (all ``P`` predicates) of pairs with at least one *unmatched* query -
  likewise ``nonmatching x #positives`` of them.

``None`` keeps a whole set, 0 none of it; an image without a positive keeps neither negative set
(EGTR's rule: the sample sizes are multiples of the number of positives).
"""
from __future__ import annotations

import torch

from ...structures import ImageMeta
from ..sample_checks import sample_error


def query_relation_targets(rels: torch.Tensor, query_idx: torch.Tensor, target_idx: torch.Tensor,
                           num_objects: int, num_queries: int, num_predicates: int,
                           meta: ImageMeta) -> torch.Tensor:
    """``(Q, Q, P)`` float 0/1 targets in query space.

    ``rels (M, 3)``: ground-truth ``(subject, object, predicate)``; ``query_idx``/``target_idx
    (K,)``: the Hungarian matches (query -> ground-truth object). Every one of the image's
    ``num_objects`` objects must be matched (so ``num_objects <= num_queries``); otherwise a
    :class:`~openpsg.datasets.errors.DatasetError` names the image.
    """
    if num_objects > num_queries or len(target_idx) != num_objects:
        raise sample_error(meta, 'labels', f'{num_objects} objects but the model has {num_queries} '
                           'object queries; every object needs a query (raise num_queries or drop '
                           'the image)')
    query_of = torch.empty(num_objects, dtype=torch.int64, device=rels.device)
    query_of[target_idx] = query_idx
    targets = torch.zeros((num_queries, num_queries, num_predicates), device=rels.device)
    if len(rels):
        targets[query_of[rels[:, 0]], query_of[rels[:, 1]], rels[:, 2]] = 1.0
    return targets


def _pick(mask: torch.Tensor, logits: torch.Tensor, per_positive: int | None, num_positives: int,
          largest: bool, generator: torch.Generator | None) -> torch.Tensor:
    index = mask.nonzero()
    if per_positive is None:
        return index
    k = min(num_positives * per_positive, len(index))
    if k == 0:
        return index[:0]
    if largest:
        order = logits[index[:, 0], index[:, 1], index[:, 2]].topk(k).indices
    else:
        order = torch.randperm(len(index), generator=generator)[:k].to(index.device)
    return index[order]


def sample_relation_entries(logits: torch.Tensor, targets: torch.Tensor, matched: torch.Tensor,
                            negatives: int | None = 80, nonmatching: int | None = 80,
                            negatives_largest: bool = True, nonmatching_largest: bool = True,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """Entries ``(i, j, p)`` to train on, ``(K, 3)`` int64: positives, then negatives, then
    non-matching entries (module docstring).

    ``logits (Q, Q, P)`` (only ranked, no gradient needed), ``targets (Q, Q, P)`` 0/1 from
    :func:`query_relation_targets`, ``matched (Q,)`` bool. ``*_largest=False`` draws the sets at
    random with ``generator``.
    """
    positive = targets > 0
    both = (matched[:, None] & matched[None, :])[..., None]
    positives = positive.nonzero()
    logits = logits.detach()
    chosen_negatives = _pick(both & ~positive, logits, negatives, len(positives),
                             negatives_largest, generator)
    chosen_nonmatching = _pick(~both.expand_as(positive), logits, nonmatching, len(positives),
                               nonmatching_largest, generator)
    return torch.cat([positives, chosen_negatives, chosen_nonmatching])
