"""Deformable DETR (Zhu et al., ICLR'21): a set-prediction box detector on multi-scale deformable
attention, which converges about ten times faster than DETR.

:class:`DeformableDETRBase` owns the parts every model on this transformer shares: the backbone
(a :class:`~.detr.Joiner` of a registered ResNet and the sine position encoding with Deformable
DETR's normalisation), ``input_proj`` (one 1x1 conv + GroupNorm(32) per backbone level C3..C5 and a
3x3/2 conv + GroupNorm(32) per extra level, the first on C5), ``query_embed`` ``(Q, 2d)`` and the
:class:`~.deformable_transformer.DeformableTransformer`. :class:`DeformableDETR` adds the class and
box heads, the matching and the losses. Parameter names follow fundamentalvision/Deformable-DETR
(``backbone.0.body.layer2.0.conv1.weight``, ``input_proj.3.1.weight``, ``query_embed.weight``,
``transformer.level_embed``, ``class_embed.0.weight``, ``bbox_embed.5.layers.2.bias`` ...), so its
checkpoints load as they are (see ``tools/convert_deformable_detr_checkpoint.py``).

Boxes inside the model are ``cxcywh`` normalised by the unpadded input size (``meta.img_shape``).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torchvision.ops import box_convert

from ...registry import MODELS
from ...structures import NUM_CLASSES, Batch, Prediction, no_relations, normalized_boxes_to_original
from ..base import PSGModel
from ..losses import giou_loss, l1_loss, sigmoid_focal_classification
from ..options import checked_options
from .deformable_input import (backbone_levels, deformable_position_encoding, embed_levels,
                               level_projections)
from .deformable_transformer import (DeformableTransformer, DeformableTransformerOutputs,
                                     layer_references)
from .deformable_mask_features import deformable_mask_features
from .detr_base import MLP, Joiner, decode_boxes, init_reference_box_head
from .mask_head import MaskFeatures
from .matcher import FocalHungarianMatcher, Match
from .set_criterion import SetCriterion, class_targets, flatten_matches, num_targets_for_norm
from .targets import Target, box_targets

#: prior probability of every class at initialisation (the class bias is -log((1 - p) / p))
PRIOR_PROB = 0.01
#: ``last_terms(matches, num_boxes)`` of :meth:`DeformableDETR.detection_losses`
LastTermsFn = Callable[[list[Match], float], dict[str, torch.Tensor]]


class DeformableDETRBase(PSGModel):
    """Backbone, per-level input projections, ``num_queries`` learned queries of width ``2d`` and a
    :class:`~.deformable_transformer.DeformableTransformer` (``transformer`` holds its arguments,
    ``num_feature_levels`` among them). Heads are added by subclasses, which call
    :meth:`run_transformer` (or :meth:`embed` and the transformer, when a per-query mask branch
    needs the projected maps: :meth:`mask_features`).

    ``backbone`` is a MODELS config (e.g. ``dict(type='ResNet', depth=50)``) of a module returning
    C2..C5 and exposing ``num_channels``; the levels the transformer reads and their projections
    are :mod:`.deformable_input`'s.
    """

    def __init__(self, backbone: Mapping[str, Any], transformer: Mapping[str, Any],
                 num_queries: int = 300) -> None:
        super().__init__()
        self.transformer = DeformableTransformer(**transformer)
        d, levels = self.transformer.d_model, self.transformer.num_feature_levels
        self.backbone_levels = backbone_levels(levels)
        trunk = MODELS.build(backbone)
        self.backbone = Joiner(trunk, deformable_position_encoding(d))
        self.input_proj = level_projections([trunk.num_channels[i] for i in self.backbone_levels],
                                            d, levels)
        self.query_embed = nn.Embedding(num_queries, 2 * d)
        self.num_queries = num_queries

    def embed(self, imgs: torch.Tensor, pad_mask: torch.Tensor
              ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor],
                         list[torch.Tensor]]:
        """Backbone maps C2..C5 and the transformer's inputs per level for ``imgs (B, 3, H, W)``
        with ``pad_mask (B, H, W)`` True on padding (:func:`~.deformable_input.embed_levels`)."""
        return embed_levels(self.backbone, self.input_proj, self.backbone_levels, imgs, pad_mask)

    def run_transformer(self, imgs: torch.Tensor, pad_mask: torch.Tensor
                        ) -> tuple[list[torch.Tensor], DeformableTransformerOutputs]:
        """Backbone maps C2..C5 ``(B, C_i, H_i, W_i)`` and the transformer's outputs (see
        :meth:`embed`)."""
        features, srcs, masks, pos = self.embed(imgs, pad_mask)
        return features, self.transformer(srcs, masks, pos, self.query_embed.weight)

    def mask_memory_level(self, backbone_level: int) -> int:
        """The transformer level projected from backbone map ``backbone_level`` (3: C5, stride
        32; 2: C4, stride 16), whose memory DETR's mask branch attends over. The mask head refines
        upwards from it through C4, C3 and C2, so it must be C4 or C5 and read by the
        transformer; otherwise ``ValueError``."""
        if backbone_level not in (2, 3) or backbone_level not in self.backbone_levels:
            read = [f'C{i + 2}' for i in self.backbone_levels]
            raise ValueError(f'{type(self).__name__}: the mask branch attends over the memory of '
                             f'C4 or C5 (backbone level 2 or 3) among the maps the transformer '
                             f'reads ({read}), got {backbone_level}')
        return self.backbone_levels.index(backbone_level)

    def mask_features(self, features: list[torch.Tensor], srcs: list[torch.Tensor],
                      out: DeformableTransformerOutputs, backbone_level: int = 3
                      ) -> MaskFeatures:
        """What DETR's mask branch (:mod:`.mask_head`) reads from the multi-scale memory of
        ``out``: the level :meth:`mask_memory_level` (:mod:`.deformable_mask_features`).
        ``features``, ``srcs`` as :meth:`embed` returns them."""
        level = self.mask_memory_level(backbone_level)
        return deformable_mask_features(features, srcs[level], out.encoder_memory(), level)


@MODELS.register()
class DeformableDETR(DeformableDETRBase):
    """Deformable DETR box detector: ``num_classes`` sigmoid class logits (no "no object"
    logit) and a 3-layer box MLP predicting offsets from each query's reference point, applied
    to every decoder layer (one head shared by all layers, registered once per layer as
    ``class_embed.{i}`` / ``bbox_embed.{i}``, the reference's layout without box refinement).

    Training matches every decoder layer's predictions to the targets with
    :class:`~.matcher.FocalHungarianMatcher` (``matcher``: ``cost_class`` 2, ``cost_bbox`` 5,
    ``cost_giou`` 2, focal ``alpha`` 0.25, ``gamma`` 2) and sums the sigmoid focal classification
    loss (``focal_alpha``, ``focal_gamma``; normalised as the reference: summed over queries and
    classes, divided by the number of targets), L1 and GIoU, weighted by ``loss_weights`` (``ce``
    2, ``bbox`` 5, ``giou`` 2). Keys: ``loss_ce``, ``loss_bbox``, ``loss_giou`` for the last layer,
    ``loss_ce_d{i}`` ... for the others (``aux_loss=False`` keeps only the last).

    ``predict`` keeps the ``test_cfg['max_per_img']`` (100) best (query, class) pairs by sigmoid
    probability, as the reference's post-processing (one query may appear with several classes),
    as xyxy boxes in original image pixels; no masks, no relations.
    """

    default_loss_weights = {'ce': 2.0, 'bbox': 5.0, 'giou': 2.0}
    default_test_cfg = {'max_per_img': 100}
    #: built from ``matcher`` (a subclass matching by more terms names its own)
    matcher_type: type[FocalHungarianMatcher] = FocalHungarianMatcher

    def __init__(self, backbone: Mapping[str, Any], transformer: Mapping[str, Any],
                 num_classes: int = NUM_CLASSES, num_queries: int = 300, aux_loss: bool = True,
                 matcher: Mapping[str, float] | None = None,
                 loss_weights: Mapping[str, float] | None = None, focal_alpha: float = 0.25,
                 focal_gamma: float = 2.0, test_cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__(backbone, transformer, num_queries)
        d = self.transformer.d_model
        class_embed = nn.Linear(d, num_classes)
        nn.init.constant_(class_embed.bias, -math.log((1 - PRIOR_PROB) / PRIOR_PROB))
        bbox_embed = init_reference_box_head(MLP(d, d, 4, 3))
        num_layers = len(self.transformer.decoder.layers)
        self.class_embed = nn.ModuleList([class_embed] * num_layers)
        self.bbox_embed = nn.ModuleList([bbox_embed] * num_layers)
        self.num_classes = num_classes
        self.aux_loss = aux_loss
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.matcher = self.matcher_type(**(matcher or {}))
        name = type(self).__name__
        self.loss_weights = checked_options(self.default_loss_weights, loss_weights, name,
                                            'loss_weights')
        self.test_cfg = checked_options(self.default_test_cfg, test_cfg, name, 'test_cfg')
        self.criterion = SetCriterion(self.loss_weights, aux_loss)

    def predict_boxes(self, out: DeformableTransformerOutputs
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits ``(L, B, Q, C)`` and normalised cxcywh boxes ``(L, B, Q, 4)`` of every
        decoder layer: ``sigmoid(delta + inverse_sigmoid(reference))`` on the centre,
        ``sigmoid(delta)`` on the size, where layer ``l`` uses the reference points it read.
        Both are float32 also under autocast (matching, losses and post-processing read them)."""
        references = layer_references(out.init_reference, out.inter_references)
        logits = torch.stack([head(h) for head, h in zip(self.class_embed, out.hs)]).float()
        deltas = torch.stack([head(h) for head, h in zip(self.bbox_embed, out.hs)])
        return logits, decode_boxes(deltas, references)

    def detection_losses(self, logits: torch.Tensor, boxes: torch.Tensor, targets: list[Target],
                         match_last: Callable[[], list[Match]] | None = None,
                         last_terms: LastTermsFn | None = None
                         ) -> tuple[dict[str, torch.Tensor], list[Match], float]:
        """Weighted class/box losses of every decoder layer (``logits``, ``boxes`` as returned by
        :meth:`predict_boxes`). Returns the losses, the last layer's matches and the normaliser
        (targets per process, at least 1).

        A model with more outputs on the last layer (a mask branch) passes ``match_last()``, which
        matches that layer instead of :attr:`matcher`, and ``last_terms(matches, num_boxes)``,
        which returns that layer's further unweighted loss terms."""
        num_boxes = num_targets_for_norm(sum(len(t[0]) for t in targets), logits.device)
        last = len(logits) - 1

        def match(layer: int) -> list[Match]:
            if layer == last and match_last is not None:
                return match_last()
            return self.matcher(logits[layer], boxes[layer], targets)

        def terms(layer: int, matches: list[Match], is_last: bool) -> dict[str, torch.Tensor]:
            values = self.box_terms(logits[layer], boxes[layer], targets, matches, num_boxes)
            if is_last and last_terms is not None:
                values.update(last_terms(matches, num_boxes))
            return values

        losses, matches = self.criterion(len(logits), match, terms)
        return losses, matches, num_boxes

    def box_terms(self, logits: torch.Tensor, boxes: torch.Tensor, targets: list[Target],
                  matches: list[Match], num_boxes: float) -> dict[str, torch.Tensor]:
        """Unweighted focal class, L1 and GIoU losses of one decoder layer (``logits (B, Q, C)``,
        ``boxes (B, Q, 4)``), divided by ``num_boxes``."""
        batch_idx, query_idx = flatten_matches(matches)
        labels = class_targets(logits, matches, [t[0] for t in targets], self.num_classes)
        matched = boxes[batch_idx, query_idx]
        target_boxes = torch.cat([t[1][j] for t, (_, j) in zip(targets, matches)])
        return {
            'ce': sigmoid_focal_classification(logits, labels, num_boxes, self.focal_alpha,
                                               self.focal_gamma),
            'bbox': l1_loss(matched, target_boxes, num_boxes),
            'giou': giou_loss(box_convert(matched, 'cxcywh', 'xyxy'),
                              box_convert(target_boxes, 'cxcywh', 'xyxy'), num_boxes),
        }

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        _, out = self.run_transformer(batch.imgs, batch.pad_mask)
        logits, boxes = self.predict_boxes(out)
        return self.detection_losses(logits, boxes, box_targets(batch.samples, self.num_classes))[0]

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[Prediction]:
        _, out = self.run_transformer(batch.imgs, batch.pad_mask)
        logits, boxes = self.predict_boxes(out)
        probs = logits[-1].sigmoid().flatten(1)  # (B, Q * C), query-major
        scores, index = probs.topk(min(self.test_cfg['max_per_img'], probs.shape[1]), dim=1)
        predictions = []
        for b, meta in enumerate(batch.metas):
            query, labels = index[b] // self.num_classes, index[b] % self.num_classes
            predictions.append(Prediction(
                image_id=meta.image_id, labels=labels.cpu().numpy(),
                scores=scores[b].float().cpu().numpy(),
                boxes=normalized_boxes_to_original(boxes[-1, b, query], meta).float().cpu().numpy(),
                masks=None, **no_relations()))
        return predictions
