"""The contract every PSG model follows, one-stage or two-stage."""
from __future__ import annotations

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

