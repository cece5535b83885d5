"""DETR: backbone + transformer + learned queries, trained with Hungarian matching.

:class:`DETR` adds a class and a box head to :class:`~.detr_base.DETRBase` and trains them with
:class:`~.set_criterion.SetCriterion`: a complete box detector, and the base of
:class:`~.detr4seg.DETR4Seg`. Parameter names follow the facebookresearch/detr checkpoints
(``class_embed.weight``, ``bbox_embed.layers.0.weight`` ...).

Boxes inside the model are ``cxcywh`` normalised by the unpadded input size (``meta.img_shape``).
Losses are returned weighted, keyed ``loss_ce``, ``loss_bbox``, ``loss_giou`` for the last decoder
layer and ``loss_ce_d{i}`` ... for the auxiliary decoder layers ``i = 0 .. L - 2``.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn
from torchvision.ops import box_convert

from ...registry import MODELS
from ...structures import NUM_CLASSES, Batch, Prediction, no_relations, normalized_boxes_to_original
from ..options import checked_options
from ..losses import giou_loss, l1_loss, no_object_cross_entropy
from .detr_base import DETRBase, TransformerOutputs, decode_boxes
from .matcher import HungarianMatcher, Match
from .set_criterion import SetCriterion, class_targets, flatten_matches, num_targets_for_norm
from .targets import Target, box_targets


@MODELS.register()
class DETR(DETRBase):
    """DETR box detector: ``num_classes + 1`` class logits (last = no object) and a 3-layer box MLP
    per query and decoder layer.

    Training matches every decoder layer's predictions to the targets with
    :class:`~.matcher.HungarianMatcher` (weights ``matcher``) and sums cross-entropy (no-object
    class weight ``eos_coef``), L1 and GIoU (divided by the number of target boxes), weighted by
    ``loss_weights`` (keys ``ce``, ``bbox``, ``giou``); ``aux_loss=False`` keeps only the last
    layer's losses. ``predict`` returns every
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
        self.bbox_embed = self.box_head()
        self.num_classes = num_classes
        self.eos_coef = eos_coef
        self.matcher = HungarianMatcher(**(matcher or {}))
        self.loss_weights = checked_options(self.default_loss_weights, loss_weights,
                                            type(self).__name__, 'loss_weights')
        self.criterion = SetCriterion(self.loss_weights, aux_loss)

    def predict_boxes(self, hs: torch.Tensor, references: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder outputs ``(L, B, Q, d)`` (and, on the deformable transformer, the reference
        points they read ``(L, B, Q, 2)``) -> class logits ``(L, B, Q, C + 1)`` and normalised
        cxcywh boxes ``(L, B, Q, 4)``, float32 also under autocast (matching, losses and
        post-processing read them)."""
        return self.class_embed(hs).float(), decode_boxes(self.bbox_embed(hs), references)

    def box_terms(self, logits: torch.Tensor, boxes: torch.Tensor, targets: list[Target],
                  matches: list[Match], num_boxes: float) -> dict[str, torch.Tensor]:
        """Unweighted class and box losses of one decoder layer: ``logits (B, Q, C + 1)``, ``boxes
        (B, Q, 4)`` against ``targets`` under ``matches``; L1 on cxcywh and GIoU on xyxy, both
        normalised, divided by ``num_boxes``."""
        batch_idx, query_idx = flatten_matches(matches)
        matched = boxes[batch_idx, query_idx]
        target_boxes = torch.cat([t[1][j] for t, (_, j) in zip(targets, matches)])
        classes = class_targets(logits, matches, [t[0] for t in targets], self.num_classes)
        return {
            'ce': no_object_cross_entropy(logits, classes, self.eos_coef),
            'bbox': l1_loss(matched, target_boxes, num_boxes),
            'giou': giou_loss(box_convert(matched, 'cxcywh', 'xyxy'),
                              box_convert(target_boxes, 'cxcywh', 'xyxy'), num_boxes),
        }

    def last_layer_terms(self, out: TransformerOutputs, batch: Batch, matches: list[Match],
                         num_boxes: float) -> dict[str, torch.Tensor]:
        """Loss terms of the last decoder layer only (none for boxes; masks in subclasses)."""
        return {}

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        out = self.run_transformer(batch.imgs, batch.pad_mask)
        logits, boxes = self.predict_boxes(out.hs, out.references)
        targets = box_targets(batch.samples, self.num_classes)
        num_boxes = num_targets_for_norm(sum(len(t[0]) for t in targets), logits.device)

        def terms(layer: int, matches: list[Match], last: bool) -> dict[str, torch.Tensor]:
            values = self.box_terms(logits[layer], boxes[layer], targets, matches, num_boxes)
            if last:
                values.update(self.last_layer_terms(out, batch, matches, num_boxes))
            return values

        return self.criterion(len(logits), lambda layer: self.matcher(logits[layer], boxes[layer],
                                                                      targets), terms)[0]

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[Prediction]:
        out = self.run_transformer(batch.imgs, batch.pad_mask)
        logits, boxes = self.predict_boxes(
            out.hs[-1:], None if out.references is None else out.references[-1:])
        predictions = []
        for lg, bx, meta in zip(logits[0], boxes[0], batch.metas):
            scores, labels = lg.softmax(-1)[:, :-1].max(-1)
            order = scores.argsort(descending=True)
            xyxy = normalized_boxes_to_original(bx[order], meta)
            predictions.append(Prediction(
                image_id=meta.image_id, labels=labels[order].cpu().numpy(),
                scores=scores[order].float().cpu().numpy(), boxes=xyxy.float().cpu().numpy(),
                masks=None, **no_relations()))
        return predictions

