"""DETR: backbone + transformer + learned queries, trained with Hungarian matching.

:class:`DETRBase` owns the parts every set-prediction model here shares (``backbone``,
``input_proj``, ``query_embed``, ``transformer``) and runs them; :class:`DETR` adds the class and box
heads and the set losses and is a complete box detector. Attribute names follow the
facebookresearch/detr checkpoints, so ``backbone.0.body.layer1.0.conv1.weight``,
``transformer.decoder.norm.weight``, ``class_embed.weight``, ``bbox_embed.layers.0.weight`` ... load
as they are (see ``tools/convert_detr_checkpoint.py``).

Boxes inside the model are ``cxcywh`` normalised by the unpadded input size (``meta.img_shape``).
Losses are returned weighted, keyed ``loss_ce``, ``loss_bbox``, ``loss_giou`` for the last decoder
layer and ``loss_ce_d{i}`` ... for the auxiliary decoder layers ``i = 0 .. L - 2``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_convert

from ...datasets.errors import DatasetError, problem
from ...registry import MODELS
from ...structures import NUM_CLASSES, NUM_PREDICATES, Batch, Prediction, Sample
from ..base import PSGModel
from ..losses import giou_loss, l1_loss, no_object_cross_entropy
from ..options import checked_options
from .matcher import HungarianMatcher, Match
from .position_encoding import PositionEmbeddingSine
from .transformer import Transformer

Target = tuple[torch.Tensor, torch.Tensor]


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


def flatten_matches(indices: list[Match]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image ``(query_idx, target_idx)`` pairs -> ``(batch_idx, query_idx)`` over the batch."""
    batch_idx = torch.cat([torch.full_like(q, i) for i, (q, _) in enumerate(indices)])
    return batch_idx, torch.cat([q for q, _ in indices])


