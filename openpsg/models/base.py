"""The contract every PSG model follows, one-stage or two-stage."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from ..structures import Batch, Prediction


class PSGModel(nn.Module):
    """Base class of all scene-graph models.

    ``model(batch, mode='loss')`` returns a dict of scalar tensors; the engine optimises the sum of
    the entries whose key starts with ``loss`` and logs the rest. ``model(batch, mode='predict')``
    returns one :class:`~openpsg.structures.Prediction` per image, at original image resolution.
    Going through ``forward`` for both keeps DistributedDataParallel hooks in play.
    """

    def forward(self, batch: Batch, mode: str = 'loss') -> dict[str, torch.Tensor] | list[Prediction]:
        if mode == 'loss':
            return self.loss(batch)
        if mode == 'predict':
            return self.predict(batch)
        raise ValueError(f"mode must be 'loss' or 'predict', got {mode!r}")

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[Prediction]:
        raise NotImplementedError


def checked_options(defaults: Mapping[str, Any], options: Mapping[str, Any] | None, owner: str,
                    name: str) -> dict[str, Any]:
    """``defaults`` updated by ``options`` (a model's ``loss_weights`` or ``test_cfg``); a key
    that ``defaults`` lacks is a ``ValueError`` naming ``owner``, ``name`` and the known keys."""
    unknown = set(options or {}) - set(defaults)
    if unknown:
        raise ValueError(f'{owner}: unknown {name} {sorted(unknown)}; known: {sorted(defaults)}')
    return {**defaults, **(options or {})}
