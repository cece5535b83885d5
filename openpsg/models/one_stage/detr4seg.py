"""DETR panoptic segmentation on PSG (OpenPSG's ``detr4seg`` baseline).

Parameter names equal those of facebookresearch/detr's panoptic checkpoints once their ``detr.``
prefix is stripped (``bbox_attention.q_linear.weight``, ``mask_head.lay1.weight`` ...), which is what
``tools/convert_detr_checkpoint.py`` writes.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from ...registry import MODELS
from ...structures import (NUM_CLASSES, NUM_THING_CLASSES, VOID, Batch, ImageMeta, Prediction,
                           id_map_to_masks, logits_to_original, masks_to_boxes, no_relations)
from ..losses import dice_loss, sigmoid_focal_loss
from ..options import checked_options
from .detr import DETR
from .detr_base import TransformerOutputs
from .mask_head import build_mask_branch, predict_masks
from .matcher import Match
from .panoptic_merge import merge_candidates
from .set_criterion import flatten_matches
from .targets import masks_at_loss_resolution


def panoptic_prediction(meta: ImageMeta, logits: torch.Tensor | None, labels: np.ndarray,
                        scores: np.ndarray, num_thing_classes: int = NUM_THING_CLASSES
                        ) -> Prediction:
    """One image's panoptic :class:`~openpsg.structures.Prediction` from its kept queries.

    ``logits (K, h, w)``: stride-4 mask logits of the padded batch image; ``labels (K,)``,
    ``scores (K,)``. Logits go to ``meta.ori_shape`` with
    :func:`~openpsg.structures.logits_to_original` (bilinear); each pixel goes to the query with the
    largest logit; stuff queries of one class (label >= ``num_thing_classes``) form one segment
    scored by their best score (:func:`~.panoptic_merge.merge_candidates`, things never merge);
    segments without pixels are dropped; the rest are ranked by score.
    With no query (``logits`` None or ``K = 0``) the prediction is empty and all void.
    """
    if logits is None or not len(labels):
        return Prediction.empty(meta.image_id, tuple(meta.ori_shape))
    _, id_map, seg_labels, seg_scores = merge_candidates(
        logits_to_original(logits, meta), None, labels, scores, None, num_thing_classes)
    order = np.argsort(-seg_scores, kind='stable')
    renumber = np.full(len(order) + 1, VOID, np.int32)
    renumber[order] = np.arange(len(order), dtype=np.int32)
    pan_id_map = renumber[id_map]
    seg_masks = id_map_to_masks(pan_id_map, len(order))
    return Prediction(image_id=meta.image_id, labels=seg_labels[order], scores=seg_scores[order],
                      boxes=masks_to_boxes(seg_masks), masks=seg_masks, **no_relations(),
                      pan_id_map=pan_id_map)


@MODELS.register()
class DETR4Seg(DETR):
    """DETR with the panoptic mask branch (:class:`~.mask_head.MHAttentionMap` +
    :class:`~.mask_head.MaskHeadSmallConv`) trained on PSG segments.

    Training: the :class:`~.detr.DETR` class/box losses on every decoder layer, plus, on the last
    layer's matched queries, sigmoid focal (``focal_alpha``, ``focal_gamma``) and dice losses
    between the predicted mask logits, bilinearly upsampled from stride 4 to the padded batch size,
    and the ground-truth masks zero-padded to that size (``loss_weights`` keys ``mask``, ``dice``).
    The mask branch runs only on the matched queries while training and on the kept ones at
    inference.

    Inference (:meth:`predict`): the last layer's queries whose most probable class is not "no
    object" and has probability > ``test_cfg['score_thr']`` (DETR's 0.85) are kept and
    :func:`panoptic_prediction` turns their masks into the image's panoptic segmentation (stuff
    classes: labels >= ``num_thing_classes``).
    """

    default_loss_weights = {'ce': 1.0, 'bbox': 5.0, 'giou': 2.0, 'mask': 1.0, 'dice': 1.0}
    default_test_cfg = {'score_thr': 0.85}

    def __init__(self, backbone: Mapping[str, Any], transformer: Mapping[str, Any],
                 num_classes: int = NUM_CLASSES, num_queries: int = 100, aux_loss: bool = True,
                 eos_coef: float = 0.1, matcher: Mapping[str, float] | None = None,
                 loss_weights: Mapping[str, float] | None = None,
                 test_cfg: Mapping[str, Any] | None = None,
                 num_thing_classes: int = NUM_THING_CLASSES, focal_alpha: float = 0.25,
                 focal_gamma: float = 2.0, feature_level: int = 3) -> None:
        super().__init__(backbone, transformer, num_classes, num_queries, aux_loss, eos_coef,
                         matcher, loss_weights, feature_level)
        self.bbox_attention, self.mask_head = build_mask_branch(
            self.transformer.d_model, self.transformer.nhead, self.backbone[0].num_channels)
        self.test_cfg = checked_options(self.default_test_cfg, test_cfg, 'DETR4Seg', 'test_cfg')
        self.num_thing_classes = num_thing_classes
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma

    def mask_logits(self, out: TransformerOutputs, batch_idx: torch.Tensor,
                    query_idx: torch.Tensor) -> torch.Tensor:
        """Stride-4 mask logits ``(K, H/4, W/4)`` of the last decoder layer's queries
        ``(batch_idx, query_idx)``."""
        return predict_masks(self.bbox_attention, self.mask_head, out.hs[-1][batch_idx, query_idx],
                             batch_idx, out.mask_features())

    def last_layer_terms(self, out: TransformerOutputs, batch: Batch, matches: list[Match],
                         num_boxes: float) -> dict[str, torch.Tensor]:
        """Focal and dice losses of the matched queries' masks at the padded batch size."""
        pred, target = masks_at_loss_resolution(
            self.mask_logits(out, *flatten_matches(matches)), batch.samples,
            [j for _, j in matches], tuple(batch.imgs.shape[-2:]), 'input', type(self).__name__)
        return {'mask': sigmoid_focal_loss(pred, target, num_boxes, self.focal_alpha,
                                           self.focal_gamma),
                'dice': dice_loss(pred, target, num_boxes)}

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[Prediction]:
        out = self.run_transformer(batch.imgs, batch.pad_mask)
        scores, labels = self.class_embed(out.hs[-1]).float().softmax(-1).max(-1)
        keep = (labels != self.num_classes) & (scores > self.test_cfg['score_thr'])
        batch_idx, query_idx = keep.nonzero(as_tuple=True)
        masks = self.mask_logits(out, batch_idx, query_idx) if len(batch_idx) else None
        predictions = []
        for b, meta in enumerate(batch.metas):
            sel = batch_idx == b
            predictions.append(panoptic_prediction(
                meta, None if masks is None else masks[sel], labels[b, query_idx[sel]].cpu().numpy(),
                scores[b, query_idx[sel]].float().cpu().numpy(), self.num_thing_classes))
        return predictions
