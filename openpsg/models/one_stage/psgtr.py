"""PSGTR (OpenPSG, ECCV'22): DETR whose queries are whole triplets.

Every query of a DETR transformer (:class:`~.detr_base.DETRBase`: ``backbone``, ``input_proj``,
``query_embed``, ``transformer`` - the names of DETR's checkpoints, so a converted DETR-panoptic
checkpoint initialises them) predicts, on every decoder layer, a subject class and box, an object
class and box and a predicate; on the last layer two DETR mask branches (attention map +
:class:`~.mask_head.MaskHeadSmallConv`) predict the subject and the object mask.

``transformer=dict(type='DeformableTransformer', ...)`` puts the same heads on Deformable DETR's
transformer (Deformable DETR's names, so a converted Deformable DETR checkpoint initialises the
shared parts): subject and object boxes are then decoded relative to the query's reference point
and the mask branches attend to the deformable memory's ``feature_level`` map.

Label spaces: objects ``0..C-1`` with ``C`` = "no object" (134 logits for PSG); predicates
``0..P-1`` with ``P`` = "no relation" (57 logits; OpenPSG's index 0 = no relation is our 56).

Training (OpenPSG's ``PSGTrHead``, through :class:`~.set_criterion.SetCriterion`): each decoder
layer's queries are matched to the image's GT triplets by :class:`~.triplet_matcher.HTriMatcher`;
subject and object cross-entropy on matched queries only (divided by their number), predicate
cross-entropy on all queries with weight ``no_relation_weight`` on the no-relation class (a
weighted mean: divided by ``#matched + no_relation_weight * #unmatched``), L1 (normalised cxcywh)
and GIoU (pixel xyxy) for subject and object boxes (divided by the number of matched queries,
``min(num_queries, #GT triplets)`` per image, averaged over processes, as OpenPSG); on the last
layer Dice losses of the matched queries' subject and object masks, upsampled (bilinear) from
stride 4 to half the padded batch size, against the GT masks zero-padded to the batch size and
nearest-downsampled to half of it (divided by the number of matched queries).

Inference: see :meth:`PSGTr.predict` and :mod:`.triplet_postprocess`.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...registry import MODELS
from ...structures import (CLASSES, NUM_CLASSES, NUM_PREDICATES, NUM_THING_CLASSES, Batch,
                           ImageMeta, Prediction, Sample)
from ..options import checked_options
from ..losses import dice_loss, mmdet_box_losses, no_object_cross_entropy
from ..sample_checks import checked_rels
from .detr_base import DETRBase, TransformerOutputs, decode_boxes
from .mask_head import build_mask_branch, predict_masks
from .matcher import Match
from .set_criterion import SetCriterion, class_targets, flatten_matches, num_targets_for_norm
from .targets import Size, box_targets, masks_at_loss_resolution
from .triplet_matcher import HTriMatcher, TripletOutputs, TripletTargets
from .triplet_postprocess import (Rows, check_output, dedup_triplets, legacy_prediction,
                                  logits_at_original, top_triplets, triplet_prediction)

WALL_OTHER_MERGED = CLASSES.index('wall-other-merged')  # 131, dropped by OpenPSG's PSGTR (bug)


def triplet_targets(samples: Sequence[Sample], num_classes: int, num_predicates: int
                    ) -> list[TripletTargets]:
    """Per image the GT triplets (labels and normalised cxcywh boxes of subject and object)."""
    targets = []
    for sample, (labels, boxes) in zip(samples, box_targets(list(samples), num_classes)):
        rels = checked_rels(sample, num_predicates)
        s, o = rels[:, 0], rels[:, 1]
        targets.append(TripletTargets(labels[s], labels[o], rels[:, 2], boxes[s], boxes[o]))
    return targets


@MODELS.register()
class PSGTr(DETRBase):
    """PSGTR: ``num_queries`` triplet queries (module docstring).

    Args:
        backbone, transformer, num_queries: see :class:`~.detr_base.DETRBase` (``transformer``'s
            ``type``: DETR's transformer by default, or ``'DeformableTransformer'``).
        num_classes, num_predicates: object classes and predicates (without the extra class).
        aux_loss: also supervise the class/box outputs of every earlier decoder layer.
        no_relation_weight: class weight of "no relation" in the predicate loss (OpenPSG 0.02).
        matcher: :class:`~.triplet_matcher.HTriMatcher` arguments.
        loss_weights: ``sub_ce, obj_ce, relation_ce, sub_bbox, obj_bbox, sub_giou, obj_giou,
            sub_dice, obj_dice``.
        test_cfg: ``max_per_img`` (rows ranked), ``mask_thr`` (binary masks), ``dedup_iou_thr``
            (triplet de-duplication), ``subject_score_thr``, ``object_score_thr``,
            ``predicate_score_thr`` (the rows of the panoptic merge are above all three;
            ``'legacy'`` rows ignore them), ``thing_iou_thr`` (panoptic merge of thing masks),
            ``claim_thr`` (``single_mpo``: pixels no candidate claims with a larger
            probability are void).
        output: ``'single_mpo'``, ``'legacy'`` (OpenPSG's ``eval_pan_rels=False``, behind its
            published numbers) or ``'openpsg_panoptic'`` (OpenPSG's ``eval_pan_rels=True``); see
            :mod:`.triplet_postprocess`.
        drop_wall_other_bug: reproduce OpenPSG's bug that drops every row whose subject or object
            is ``wall-other-merged`` before its panoptic merge; only with
            ``output='openpsg_panoptic'``.
        num_thing_classes: labels below are things, the others stuff (panoptic merge).
        feature_level: the backbone map the transformer reads (see :class:`~.detr_base.DETRBase`).
    """

    default_loss_weights = {'sub_ce': 1.0, 'obj_ce': 1.0, 'relation_ce': 2.0, 'sub_bbox': 5.0,
                            'obj_bbox': 5.0, 'sub_giou': 2.0, 'obj_giou': 2.0, 'sub_dice': 1.0,
                            'obj_dice': 1.0}
    default_test_cfg = {'max_per_img': 100, 'mask_thr': 0.85, 'dedup_iou_thr': 0.5,
                        'subject_score_thr': 0.5, 'object_score_thr': 0.5,
                        'predicate_score_thr': 0.3, 'thing_iou_thr': 0.5, 'claim_thr': 0.5}

    def __init__(self, backbone: Mapping[str, Any], transformer: Mapping[str, Any],
                 num_classes: int = NUM_CLASSES, num_predicates: int = NUM_PREDICATES,
                 num_queries: int = 100, aux_loss: bool = True, no_relation_weight: float = 0.02,
                 matcher: Mapping[str, float] | None = None,
                 loss_weights: Mapping[str, float] | None = None,
                 test_cfg: Mapping[str, Any] | None = None, output: str = 'single_mpo',
                 drop_wall_other_bug: bool = False,
                 num_thing_classes: int = NUM_THING_CLASSES, feature_level: int = 3) -> None:
        super().__init__(backbone, transformer, num_queries, feature_level)
        d, nhead = self.transformer.d_model, self.transformer.nhead
        channels = self.backbone[0].num_channels
        self.sub_class_embed = nn.Linear(d, num_classes + 1)
        self.sub_bbox_embed = self.box_head()
        self.obj_class_embed = nn.Linear(d, num_classes + 1)
        self.obj_bbox_embed = self.box_head()
        self.rel_class_embed = nn.Linear(d, num_predicates + 1)
        self.sub_bbox_attention, self.sub_mask_head = build_mask_branch(d, nhead, channels)
        self.obj_bbox_attention, self.obj_mask_head = build_mask_branch(d, nhead, channels)
        self.num_classes = num_classes
        self.num_predicates = num_predicates
        self.num_thing_classes = num_thing_classes
        self.no_relation_weight = no_relation_weight
        self.matcher = HTriMatcher(**(matcher or {}))
        self.loss_weights = checked_options(self.default_loss_weights, loss_weights, 'PSGTr',
                                            'loss_weights')
        self.criterion = SetCriterion(self.loss_weights, aux_loss)
        self.test_cfg = checked_options(self.default_test_cfg, test_cfg, 'PSGTr', 'test_cfg')
        self.output = check_output(output, 'PSGTr', 'drop_wall_other_bug', drop_wall_other_bug)
        self.drop_wall_other_bug = drop_wall_other_bug

    def forward_heads(self, batch: Batch) -> tuple[TransformerOutputs, TripletOutputs]:
        """Transformer outputs and every decoder layer's triplet outputs ``(L, B, Q, ...)``, float32
        also under autocast (matching, losses and post-processing read them)."""
        out = self.run_transformer(batch.imgs, batch.pad_mask)
        hs = out.hs
        return out, TripletOutputs(self.sub_class_embed(hs).float(),
                                   self.obj_class_embed(hs).float(),
                                   self.rel_class_embed(hs).float(),
                                   decode_boxes(self.sub_bbox_embed(hs), out.references),
                                   decode_boxes(self.obj_bbox_embed(hs), out.references))

    def mask_logits(self, branch: str, out: TransformerOutputs, batch_idx: torch.Tensor,
                    query_idx: torch.Tensor) -> torch.Tensor:
        """Stride-4 ``'sub'`` or ``'obj'`` mask logits ``(K, H/4, W/4)`` of last-layer queries."""
        attention, head = ((self.sub_bbox_attention, self.sub_mask_head) if branch == 'sub'
                           else (self.obj_bbox_attention, self.obj_mask_head))
        return predict_masks(attention, head, out.hs[-1][batch_idx, query_idx], batch_idx,
                             out.mask_features())

    def layer_losses(self, out: TripletOutputs, targets: Sequence[TripletTargets],
                     sizes: Sequence[Size], matches: Sequence[Match],
                     num_boxes: float) -> dict[str, torch.Tensor]:
        """Unweighted class and box losses of one decoder layer (``out`` without the layer dim);
        the box losses are divided by ``num_boxes``."""
        batch_idx, query_idx = flatten_matches(list(matches))
        matched = [TripletTargets(*(field[j] for field in t))
                   for t, (_, j) in zip(targets, matches)]
        tgt = TripletTargets(*(torch.cat(fields) for fields in zip(*matched)))
        num_matched = max(len(batch_idx), 1)
        rel_targets = class_targets(out.rel_logits, list(matches), [t.predicates for t in targets],
                                    self.num_predicates)
        pair_sizes = [sizes[b] for b in batch_idx.tolist()]
        sub_bbox, sub_giou = mmdet_box_losses(out.sub_boxes[batch_idx, query_idx], tgt.sub_boxes,
                                              pair_sizes, num_boxes)
        obj_bbox, obj_giou = mmdet_box_losses(out.obj_boxes[batch_idx, query_idx], tgt.obj_boxes,
                                              pair_sizes, num_boxes)
        return {
            'sub_ce': F.cross_entropy(out.sub_logits[batch_idx, query_idx], tgt.sub_labels,
                                      reduction='sum') / num_matched,
            'obj_ce': F.cross_entropy(out.obj_logits[batch_idx, query_idx], tgt.obj_labels,
                                      reduction='sum') / num_matched,
            'relation_ce': no_object_cross_entropy(out.rel_logits, rel_targets,
                                                   self.no_relation_weight),
            'sub_bbox': sub_bbox, 'obj_bbox': obj_bbox, 'sub_giou': sub_giou, 'obj_giou': obj_giou,
        }

    def mask_losses(self, out: TransformerOutputs, batch: Batch, matches: list[Match]
                    ) -> dict[str, torch.Tensor]:
        """Dice losses of the matched queries' subject and object masks at half the padded batch
        size, divided by the number of matched queries."""
        batch_idx, query_idx = flatten_matches(matches)
        num_masks = max(len(batch_idx), 1)
        losses = {}
        for branch, column in (('sub', 0), ('obj', 1)):
            picks = [s.rels.reshape(-1, 3)[j, column] for s, (_, j) in zip(batch.samples, matches)]
            pred, target = masks_at_loss_resolution(
                self.mask_logits(branch, out, batch_idx, query_idx), batch.samples, picks,
                tuple(batch.imgs.shape[-2:]), 'half', 'PSGTr')
            losses[f'{branch}_dice'] = dice_loss(pred, target, num_masks)
        return losses

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        out, heads = self.forward_heads(batch)
        targets = triplet_targets(batch.samples, self.num_classes, self.num_predicates)
        sizes = [s.meta.img_shape for s in batch.samples]
        num_matched = num_targets_for_norm(
            sum(min(self.num_queries, len(t.predicates)) for t in targets), batch.imgs.device)

        def layer(index: int) -> TripletOutputs:
            return TripletOutputs(*(field[index] for field in heads))

        def terms(index: int, matches: list[Match], last: bool) -> dict[str, torch.Tensor]:
            values = self.layer_losses(layer(index), targets, sizes, matches, num_matched)
            if last:
                values.update(self.mask_losses(out, batch, matches))
            return values

        return self.criterion(len(out.hs), lambda index: self.matcher(layer(index), targets, sizes),
                              terms)[0]

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[Prediction]:
        """Per image (last decoder layer), as OpenPSG's ``PSGTrHead``:

        1. subject/object class = argmax of the softmax without "no object", score = its value;
        2. the ``max_per_img`` best (query, predicate) cells of the predicate softmax, ranked;
        3. each row's subject/object mask = its query's mask logits at original size
           (:func:`~.triplet_postprocess.logits_at_original`; binary: ``sigmoid >
           mask_thr``);
        4. triplet de-duplication (:func:`~.triplet_postprocess.dedup_triplets`, ``dedup_iou_thr``):
           the ``'legacy'`` rows, returned with the panoptic map of step 5;
        5. rows kept with subject score > ``subject_score_thr``, object score >
           ``object_score_thr``, predicate score > ``predicate_score_thr`` (and, with
           ``drop_wall_other_bug``, neither label ``wall-other-merged``); their subject masks, then
           their object masks, are the candidates of the panoptic merge and of the
           ``'single_mpo'`` or ``'openpsg_panoptic'`` output
           (:func:`~.triplet_postprocess.triplet_prediction`).
        """
        out, heads = self.forward_heads(batch)
        return [self.predict_image(out, TripletOutputs(*(field[-1, b] for field in heads)), b, meta)
                for b, meta in enumerate(batch.metas)]

    def predict_image(self, out: TransformerOutputs, heads: TripletOutputs, b: int,
                      meta: ImageMeta) -> Prediction:
        cfg = self.test_cfg
        rank_scores, query, predicate, rel_probs = top_triplets(heads.rel_logits,
                                                                cfg['max_per_img'])
        sub_scores, sub_labels = heads.sub_logits.float().softmax(-1)[:, :-1].max(-1)
        obj_scores, obj_labels = heads.obj_logits.float().softmax(-1)[:, :-1].max(-1)
        used, row_query = query.unique(return_inverse=True)
        batch_idx = torch.full_like(used, b)
        # candidates: the subject masks of the used queries, then their object masks
        logits = torch.cat([logits_at_original(self.mask_logits(branch, out, batch_idx, used), meta,
                                               self.output) for branch in ('sub', 'obj')])
        labels = torch.cat([sub_labels[used], obj_labels[used]]).cpu().numpy()
        scores = torch.cat([sub_scores[used], obj_scores[used]]).cpu().numpy()
        per_row = row_query.cpu().numpy()
        rows = Rows(per_row, per_row + len(used), rel_probs[query].cpu().numpy(),
                    rank_scores.cpu().numpy())
        binary = (logits.sigmoid() > cfg['mask_thr']).cpu().numpy()
        deduplicated = dedup_triplets(labels[rows.sub], labels[rows.obj], predicate.cpu().numpy(),
                                      binary[rows.sub], binary[rows.obj], cfg['dedup_iou_thr'])
        passed = (deduplicated & (scores[rows.sub] > cfg['subject_score_thr'])
                  & (scores[rows.obj] > cfg['object_score_thr'])
                  & (rows.scores > cfg['predicate_score_thr']))
        if self.drop_wall_other_bug:
            passed &= ((labels[rows.sub] != WALL_OTHER_MERGED)
                       & (labels[rows.obj] != WALL_OTHER_MERGED))
        # the panoptic merge's candidates, as OpenPSG's: every passed row's subject, then object
        kept = rows.take(passed)
        cands = np.concatenate([kept.sub, kept.obj])
        num = len(kept.sub)
        panoptic = triplet_prediction(
            meta, logits[torch.as_tensor(cands, device=logits.device)], labels[cands],
            scores[cands], Rows(np.arange(num), np.arange(num) + num, kept.probs, kept.scores),
            'single_mpo' if self.output == 'single_mpo' else 'openpsg_panoptic',
            cfg['mask_thr'], cfg['thing_iou_thr'], self.num_thing_classes,
            cfg['claim_thr'])
        if self.output != 'legacy':
            return panoptic
        return legacy_prediction(meta, logits, labels, scores, rows.take(deduplicated), panoptic,
                                 cfg['mask_thr'])
