"""The parts every DETR-style model here shares: a backbone with sine positional encoding, a 1x1
projection of one backbone map, learned queries and a :class:`~.transformer.Transformer`
(:class:`DETRBase`), what running them gives (:class:`TransformerOutputs`), and DETR's
:class:`MLP` head.

Attribute names follow the facebookresearch/detr checkpoints, so ``backbone.0.body.layer1.0.conv1.weight``,
``input_proj.weight``, ``query_embed.weight``, ``transformer.decoder.norm.weight`` ... load as they
are (see ``tools/convert_detr_checkpoint.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import MODELS
from ..base import PSGModel
from .mask_head import MaskFeatures
from .position_encoding import PositionEmbeddingSine
from .transformer import Transformer


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU in between (parameters ``layers.{i}.weight``)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims, dims[1:] + [output_dim]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class Joiner(nn.Sequential):
    """``[0]`` a backbone, ``[1]`` a positional encoding (DETR's layout, hence ``backbone.0.body``).

    ``forward(imgs (B, 3, H, W), pad_mask (B, H, W), level)`` -> the backbone's feature maps and
    padding masks (lists over levels) and the positional encoding ``(B, d, h, w)`` of ``level``
    (default: the last).
    """

    def forward(self, imgs: torch.Tensor, pad_mask: torch.Tensor, level: int = -1
                ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        features, masks = self[0](imgs, pad_mask)
        return features, masks, self[1](masks[level]).to(features[level].dtype)


@dataclass
class TransformerOutputs:
    """What :meth:`DETRBase.run_transformer` computes for a batch.

    ``features``: backbone maps C2..C5 ``(B, C_i, H_i, W_i)``; ``src``: the transformer's input
    map (C5 by default) projected to ``(B, d, h, w)``; ``mask``: its padding ``(B, h, w)``;
    ``hs``: decoder outputs of every layer ``(L, B, Q, d)``; ``memory``: encoder output
    ``(B, d, h, w)``.
    """

    features: list[torch.Tensor]
    src: torch.Tensor
    mask: torch.Tensor
    hs: torch.Tensor
    memory: torch.Tensor

    def mask_features(self) -> MaskFeatures:
        """The maps the mask branch reads: ``memory`` with its padding ``mask``, ``src`` and the
        backbone's C4, C3, C2."""
        return MaskFeatures(self.memory, self.mask, self.src,
                            [self.features[2], self.features[1], self.features[0]])


class DETRBase(PSGModel):
    """Backbone (with sine positional encoding), 1x1 input projection of one backbone map,
    ``num_queries`` learned query embeddings and a :class:`~.transformer.Transformer`. Heads are
    added by subclasses, which call :meth:`run_transformer` (or :meth:`embed`).

    ``backbone`` is a MODELS config (e.g. ``dict(type='ResNet', depth=50)``) of a module exposing
    ``num_channels``; ``transformer`` holds the :class:`~.transformer.Transformer` arguments.
    ``feature_level`` picks the map the transformer reads: ``3`` (C5, stride 32) as DETR, ``2``
    (C4, stride 16) for small images, where C5 leaves a few tokens per object at most.
    """

    def __init__(self, backbone: Mapping[str, Any], transformer: Mapping[str, Any],
                 num_queries: int = 100, feature_level: int = 3) -> None:
        super().__init__()
        self.transformer = Transformer(**transformer)
        d = self.transformer.d_model
        trunk = MODELS.build(backbone)
        if not 0 <= feature_level < len(trunk.num_channels):
            raise ValueError(f'feature_level must be in 0..{len(trunk.num_channels) - 1} (C2..C5), '
                             f'got {feature_level}')
        self.feature_level = feature_level
        self.backbone = Joiner(trunk, PositionEmbeddingSine(d // 2, normalize=True))
        self.input_proj = nn.Conv2d(trunk.num_channels[feature_level], d, kernel_size=1)
        self.query_embed = nn.Embedding(num_queries, d)
        self.num_queries = num_queries

    def embed(self, imgs: torch.Tensor, pad_mask: torch.Tensor
              ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        """Backbone maps C2..C5 and the transformer's input: the ``feature_level`` map projected
        to ``(B, d, h, w)``, its padding mask ``(B, h, w)`` and positional encoding
        ``(B, d, h, w)``."""
        features, masks, pos = self.backbone(imgs, pad_mask, self.feature_level)
        return (features, self.input_proj(features[self.feature_level]), masks[self.feature_level],
                pos)

    def run_transformer(self, imgs: torch.Tensor, pad_mask: torch.Tensor) -> TransformerOutputs:
        features, src, mask, pos = self.embed(imgs, pad_mask)
        hs, memory = self.transformer(src, mask, self.query_embed.weight, pos)
        return TransformerOutputs(features, src, mask, hs, memory)
