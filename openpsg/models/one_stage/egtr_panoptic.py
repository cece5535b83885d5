"""EGTR in the panoptic (PSG) setting: the scene graph's nodes are non-overlapping segments.

:class:`PanopticEGTR` is :class:`~.egtr.EGTR` (Deformable DETR detector, relation head on the
decoder self-attention, adaptive label smoothing, relation sampling, frequency bias) plus DETR's
per-query mask branch (:mod:`.mask_head`: ``bbox_attention`` = :class:`~.mask_head.MHAttentionMap`,
``mask_head`` = :class:`~.mask_head.MaskHeadSmallConv`, DETR-panoptic's names) on the last
decoder layer's queries.

**Where the mask branch reads.** DETR's mask head attends over one single-scale memory map and
refines upwards through the backbone's C4, C3 and C2. Here it reads the encoder memory of the
level projected from C5 (stride 32; ``mask_feature_level=3``, the default) reshaped to a map,
with that level's projected input and padding. Why: it is DETR-panoptic's own layout (attention
over the stride-32 memory, then C4/C3/C2); it is the cheapest choice (the attention map and the
first two conv stages run per query on the smallest map); and the finer levels are not lost, as
every token of the deformable encoder has sampled all levels, and the conv head adds C4, C3, C2.
``mask_feature_level=2`` reads the stride-16 level instead (four times the tokens per query),
for small images where C5 leaves a handful of tokens; on the synthetic 128-px scenes of the
tests it learnt no faster.

**Training** (last decoder layer; earlier layers, with ``aux_loss``, are matched and trained by
class and box only, as Deformable DETR):

* matching: Deformable DETR's cost (focal class 2, L1 5, GIoU 2) plus ``cost_mask`` (1) x the
  sigmoid focal mask cost and ``cost_dice`` (1) x the Dice cost
  (:class:`~.matcher.FocalMaskHungarianMatcher`), compared on the stride-4 grid of the mask
  logits against the ground-truth masks on that grid
  (:func:`~.targets.masks_on_logit_grid`). The mask branch runs on every query for this cost,
  without gradient and ``MATCH_CHUNK`` queries at a time, and again, with gradient, on the
  matched queries for the losses - so memory grows with the matched queries only;
* ``loss_mask`` (1) and ``loss_dice`` (1): DETR-panoptic's sigmoid focal (alpha 0.25, gamma 2)
  and Dice losses of the matched queries' masks, upsampled from stride 4 to the padded input,
  divided by the number of targets (DETR-panoptic's weights; OpenPSG's PSGTR also weights Dice
  1);
* the relation losses of :class:`~.egtr.EGTR`, smoothed by the full matched cost. Its
  perfect-match constant ``c_min`` comes from the matcher's five weighted terms
  (:func:`~.relation_smoothing.perfect_match_cost`); the minima of the focal and Dice mask costs
  are 0, so ``c_min`` keeps its box value (-29.63 with EGTR's weights) and a perfect match -
  class, box and mask - still gets target 1.

Relations are trained multi-label as EGTR (every annotated predicate of a pair is a positive), so
the PSG configs load relations with ``rel_mode='dedup'``: OpenPSG's ``'sample_one'`` would keep
one predicate per pair per epoch and turn the pair's other annotated predicates into negatives
of the independent sigmoids.

**Inference** (:meth:`PanopticEGTR.predict`): object score and class from the softmax over the
class logits (EGTR's rule); the queries with score > ``test_cfg['object_score_thr']`` are kept;
their mask logits, sampled at the original pixels (bilinear), compete per pixel (argmax), kept
stuff queries of one class merge into one segment, things never merge, and queries left without
a pixel vanish (:func:`~.panoptic_merge.merge_candidates`). Pairs are ranked as EGTR ranks them
(``max_p`` relation probability x subject score x object score, or per predicate without the
graph constraint) among the kept queries, re-indexed onto the segments, without the pairs that
would be self pairs or point at no segment, and with one row per segment pair (its best); the
``max_per_img`` best remain (:func:`~.pair_ranking.rank_segment_pairs`). ``no_relation_scores``
is left out: the predicate scores already include the connectivity.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from ...registry import MODELS
from ...structures import (NUM_THING_CLASSES, Batch, ImageMeta, Prediction, id_map_to_masks,
                           masks_to_boxes, original_shape, sample_logits_at_original)
from ..losses import dice_loss, sigmoid_focal_loss
from .deformable_transformer import DeformableTransformerOutputs
from .egtr import EGTR
from .mask_head import MaskFeatures, build_mask_branch, predict_masks
from .matcher import FocalMaskHungarianMatcher, Match
from .pair_ranking import rank_segment_pairs, softmax_object_scores
from .panoptic_merge import merge_candidates
from .set_criterion import flatten_matches
from .targets import box_targets, masks_at_loss_resolution, masks_on_logit_grid

#: queries per pass of the mask branch when it runs on every query (matching costs)
MATCH_CHUNK = 50


@MODELS.register()
class PanopticEGTR(EGTR):
    """EGTR with a per-query mask branch and panoptic output (module docstring).

    Args:
        backbone, transformer: as :class:`~.egtr.EGTR`; ``transformer.num_feature_levels`` must
            make the transformer read the backbone map ``mask_feature_level``.
        matcher: :class:`~.matcher.FocalMaskHungarianMatcher` arguments (``cost_class`` 2,
            ``cost_bbox`` 5, ``cost_giou`` 2, ``cost_mask`` 1, ``cost_dice`` 1, ``alpha``,
            ``gamma``).
        mask_feature_level: the backbone map whose memory level the mask branch attends over: 3
            (C5, stride 32) or 2 (C4, stride 16).
        num_thing_classes: labels below are things, the others stuff (stuff of one class merges).
        **egtr_args: every other :class:`~.egtr.EGTR` argument; ``loss_weights`` adds ``mask``
            (1) and ``dice`` (1), ``test_cfg`` adds ``object_score_thr`` (0.3).
    """

    default_loss_weights = {**EGTR.default_loss_weights, 'mask': 1.0, 'dice': 1.0}
    default_test_cfg = {**EGTR.default_test_cfg, 'object_score_thr': 0.3}
    matcher_type = FocalMaskHungarianMatcher

    def __init__(self, backbone: Mapping[str, Any], transformer: Mapping[str, Any],
                 mask_feature_level: int = 3, num_thing_classes: int = NUM_THING_CLASSES,
                 **egtr_args: Any) -> None:
        super().__init__(backbone, transformer, **egtr_args)
        self.mask_memory_level(mask_feature_level)
        self.bbox_attention, self.mask_head = build_mask_branch(
            self.transformer.d_model, self.transformer.nhead, self.backbone[0].num_channels)
        self.mask_feature_level = mask_feature_level
        self.num_thing_classes = num_thing_classes

    # ------------------------------------------------------------------------------ forward
    def forward_panoptic(self, batch: Batch
                         ) -> tuple[DeformableTransformerOutputs, MaskFeatures, torch.Tensor,
                                    torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Transformer outputs, the mask branch's features, class logits ``(L, B, Q, C)``, boxes
        ``(L, B, Q, 4)`` and :meth:`~.egtr.EGTR.relation_outputs` (predicate logits ``(B, Q, Q,
        P)``, connectivity logits ``(B, Q, Q)``, gates ``(B, Q, Q, L + 1)``)."""
        features, srcs, src_masks, pos = self.embed(batch.imgs, batch.pad_mask)
        out = self.transformer(srcs, src_masks, pos, self.query_embed.weight)
        logits, boxes = self.predict_boxes(out)
        masks = self.mask_features(features, srcs, out, self.mask_feature_level)
        return (out, masks, logits, boxes, *self.relation_outputs(out, logits[-1]))

    def mask_logits(self, queries: torch.Tensor, batch_idx: torch.Tensor,
                    features: MaskFeatures) -> torch.Tensor:
        """Stride-4 mask logits ``(K, h, w)`` of decoder outputs ``queries (K, d)`` of images
        ``batch_idx (K,)``."""
        return predict_masks(self.bbox_attention, self.mask_head, queries, batch_idx, features)

    @torch.no_grad()
    def all_mask_logits(self, queries: torch.Tensor, features: MaskFeatures) -> torch.Tensor:
        """Stride-4 mask logits ``(B, Q, h, w)`` of every query of ``queries (B, Q, d)``, without
        gradient, ``MATCH_CHUNK`` queries per pass."""
        b, q = queries.shape[:2]
        flat = queries.flatten(0, 1)
        batch_idx = torch.arange(b, device=queries.device).repeat_interleave(q)
        chunks = [self.mask_logits(flat[i:i + MATCH_CHUNK], batch_idx[i:i + MATCH_CHUNK], features)
                  for i in range(0, b * q, MATCH_CHUNK)]
        return torch.cat(chunks).view(b, q, *chunks[0].shape[-2:])

    # ------------------------------------------------------------------------------ training
    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        out, features, logits, boxes, rel, connectivity, gates = self.forward_panoptic(batch)
        samples, name = batch.samples, type(self).__name__
        size = tuple(batch.imgs.shape[-2:])
        targets = box_targets(samples, self.num_classes)
        queries = out.hs[-1]
        costs: list[torch.Tensor] = []  # the last layer's matched costs, filled by match_last

        def match_last() -> list[Match]:
            all_masks = self.all_mask_logits(queries, features)
            grid_masks = masks_on_logit_grid(samples, size, tuple(all_masks.shape[-2:]), name)
            matches, matched = self.matcher.match_with_masks(
                logits[-1], boxes[-1], all_masks.flatten(2), targets, grid_masks)
            costs.extend(matched)
            return matches

        def mask_terms(matches: list[Match], num_boxes: float) -> dict[str, torch.Tensor]:
            batch_idx, query_idx = flatten_matches(matches)
            pred, target = masks_at_loss_resolution(
                self.mask_logits(queries[batch_idx, query_idx], batch_idx, features), samples,
                [j for _, j in matches], size, 'input', name)
            return {'mask': sigmoid_focal_loss(pred, target, num_boxes, self.focal_alpha,
                                               self.focal_gamma),
                    'dice': dice_loss(pred, target, num_boxes)}

        losses, matches, _ = self.detection_losses(logits, boxes, targets, match_last, mask_terms)
        losses.update(self.relation_entries(rel, connectivity, gates, samples, matches, costs))
        return losses

    # ------------------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(self, batch: Batch) -> list[Prediction]:
        out, features, logits, _, rel, connectivity, _ = self.forward_panoptic(batch)
        probs = self.relation_probabilities(rel, connectivity)
        return [self.predict_image(logits[-1, b], probs[b], out.hs[-1, b], b, features, meta)
                for b, meta in enumerate(batch.metas)]

    def predict_image(self, logits: torch.Tensor, probs: torch.Tensor, queries: torch.Tensor,
                      b: int, features: MaskFeatures, meta: ImageMeta) -> Prediction:
        """One image's :class:`~openpsg.structures.Prediction` from its class logits ``(Q, C)``,
        relation probabilities ``(Q, Q, P)`` and decoder outputs ``(Q, d)`` (image ``b`` of
        ``features``): the queries with softmax score > ``object_score_thr`` and
        :func:`panoptic_scene_graph` of their masks."""
        scores, labels = softmax_object_scores(logits)
        kept = (scores > self.test_cfg['object_score_thr']).nonzero()[:, 0]
        mask_logits = sample_logits_at_original(
            self.mask_logits(queries[kept], torch.full_like(kept, b), features), meta)
        return panoptic_scene_graph(meta, mask_logits, scores[kept], labels[kept],
                                    probs[kept][:, kept], self.test_cfg['max_per_img'],
                                    self.test_cfg['graph_constraint'], self.num_thing_classes)


