"""The parts every DETR-style model here shares (:class:`DETRBase`): a backbone with sine
positional encoding, learned queries and a transformer - DETR's
(:class:`~.transformer.Transformer`, on a 1x1 projection of one backbone map) or Deformable
DETR's (:class:`~.deformable_transformer.DeformableTransformer`, on several projected maps),
chosen by ``transformer['type']`` - what running them gives (:class:`TransformerOutputs`), DETR's
:class:`MLP` head and the box decoding of both (:func:`decode_boxes`).

Attribute names follow the facebookresearch/detr checkpoints on DETR's transformer, so
``backbone.0.body.layer1.0.conv1.weight``, ``input_proj.weight``, ``query_embed.weight``,
``transformer.decoder.norm.weight`` ... load as they are (see ``tools/convert_detr_checkpoint.py``),
and fundamentalvision/Deformable-DETR's on the deformable one (``input_proj.0.1.weight``,
``query_embed.weight`` of width ``2d``, ``transformer.level_embed``, ...; see
``tools/convert_deformable_detr_checkpoint.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import MODELS
from ..base import PSGModel
from .deformable_input import (backbone_levels, deformable_position_encoding, embed_levels,
                               level_projections)
from .deformable_mask_features import deformable_mask_features
from .deformable_transformer import (DeformableMemory, DeformableTransformer,
                                     DeformableTransformerDecoder, layer_references)
from .mask_head import MaskFeatures
from .position_encoding import PositionEmbeddingSine
from .transformer import Transformer, TransformerDecoder

#: the transformers a DETR-style model can run on (``transformer['type']``; DETR's by default)
TRANSFORMERS = {'Transformer': Transformer, 'DeformableTransformer': DeformableTransformer}


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


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``log(x / (1 - x))`` with ``x`` clamped to ``[0, 1]`` and both terms to at least ``eps``."""
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def decode_boxes(deltas: torch.Tensor, references: torch.Tensor | None) -> torch.Tensor:
    """Box-head outputs ``(..., 4)`` -> normalised cxcywh boxes in float32 (also under autocast):
    ``sigmoid(deltas)`` (DETR), or, with the reference points ``(..., 2)`` the queries read
    (Deformable DETR), the centre ``sigmoid(delta + inverse_sigmoid(reference))`` and the size
    ``sigmoid(delta)``."""
    deltas = deltas.float()
    if references is None:
        return deltas.sigmoid()
    centres = deltas[..., :2] + inverse_sigmoid(references.float())
    return torch.cat([centres, deltas[..., 2:]], -1).sigmoid()


def init_reference_box_head(head: MLP) -> MLP:
    """Deformable DETR's box-head initialisation: a zero last layer with size bias -2, so every
    query starts with its box centred on its reference point, ``sigmoid(-2)`` wide and high."""
    nn.init.zeros_(head.layers[-1].weight)
    nn.init.zeros_(head.layers[-1].bias)
    nn.init.constant_(head.layers[-1].bias[2:], -2.0)
    return head


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
    map at the mask branch's level (``feature_level``; C5 by default) projected to ``(B, d, h,
    w)``; ``mask``: its padding ``(B, h, w)``; ``hs``: decoder outputs of every layer ``(L, B, Q,
    d)``; ``memory``: the encoder output at that level ``(B, d, h, w)``; ``references``: the
    reference point ``(x, y)`` each decoder layer's queries read ``(L, B, Q, 2)`` (deformable
    transformer; ``None`` on DETR's).
    """

    features: list[torch.Tensor]
    src: torch.Tensor
    mask: torch.Tensor
    hs: torch.Tensor
    memory: torch.Tensor
    references: torch.Tensor | None = None

    def mask_features(self) -> MaskFeatures:
        """The maps the mask branch reads: ``memory`` with its padding ``mask``, ``src`` and the
        backbone's C4, C3, C2."""
        return MaskFeatures.at_level(self.memory, self.mask, self.src, self.features)


#: what DETR's decoders read: memory ``(S, B, d)``, its padding ``(B, S)``, positions ``(S, B, d)``
DETRMemory = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass
class Encoded:
    """What :meth:`DETRBase.encode` computes for a batch: ``features`` C2..C5, the mask branch's
    inputs ``mask_features`` (:class:`~.mask_head.MaskFeatures`) and what every decoder reads,
    ``memory`` (DETR: :data:`DETRMemory`; deformable:
    :class:`~.deformable_transformer.DeformableMemory`)."""

    features: list[torch.Tensor]
    mask_features: MaskFeatures
    memory: DETRMemory | DeformableMemory


