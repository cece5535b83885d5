"""The set-prediction loss of the DETR family (DETR's ``SetCriterion``): Hungarian matching and
weighted loss terms on every decoder layer.

A model plugs in with two callables over a decoder-layer index ``layer`` (``0 .. L - 1``, the last
being the output layer): ``match(layer)`` matches that layer's predictions to the targets - one
``(query_idx, target_idx)`` pair of int64 tensors per image (:data:`~.matcher.Match`) - and
``terms(layer, matches, last)`` returns that layer's unweighted loss terms by name, including the
terms computed on the last layer only (masks, pointers) when ``last`` is True. The targets, the
normalisers and the outputs live in the model's closures, so DETR, DETR4Seg, PSGTR, PSGFormer and
a new transformer share this loop whatever their heads.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
import torch.distributed as dist

from .matcher import Match

MatchFn = Callable[[int], list[Match]]
TermsFn = Callable[[int, list[Match], bool], dict[str, torch.Tensor]]


def flatten_matches(indices: list[Match]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image ``(query_idx, target_idx)`` pairs -> ``(batch_idx, query_idx)`` over the batch."""
    batch_idx = torch.cat([torch.full_like(q, i) for i, (q, _) in enumerate(indices)])
    return batch_idx, torch.cat([q for q, _ in indices])


def class_targets(logits: torch.Tensor, matches: list[Match], labels: list[torch.Tensor],
                  background: int) -> torch.Tensor:
    """Class targets ``(B, Q)`` of the queries of ``logits (B, Q, C)``: ``labels[b][target_idx]``
    for the queries matched in image ``b``, ``background`` ("no object", "no relation") for the
    others."""
    batch_idx, query_idx = flatten_matches(matches)
    targets = torch.full(logits.shape[:2], background, dtype=torch.int64, device=logits.device)
    targets[batch_idx, query_idx] = torch.cat([lab[j] for lab, (_, j) in zip(labels, matches)])
    return targets


def num_targets_for_norm(count: int, device: torch.device) -> float:
    """``count`` averaged over the processes (all of them when distributed), at least 1: the
    normaliser of box and mask losses (``count`` = targets or matched queries in the batch)."""
    total = torch.tensor(float(count), device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(total)
        total = total / dist.get_world_size()
    return max(total.item(), 1.0)


class SetCriterion:
    """Weighted, Hungarian-matched losses of every decoder layer (module docstring).

    ``criterion(num_layers, match, terms)`` runs ``match`` and ``terms`` on each layer (only the
    last with ``aux_loss=False``), multiplies each term by ``weights[name]`` and returns the losses
    - ``loss_{name}`` for the last layer, ``loss_{name}_d{i}`` for the auxiliary layer ``i`` - and
    the last layer's matches.
    """

    def __init__(self, weights: Mapping[str, float], aux_loss: bool = True) -> None:
        self.weights = dict(weights)
        self.aux_loss = aux_loss

    def __call__(self, num_layers: int, match: MatchFn, terms: TermsFn
                 ) -> tuple[dict[str, torch.Tensor], list[Match]]:
        last = num_layers - 1
        losses: dict[str, torch.Tensor] = {}
        for layer in (range(num_layers) if self.aux_loss else [last]):
            matches = match(layer)
            suffix = '' if layer == last else f'_d{layer}'
            for name, value in terms(layer, matches, layer == last).items():
                losses[f'loss_{name}{suffix}'] = self.weights[name] * value
        return losses, matches

    def __repr__(self) -> str:
        return f'SetCriterion(weights={self.weights}, aux_loss={self.aux_loss})'