def panoptic_scene_graph(meta: ImageMeta, mask_logits: torch.Tensor, scores: torch.Tensor,
                         labels: torch.Tensor, rel_probs: torch.Tensor, k: int = 100,
                         graph_constraint: bool = True,
                         num_thing_classes: int = NUM_THING_CLASSES) -> Prediction:
    """The prediction of ``K`` kept queries: ``mask_logits (K, H0, W0)`` at the original size,
    softmax ``scores`` and ``labels (K,)``, relation probabilities ``rel_probs (K, K, P)``.

    Each pixel goes to the query with the largest logit; stuff queries of one class (labels >=
    ``num_thing_classes``) form one segment, things stay apart, queries without a pixel vanish
    (:func:`~.panoptic_merge.merge_candidates`; a segment's score is its best query's). The pairs
    of queries are ranked and re-indexed onto the segments by
    :func:`~.pair_ranking.rank_segment_pairs` (no self pair, one row per segment pair, ``k``
    rows at most). Without any query the prediction is empty (all void)."""
    num_predicates = rel_probs.shape[-1]
    if len(labels) == 0:
        return Prediction.empty(meta.image_id, original_shape(meta), num_predicates)
    segment_of, id_map, seg_labels, seg_scores = merge_candidates(
        mask_logits, None, labels.cpu().numpy(), scores.float().cpu().numpy(), None,
        num_thing_classes)
    segment_of = torch.as_tensor(segment_of, device=scores.device)
    pairs, rows, triplet = rank_segment_pairs(scores, rel_probs, segment_of, k, graph_constraint)
    masks = id_map_to_masks(id_map, len(seg_labels))
    return Prediction(
        image_id=meta.image_id, labels=seg_labels, scores=seg_scores,
        boxes=masks_to_boxes(masks), masks=masks,
        pairs=segment_of[pairs].cpu().numpy().astype(np.int64).reshape(-1, 2),
        predicate_scores=rows.float().cpu().numpy().reshape(-1, num_predicates),
        triplet_scores=triplet.float().cpu().numpy(), pan_id_map=id_map)