def num_targets_for_norm(count: int, device: torch.device) -> float:
    """Average number of targets per process (all processes when distributed), at least 1: the
    normaliser of the box and mask losses."""
    total = torch.tensor(float(count), device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(total)
        total = total / dist.get_world_size()
    return max(total.item(), 1.0)


def box_targets(samples: list[Sample], num_classes: int) -> list[Target]:
    """Per image ``(labels (N,), boxes (N, 4))`` with boxes as cxcywh normalised by ``img_shape``.

    Raises :class:`~openpsg.datasets.errors.DatasetError` naming the file, image and field for
    labels outside ``0..num_classes - 1`` and for empty or non-finite boxes.
    """
    targets = []
    for s in samples:
        meta = s.meta
        labels, boxes = s.labels, s.boxes.float()
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise DatasetError(problem(meta.file_name, meta.image_id, 'labels',
                                       f'values must be in 0..{num_classes - 1}, got '
                                       f'{labels.min().item()}..{labels.max().item()}'))
        if boxes.shape != (len(labels), 4) or not torch.isfinite(boxes).all() or \
                (boxes[:, 2:] <= boxes[:, :2]).any():
            raise DatasetError(problem(meta.file_name, meta.image_id, 'boxes',
                                       f'need {len(labels)} finite xyxy boxes with x2 > x1 and '
                                       f'y2 > y1, got shape {tuple(boxes.shape)}'))
        h, w = meta.img_shape
        scale = boxes.new_tensor([w, h, w, h])
        targets.append((labels, box_convert(boxes / scale, 'xyxy', 'cxcywh')))
    return targets


def empty_relations() -> dict[str, np.ndarray]:
    """The relation fields of a :class:`~openpsg.structures.Prediction` without relations."""
    return dict(pairs=np.zeros((0, 2), np.int64),
                predicate_scores=np.zeros((0, NUM_PREDICATES), np.float32),
                triplet_scores=np.zeros((0,), np.float32))


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


@MODELS.register()
class DETR(DETRBase):
    """DETR box detector: ``num_classes + 1`` class logits (last = no object) and a 3-layer box MLP
    per query and decoder layer.

    Training matches every decoder layer's predictions to the targets with
    :class:`~.matcher.HungarianMatcher` (weights ``matcher``) and sums cross-entropy (no-object
    class weight ``eos_coef``), L1 and GIoU, weighted by ``loss_weights`` (keys ``ce``, ``bbox``,
    ``giou``); ``aux_loss=False`` keeps only the last layer's losses. ``predict`` returns every
    query as an xyxy box in original image pixels, ranked by its best object-class probability
    (no masks, no relations).
    """

    default_loss_weights = {'ce': 1.0, 'bbox': 5.0, 'giou': 2.0}

    def __init__(self, backbone: Mapping[str, Any], transformer: Mapping[str, Any],
                 num_classes: int = NUM_CLASSES, num_queries: int = 100, aux_loss: bool = True,
                 eos_coef: float = 0.1, matcher: Mapping[str, float] | None = None,
                 loss_weights: Mapping[str, float] | None = None, feature_level: int = 3) -> None:
        super().__init__(backbone, transformer, num_queries, feature_level)
        d = self.transformer.d_model
        self.class_embed = nn.Linear(d, num_classes + 1)
        self.bbox_embed = MLP(d, d, 4, 3)
        self.num_classes = num_classes
        self.aux_loss = aux_loss
        self.eos_coef = eos_coef
        self.matcher = HungarianMatcher(**(matcher or {}))
        self.loss_weights = checked_options(self.default_loss_weights, loss_weights,
                                            type(self).__name__, 'loss_weights')

    def predict_boxes(self, hs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder outputs ``(L, B, Q, d)`` -> class logits ``(L, B, Q, C + 1)`` and normalised
        cxcywh boxes ``(L, B, Q, 4)``."""
        return self.class_embed(hs), self.bbox_embed(hs).sigmoid()

    def detection_losses(self, logits: torch.Tensor, boxes: torch.Tensor, targets: list[Target]
                         ) -> tuple[dict[str, torch.Tensor], list[Match], float]:
        """Weighted class/box losses of every decoder layer (``logits``, ``boxes`` as returned by
        :meth:`predict_boxes`). Returns the losses, the last layer's matches and the normaliser."""
        num_boxes = num_targets_for_norm(sum(len(t[0]) for t in targets), logits.device)
        layers = range(len(logits)) if self.aux_loss else [len(logits) - 1]
        losses: dict[str, torch.Tensor] = {}
        for layer in layers:
            indices = self.matcher(logits[layer], boxes[layer], targets)
            suffix = '' if layer == len(logits) - 1 else f'_d{layer}'
            for name, value in self._layer_losses(logits[layer], boxes[layer], targets, indices,
                                                  num_boxes).items():
                losses[f'loss_{name}{suffix}'] = self.loss_weights[name] * value
        return losses, indices, num_boxes

    def _layer_losses(self, logits: torch.Tensor, boxes: torch.Tensor, targets: list[Target],
                      indices: list[Match], num_boxes: float) -> dict[str, torch.Tensor]:
        batch_idx, query_idx = flatten_matches(indices)
        target_classes = torch.full(logits.shape[:2], self.num_classes, dtype=torch.int64,
                                    device=logits.device)
        target_classes[batch_idx, query_idx] = torch.cat(
            [t[0][j] for t, (_, j) in zip(targets, indices)])
        matched = boxes[batch_idx, query_idx]
        target_boxes = torch.cat([t[1][j] for t, (_, j) in zip(targets, indices)])
        return {
            'ce': no_object_cross_entropy(logits, target_classes, self.eos_coef),
            'bbox': l1_loss(matched, target_boxes, num_boxes),
            'giou': giou_loss(box_convert(matched, 'cxcywh', 'xyxy'),
                              box_convert(target_boxes, 'cxcywh', 'xyxy'), num_boxes),
        }

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        out = self.run_transformer(batch.imgs, batch.pad_mask)
        logits, boxes = self.predict_boxes(out.hs)
        return self.detection_losses(logits, boxes, box_targets(batch.samples, self.num_classes))[0]

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[Prediction]:
        out = self.run_transformer(batch.imgs, batch.pad_mask)
        logits, boxes = self.predict_boxes(out.hs[-1:])
        predictions = []
        for lg, bx, meta in zip(logits[0], boxes[0], batch.metas):
            scores, labels = lg.softmax(-1)[:, :-1].max(-1)
            order = scores.argsort(descending=True)
            h, w = meta.ori_shape
            xyxy = box_convert(bx[order], 'cxcywh', 'xyxy') * bx.new_tensor([w, h, w, h])
            if meta.flip:
                xyxy = torch.stack([w - xyxy[:, 2], xyxy[:, 1], w - xyxy[:, 0], xyxy[:, 3]], 1)
            predictions.append(Prediction(
                image_id=meta.image_id, labels=labels[order].cpu().numpy(),
                scores=scores[order].float().cpu().numpy(), boxes=xyxy.float().cpu().numpy(),
                masks=None, **empty_relations()))
        return predictions