class DETRBase(PSGModel):
    """Backbone (with sine positional encoding), input projection, ``num_queries`` learned query
    embeddings and a transformer. Heads are added by subclasses, which call
    :meth:`run_transformer` (or :meth:`encode` and :meth:`decode`, to run several decoders on one
    memory), build their box heads with :meth:`box_head` and decode boxes with
    :func:`decode_boxes`.

    ``backbone`` is a MODELS config (e.g. ``dict(type='ResNet', depth=50)``) of a module exposing
    ``num_channels``. ``transformer`` holds the transformer's arguments and, optionally, its
    ``type`` (:data:`TRANSFORMERS`):

    * ``'Transformer'`` (default), DETR's: it reads the ``feature_level`` map through a 1x1
      projection ``input_proj``; queries are ``d`` wide. ``feature_level``: ``3`` (C5, stride 32)
      as DETR, ``2`` (C4, stride 16) for small images, where C5 leaves a few tokens per object at
      most.
    * ``'DeformableTransformer'``, Deformable DETR's: it reads C3..C5 and extra levels
      (:mod:`.deformable_input`), queries are ``2d`` wide (position and target) and carry
      reference points, so boxes are decoded relative to them. ``feature_level`` names the level
      whose memory the mask branch attends to (:mod:`.deformable_mask_features`); it must be one
      the transformer reads.
    """

    def __init__(self, backbone: Mapping[str, Any], transformer: Mapping[str, Any],
                 num_queries: int = 100, feature_level: int = 3) -> None:
        super().__init__()
        args = dict(transformer)
        kind = args.pop('type', 'Transformer')
        if kind not in TRANSFORMERS:
            raise ValueError(f'{type(self).__name__}: transformer type must be one of '
                             f'{sorted(TRANSFORMERS)}, got {kind!r}')
        self.transformer = TRANSFORMERS[kind](**args)
        self.deformable = kind == 'DeformableTransformer'
        d = self.transformer.d_model
        levels = (backbone_levels(self.transformer.num_feature_levels) if self.deformable
                  else None)
        trunk = MODELS.build(backbone)
        if not 0 <= feature_level < len(trunk.num_channels):
            raise ValueError(f'feature_level must be in 0..{len(trunk.num_channels) - 1} (C2..C5), '
                             f'got {feature_level}')
        self.feature_level = feature_level
        if self.deformable:
            if feature_level not in levels:
                raise ValueError(
                    f'feature_level {feature_level} (C{feature_level + 2}) is not a map the '
                    f'deformable transformer reads (C{", C".join(str(i + 2) for i in levels)})')
            self.backbone_levels = levels
            self.mask_level = levels.index(feature_level)
            self.backbone = Joiner(trunk, deformable_position_encoding(d))
            self.input_proj = level_projections([trunk.num_channels[i] for i in levels], d,
                                                self.transformer.num_feature_levels)
            self.query_embed = nn.Embedding(num_queries, 2 * d)
        else:
            self.backbone = Joiner(trunk, PositionEmbeddingSine(d // 2, normalize=True))
            self.input_proj = nn.Conv2d(trunk.num_channels[feature_level], d, kernel_size=1)
            self.query_embed = nn.Embedding(num_queries, d)
        self.num_queries = num_queries

    def box_head(self) -> MLP:
        """DETR's 3-layer box MLP (``d -> d -> d -> 4``); on the deformable transformer initialised
        as Deformable DETR's (:func:`init_reference_box_head`)."""
        d = self.transformer.d_model
        head = MLP(d, d, 4, 3)
        return init_reference_box_head(head) if self.deformable else head

    def new_decoder(self) -> TransformerDecoder | DeformableTransformerDecoder:
        """A freshly initialised decoder like the transformer's (a second set of queries)."""
        return self.transformer.new_decoder()

    def embed(self, imgs: torch.Tensor, pad_mask: torch.Tensor
              ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        """DETR's transformer: backbone maps C2..C5 and the transformer's input: the
        ``feature_level`` map projected to ``(B, d, h, w)``, its padding mask ``(B, h, w)`` and
        positional encoding ``(B, d, h, w)``."""
        features, masks, pos = self.backbone(imgs, pad_mask, self.feature_level)
        return (features, self.input_proj(features[self.feature_level]), masks[self.feature_level],
                pos)

    def encode(self, imgs: torch.Tensor, pad_mask: torch.Tensor) -> Encoded:
        """Backbone, input projection and encoder for ``imgs (B, 3, H, W)`` with ``pad_mask (B, H,
        W)`` True on padding."""
        if self.deformable:
            features, srcs, masks, pos = embed_levels(self.backbone, self.input_proj,
                                                      self.backbone_levels, imgs, pad_mask)
            memory = self.transformer.encode(srcs, masks, pos)
            return Encoded(features, deformable_mask_features(features, srcs[self.mask_level],
                                                              memory, self.mask_level), memory)
        features, src, mask, pos = self.embed(imgs, pad_mask)
        memory, flat_mask, flat_pos = self.transformer.encode(src, mask, pos)
        b, d, h, w = src.shape
        return Encoded(features, MaskFeatures.at_level(memory.permute(1, 2, 0).reshape(b, d, h, w),
                                                       mask, src, features),
                       (memory, flat_mask, flat_pos))

    def decode(self, encoded: Encoded, query_embed: torch.Tensor,
               decoder: TransformerDecoder | DeformableTransformerDecoder | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run ``decoder`` (default: the transformer's) with the queries ``query_embed (Q, d)``
        (deformable: ``(Q, 2d)``). Returns every layer's output ``(L, B, Q, d)`` and the reference
        points each layer read ``(L, B, Q, 2)`` (``None`` on DETR's transformer)."""
        if not self.deformable:
            return (decoder or self.transformer.decoder)(query_embed, *encoded.memory), None
        out = self.transformer.decode(encoded.memory, query_embed, decoder)
        return out.hs, layer_references(out.init_reference, out.inter_references)

    def run_transformer(self, imgs: torch.Tensor, pad_mask: torch.Tensor) -> TransformerOutputs:
        encoded = self.encode(imgs, pad_mask)
        hs, references = self.decode(encoded, self.query_embed.weight)
        return self.outputs(encoded, hs, references)

    @staticmethod
    def outputs(encoded: Encoded, hs: torch.Tensor, references: torch.Tensor | None
                ) -> TransformerOutputs:
        """:class:`TransformerOutputs` of decoder outputs ``hs`` on ``encoded``."""
        masks = encoded.mask_features
        return TransformerOutputs(encoded.features, masks.src, masks.mask, hs, masks.memory,
                                  references)
