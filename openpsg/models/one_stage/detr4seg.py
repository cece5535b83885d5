"""DETR panoptic segmentation on PSG (OpenPSG's ``detr4seg`` baseline).

Parameter names equal those of facebookresearch/detr's panoptic checkpoints once their ``detr.``
prefix is stripped (``bbox_attention.q_linear.weight``, ``mask_head.lay1.weight`` ...), which is what
``tools/convert_detr_checkpoint.py`` writes.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ...datasets.errors import DatasetError, problem
from ...registry import MODELS
from ...structures import (NUM_CLASSES, NUM_THING_CLASSES, VOID, Batch, ImageMeta, Prediction,
                           Sample, id_map_to_masks, logits_to_original, masks_to_boxes,
                           no_relations, upsample_stride)
from ..losses import dice_loss, sigmoid_focal_loss
from .detr import DETR, TransformerOutputs, box_targets, flatten_matches
from .mask_head import MaskHeadSmallConv, MHAttentionMap, predict_masks
from .matcher import Match


def padded_target_masks(samples: list[Sample], indices: list[Match], size: tuple[int, int]
                        ) -> torch.Tensor:
    """The matched targets' masks ``(K, H, W)`` float, zero-padded to the batch size ``(H, W)``,
    in the order of :func:`~.detr.flatten_matches`."""
    out = []
    for s, (_, target_idx) in zip(samples, indices):
        expected = (len(s.labels), *s.img.shape[1:])
        if tuple(s.masks.shape) != expected:
            raise DatasetError(problem(
                s.meta.file_name, s.meta.image_id, 'masks',
                f'DETR4Seg needs one mask per object at the image size {expected}, got '
                f'{tuple(s.masks.shape)} (load masks with LoadPanopticAnnotations)'))
        masks = s.masks[target_idx].float()
        out.append(F.pad(masks, (0, size[1] - masks.shape[2], 0, size[0] - masks.shape[1])))
    return torch.cat(out)


def stuff_groups(labels: np.ndarray, num_thing_classes: int) -> np.ndarray:
    """Segment index of each query: things get one segment each, stuff queries of the same class
    share one. ``labels (K,)`` -> ``(K,)`` int64 in ``0..S-1``."""
    segment = np.empty(len(labels), np.int64)
    stuff_segment: dict[int, int] = {}
    count = 0
    for k, label in enumerate(labels.tolist()):
        if label >= num_thing_classes and label in stuff_segment:
            segment[k] = stuff_segment[label]
            continue
        segment[k] = count
        if label >= num_thing_classes:
            stuff_segment[label] = count
        count += 1
    return segment


def panoptic_prediction(meta: ImageMeta, logits: torch.Tensor | None, labels: np.ndarray,
                        scores: np.ndarray, num_thing_classes: int = NUM_THING_CLASSES
                        ) -> Prediction:
    """One image's panoptic :class:`~openpsg.structures.Prediction` from its kept queries.

    ``logits (K, h, w)``: stride-4 mask logits of the padded batch image; ``labels (K,)``,
    ``scores (K,)``. Logits go to ``meta.ori_shape`` with
    :func:`~openpsg.structures.logits_to_original` (bilinear); each pixel goes to the query with the
    largest logit; stuff queries of one class (label >= ``num_thing_classes``) form one segment
    scored by their best score; segments without pixels are dropped; the rest are ranked by score.
    With no query (``logits`` None or ``K = 0``) the prediction is empty and all void.
    """
    if logits is None or not len(labels):
        return Prediction.empty(meta.image_id, tuple(meta.ori_shape))
    full = logits_to_original(logits, meta)
    segment_of_query = stuff_groups(labels, num_thing_classes)
    id_map = segment_of_query[full.argmax(0).cpu().numpy()]
    num = int(segment_of_query.max()) + 1
    seg_labels = np.zeros(num, np.int64)
    seg_labels[segment_of_query] = labels
    seg_scores = np.zeros(num, np.float32)
    np.maximum.at(seg_scores, segment_of_query, scores)
    area = np.bincount(id_map.ravel(), minlength=num)
    order = [s for s in np.argsort(-seg_scores, kind='stable') if area[s] > 0]
    renumber = np.full(num, VOID, np.int32)
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
    object" and has probability > ``threshold`` are kept and :func:`panoptic_prediction` turns their
    masks into the image's panoptic segmentation (stuff classes: labels >= ``num_thing_classes``).
    """

    default_loss_weights = {'ce': 1.0, 'bbox': 5.0, 'giou': 2.0, 'mask': 1.0, 'dice': 1.0}

    def __init__(self, backbone: Mapping[str, Any], transformer: Mapping[str, Any],
                 num_classes: int = NUM_CLASSES, num_queries: int = 100, aux_loss: bool = True,
                 eos_coef: float = 0.1, matcher: Mapping[str, float] | None = None,
                 loss_weights: Mapping[str, float] | None = None, threshold: float = 0.85,
                 num_thing_classes: int = NUM_THING_CLASSES, focal_alpha: float = 0.25,
                 focal_gamma: float = 2.0, feature_level: int = 3) -> None:
        super().__init__(backbone, transformer, num_classes, num_queries, aux_loss, eos_coef,
                         matcher, loss_weights, feature_level)
        d, nhead = self.transformer.d_model, self.transformer.nhead
        c2, c3, c4, _ = self.backbone[0].num_channels
        self.bbox_attention = MHAttentionMap(d, d, nhead, dropout=0.0)
        self.mask_head = MaskHeadSmallConv(d + nhead, [c4, c3, c2], d)
        self.threshold = threshold
        self.num_thing_classes = num_thing_classes
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma

    def mask_logits(self, out: TransformerOutputs, batch_idx: torch.Tensor,
                    query_idx: torch.Tensor) -> torch.Tensor:
        """Stride-4 mask logits ``(K, H/4, W/4)`` of the last decoder layer's queries
        ``(batch_idx, query_idx)``."""
        fpns = [out.features[2], out.features[1], out.features[0]]
        return predict_masks(self.bbox_attention, self.mask_head, out.hs[-1][batch_idx, query_idx],
                             batch_idx, out.src, out.memory, out.mask, fpns)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        out = self.run_transformer(batch.imgs, batch.pad_mask)
        logits, boxes = self.predict_boxes(out.hs)
        targets = box_targets(batch.samples, self.num_classes)
        losses, indices, num_boxes = self.detection_losses(logits, boxes, targets)
        size = tuple(batch.imgs.shape[-2:])
        target_masks = padded_target_masks(batch.samples, indices, size).flatten(1)
        pred_masks = upsample_stride(self.mask_logits(out, *flatten_matches(indices)), 4,
                                    size).flatten(1)
        losses['loss_mask'] = self.loss_weights['mask'] * sigmoid_focal_loss(
            pred_masks, target_masks, num_boxes, self.focal_alpha, self.focal_gamma)
        losses['loss_dice'] = self.loss_weights['dice'] * dice_loss(pred_masks, target_masks, num_boxes)
        return losses

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[Prediction]:
        out = self.run_transformer(batch.imgs, batch.pad_mask)
        scores, labels = self.class_embed(out.hs[-1]).softmax(-1).max(-1)
        keep = (labels != self.num_classes) & (scores > self.threshold)
        batch_idx, query_idx = keep.nonzero(as_tuple=True)
        masks = self.mask_logits(out, batch_idx, query_idx) if len(batch_idx) else None
        predictions = []
        for b, meta in enumerate(batch.metas):
            sel = batch_idx == b
            predictions.append(panoptic_prediction(
                meta, None if masks is None else masks[sel], labels[b, query_idx[sel]].cpu().numpy(),
                scores[b, query_idx[sel]].float().cpu().numpy(), self.num_thing_classes))
        return predictions
