"""PSGFormer (OpenPSG, ECCV'22): object queries and relation queries decoded from one memory.

One DETR encoder feeds two decoders of the same depth (OpenPSG's ``DualTransformer``; with
``transformer=dict(type='DeformableTransformer', ...)`` Deformable DETR's encoder and two of its
decoders, boxes decoded relative to the object queries' reference points):

* the object decoder (``transformer.decoder`` with ``query_embed``) is DETR-panoptic - class head
  ``class_embed`` (``C + 1`` logits, last = no object), box head ``bbox_embed`` and one mask branch
  (``bbox_attention`` + ``mask_head``). These are DETR's names, so a converted DETR-panoptic
  checkpoint (``tools/convert_detr_checkpoint.py``) initialises the whole object branch;
* the relation decoder (``rel_decoder`` with ``rel_query_embed``, new) predicts a predicate per
  relation query (``rel_class_embed``, ``P + 1`` logits, last = no relation).

Relation queries find their subject and object among the object queries: ``sub_pointer`` and
``obj_pointer`` (two-layer MLPs) map the last object-decoder outputs to subject and object
embeddings; the cosine similarity of each relation-decoder output with them, divided by
``temperature``, gives ``(Q_rel, Q_obj)`` subject and object score matrices; the pointer is their
argmax.

Training (OpenPSG's ``PSGFormerHead``, through :class:`~.set_criterion.SetCriterion`), per
decoder layer ``l``: object queries of layer ``l`` are matched to the GT segments by
:class:`~.triplet_matcher.ObjectMatcher` (mmdet ``HungarianAssigner``); object cross-entropy
(no-object weight ``eos_coef``), L1 (normalised cxcywh) and GIoU (pixel xyxy), the box terms
divided by the number of matched queries (``min(num_queries, #GT segments)`` per image, averaged
over processes, as OpenPSG); relation queries of layer ``l`` are matched to the GT triplets by
:class:`~.triplet_matcher.IdMatcher` through the object queries matched to the triplets' subject
and object; predicate cross-entropy on all relation queries (no-relation weight
``no_relation_weight``). Triplets touching a segment no object query was matched to (an image
with more segments than object queries) are left out of the relation matching on purpose:
OpenPSG points them at object query 1, whichever segment that query was matched to (and fails
when query 1 was matched to none), which teaches the relation queries a pointer to an unrelated
segment. Last layer only: focal and Dice
losses of the matched object queries' masks at half the padded batch size (as PSGTR), and the
pointer losses: for each matched relation query, cross-entropy of its subject (object) scores
restricted to the matched object queries against the one matched to its GT subject (object),
averaged over matched relation queries.

Inference: see :meth:`PSGFormer.predict` and :mod:`.triplet_postprocess`.
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import MODELS
from ...structures import (CLASSES, NUM_CLASSES, NUM_PREDICATES, NUM_THING_CLASSES, Batch,
                           ImageMeta, Prediction)
from ..options import checked_options
from ..losses import dice_loss, mmdet_box_losses, no_object_cross_entropy, sigmoid_focal_loss
from ..sample_checks import checked_rels
from .detr_base import MLP, DETRBase, TransformerOutputs, decode_boxes
from .mask_head import build_mask_branch, predict_masks
from .matcher import Match
from .set_criterion import SetCriterion, class_targets, flatten_matches, num_targets_for_norm
from .targets import Size, box_targets, masks_at_loss_resolution
from .triplet_matcher import IdMatcher, ObjectMatcher
from .triplet_postprocess import (Rows, check_output, legacy_prediction, logits_at_original,
                                  top_triplets, triplet_prediction)

RUG_MERGED = CLASSES.index('rug-merged')  # 132, dropped by OpenPSG's PSGFormer (bug)


class FormerOutputs(NamedTuple):
    """Head outputs: ``logits (L, B, Q, C + 1)``, ``boxes (L, B, Q, 4)`` normalised cxcywh,
    ``rel_logits (L, B, Qr, P + 1)``, last-layer pointer scores ``sub_scores``, ``obj_scores``
    ``(B, Qr, Q)``."""

    logits: torch.Tensor
    boxes: torch.Tensor
    rel_logits: torch.Tensor
    sub_scores: torch.Tensor
    obj_scores: torch.Tensor


def relation_targets(match: Match, rels: torch.Tensor, num_segments: int
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GT triplets ``rels (M, 3)`` as (subject query, object query, predicate), each ``(M',)``,
    through the object matching ``match`` of the image's ``num_segments`` segments; triplets
    touching an unmatched segment are left out."""
    query_idx, segment_idx = match
    query_of = torch.full((num_segments,), -1, dtype=torch.int64, device=rels.device)
    query_of[segment_idx] = query_idx
    sub_query, obj_query = query_of[rels[:, 0]], query_of[rels[:, 1]]
    valid = (sub_query >= 0) & (obj_query >= 0)
    return sub_query[valid], obj_query[valid], rels[valid, 2]


@MODELS.register()
class PSGFormer(DETRBase):
    """PSGFormer (module docstring).

    Args:
        backbone, transformer: see :class:`~.detr_base.DETRBase` (``transformer``'s ``type``:
            DETR's transformer by default, or ``'DeformableTransformer'``); the relation decoder
            copies the object decoder's depth, width, heads, FFN size and dropout (deformable:
            levels and points too; its queries take their reference points from the
            transformer's ``reference_points``, as the object queries).
        num_classes, num_predicates: object classes and predicates (without the extra class).
        num_queries, num_rel_queries: object and relation queries.
        aux_loss: also supervise every earlier decoder layer (class/box and predicate terms).
        eos_coef, no_relation_weight: class weights of "no object" and "no relation" (0.02).
        temperature: divides the cosine similarities of the pointers.
        matcher: :class:`~.triplet_matcher.ObjectMatcher` arguments (OpenPSG: cls 4, bbox 3,
            giou 2).
        rel_matcher: :class:`~.triplet_matcher.IdMatcher` arguments.
        loss_weights: ``ce, bbox, giou, mask (focal), dice, relation_ce, sub_pointer, obj_pointer``.
        focal_alpha, focal_gamma: of the mask focal loss.
        test_cfg: ``max_per_img`` (rows ranked), ``mask_thr`` (binary masks of the thing
            de-duplication and of ``legacy`` rows), ``thing_iou_thr`` (panoptic merge),
            ``claim_thr`` (``single_mpo``: pixels no candidate claims with a larger
            probability are void).
        output: ``'single_mpo'``, ``'legacy'`` (OpenPSG's ``eval_pan_rels=False``, behind its
            published numbers) or ``'openpsg_panoptic'`` (OpenPSG's ``eval_pan_rels=True``); see
            :mod:`.triplet_postprocess`.
        drop_rug_bug: reproduce OpenPSG's bug that drops every object query labelled
            ``rug-merged`` (and the rows pointing at it) before its panoptic merge; only with
            ``output='openpsg_panoptic'``.
        num_thing_classes: labels below are things, the others stuff (panoptic merge).
        feature_level: the backbone map the transformer reads (see :class:`~.detr_base.DETRBase`).
    """

    default_loss_weights = {'ce': 4.0, 'bbox': 3.0, 'giou': 2.0, 'mask': 1.0, 'dice': 1.0,
                            'relation_ce': 2.0, 'sub_pointer': 2.0, 'obj_pointer': 2.0}
    default_test_cfg = {'max_per_img': 100, 'mask_thr': 0.85, 'thing_iou_thr': 0.5,
                        'claim_thr': 0.5}

    def __init__(self, backbone: Mapping[str, Any], transformer: Mapping[str, Any],
                 num_classes: int = NUM_CLASSES, num_predicates: int = NUM_PREDICATES,
                 num_queries: int = 100, num_rel_queries: int = 100, aux_loss: bool = True,
                 eos_coef: float = 0.02, no_relation_weight: float = 0.02,
                 temperature: float = 0.1, matcher: Mapping[str, float] | None = None,
                 rel_matcher: Mapping[str, float] | None = None,
                 loss_weights: Mapping[str, float] | None = None, focal_alpha: float = 0.25,
                 focal_gamma: float = 2.0, test_cfg: Mapping[str, Any] | None = None,
                 output: str = 'single_mpo', drop_rug_bug: bool = False,
                 num_thing_classes: int = NUM_THING_CLASSES, feature_level: int = 3) -> None:
        super().__init__(backbone, transformer, num_queries, feature_level)
        d, nhead = self.transformer.d_model, self.transformer.nhead
        self.rel_decoder = self.new_decoder()
        self.rel_query_embed = nn.Embedding(num_rel_queries, self.query_embed.embedding_dim)
        self.class_embed = nn.Linear(d, num_classes + 1)
        self.bbox_embed = self.box_head()
        self.rel_class_embed = nn.Linear(d, num_predicates + 1)
        self.sub_pointer = MLP(d, d, d, 2)
        self.obj_pointer = MLP(d, d, d, 2)
        self.bbox_attention, self.mask_head = build_mask_branch(d, nhead,
                                                                self.backbone[0].num_channels)
        self.num_classes = num_classes
        self.num_predicates = num_predicates
        self.num_thing_classes = num_thing_classes
        self.eos_coef = eos_coef
        self.no_relation_weight = no_relation_weight
        self.temperature = temperature
        self.matcher = ObjectMatcher(**{'cls': 4.0, 'bbox': 3.0, 'giou': 2.0, **(matcher or {})})
        self.rel_matcher = IdMatcher(**(rel_matcher or {}))
        self.loss_weights = checked_options(self.default_loss_weights, loss_weights, 'PSGFormer',
                                            'loss_weights')
        self.criterion = SetCriterion(self.loss_weights, aux_loss)
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.test_cfg = checked_options(self.default_test_cfg, test_cfg, 'PSGFormer',
                                        'test_cfg')
        self.output = check_output(output, 'PSGFormer', 'drop_rug_bug', drop_rug_bug)
        self.drop_rug_bug = drop_rug_bug

    def forward_heads(self, batch: Batch) -> tuple[TransformerOutputs, FormerOutputs]:
        """Encoder once, both decoders on its memory, all heads (``hs`` = object decoder); the
        head outputs are float32 also under autocast (matching, losses and post-processing read
        them)."""
        encoded = self.encode(batch.imgs, batch.pad_mask)
        hs, references = self.decode(encoded, self.query_embed.weight)
        rel_hs, _ = self.decode(encoded, self.rel_query_embed.weight, self.rel_decoder)
        out = self.outputs(encoded, hs, references)
        rel = F.normalize(rel_hs[-1], dim=-1)
        sub = F.normalize(self.sub_pointer(hs[-1]), dim=-1)
        obj = F.normalize(self.obj_pointer(hs[-1]), dim=-1)
        return out, FormerOutputs(self.class_embed(hs).float(),
                                  decode_boxes(self.bbox_embed(hs), references),
                                  self.rel_class_embed(rel_hs).float(),
                                  (rel @ sub.transpose(1, 2)).float() / self.temperature,
                                  (rel @ obj.transpose(1, 2)).float() / self.temperature)

    def mask_logits(self, out: TransformerOutputs, batch_idx: torch.Tensor,
                    query_idx: torch.Tensor) -> torch.Tensor:
        """Stride-4 mask logits ``(K, H/4, W/4)`` of last-layer object queries."""
        return predict_masks(self.bbox_attention, self.mask_head, out.hs[-1][batch_idx, query_idx],
                             batch_idx, out.mask_features())

    def object_losses(self, logits: torch.Tensor, boxes: torch.Tensor,
                      targets: Sequence[tuple[torch.Tensor, torch.Tensor]], sizes: Sequence[Size],
                      matches: Sequence[Match], num_boxes: float) -> dict[str, torch.Tensor]:
        """Unweighted class and box losses of one object-decoder layer."""
        batch_idx, query_idx = flatten_matches(list(matches))
        classes = class_targets(logits, list(matches), [t[0] for t in targets], self.num_classes)
        target_boxes = torch.cat([t[1][j] for t, (_, j) in zip(targets, matches)])
        bbox, giou = mmdet_box_losses(boxes[batch_idx, query_idx], target_boxes,
                                      [sizes[b] for b in batch_idx.tolist()], num_boxes)
        return {'ce': no_object_cross_entropy(logits, classes, self.eos_coef), 'bbox': bbox,
                'giou': giou}

    def relation_losses(self, heads: FormerOutputs, layer: int,
                        triplets: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                        matches: Sequence[Match], with_pointers: bool) -> dict[str, torch.Tensor]:
        """Unweighted predicate loss of relation-decoder layer ``layer`` (and the pointer losses).

        ``triplets[b]`` = (subject query, object query, predicate) of image ``b``'s GT triplets
        under the same layer's object ``matches``.
        """
        rel_logits = heads.rel_logits[layer]
        rel_matches = [self.rel_matcher(heads.sub_scores[b], heads.obj_scores[b], rel_logits[b],
                                        *triplet) for b, triplet in enumerate(triplets)]
        targets = class_targets(rel_logits, rel_matches, [t[2] for t in triplets],
                                self.num_predicates)
        pointer = {'sub_pointer': heads.sub_scores.sum() * 0,
                   'obj_pointer': heads.obj_scores.sum() * 0}
        num_rows = 0
        for b, ((sub_query, obj_query, _), (object_queries, _), (rows, col)) in enumerate(
                zip(triplets, matches, rel_matches)):
            if not with_pointers or not len(rows):
                continue
            position = torch.full((heads.sub_scores.shape[-1],), -1, dtype=torch.int64,
                                  device=rows.device)
            position[object_queries] = torch.arange(len(object_queries), device=rows.device)
            for name, scores, pointed in (('sub_pointer', heads.sub_scores, sub_query),
                                          ('obj_pointer', heads.obj_scores, obj_query)):
                restricted = scores[b][rows][:, object_queries]
                pointer[name] = pointer[name] + F.cross_entropy(restricted, position[pointed[col]],
                                                                reduction='sum')
            num_rows += len(rows)
        losses = {'relation_ce': no_object_cross_entropy(rel_logits, targets,
                                                         self.no_relation_weight)}
        if with_pointers:
            losses.update({name: value / max(num_rows, 1) for name, value in pointer.items()})
        return losses

    def mask_losses(self, out: TransformerOutputs, batch: Batch, matches: list[Match]
                    ) -> dict[str, torch.Tensor]:
        """Focal and dice losses of the matched object queries' masks at half the padded batch
        size, divided by the number of matched queries."""
        batch_idx, query_idx = flatten_matches(matches)
        pred, target = masks_at_loss_resolution(
            self.mask_logits(out, batch_idx, query_idx), batch.samples, [j for _, j in matches],
            tuple(batch.imgs.shape[-2:]), 'half', 'PSGFormer')
        num_masks = max(len(batch_idx), 1)
        return {'mask': sigmoid_focal_loss(pred, target, num_masks, self.focal_alpha,
                                           self.focal_gamma),
                'dice': dice_loss(pred, target, num_masks)}

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        out, heads = self.forward_heads(batch)
        samples = batch.samples
        targets = box_targets(samples, self.num_classes)
        rels = [checked_rels(s, self.num_predicates) for s in samples]
        sizes = [s.meta.img_shape for s in samples]
        num_boxes = num_targets_for_norm(sum(min(self.num_queries, len(t[0])) for t in targets),
                                         batch.imgs.device)

        def terms(layer: int, matches: list[Match], last: bool) -> dict[str, torch.Tensor]:
            triplets = [relation_targets(m, r, len(t[0]))
                        for m, r, t in zip(matches, rels, targets)]
            values = self.object_losses(heads.logits[layer], heads.boxes[layer], targets, sizes,
                                        matches, num_boxes)
            values.update(self.relation_losses(heads, layer, triplets, matches, with_pointers=last))
            if last:
                values.update(self.mask_losses(out, batch, matches))
            return values

        return self.criterion(
            len(out.hs),
            lambda layer: self.matcher(heads.logits[layer], heads.boxes[layer], targets, sizes),
            terms)[0]

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[Prediction]:
        """Per image (last decoder layers), as OpenPSG's ``PSGFormerHead``:

        1. object class = argmax of the softmax without "no object", score = its value;
        2. the ``max_per_img`` best (relation query, predicate) cells of the predicate softmax,
           ranked; a row's subject and object are the object queries its relation query points at;
        3. the candidates are the object queries some row points at (with ``drop_rug_bug``, minus
           those labelled ``rug-merged``, and the rows pointing at them), their mask logits at
           original size (:func:`~.triplet_postprocess.logits_at_original`); no score threshold,
           no triplet de-duplication;
        4. the ``'single_mpo'`` or ``'openpsg_panoptic'`` output
           (:func:`~.triplet_postprocess.triplet_prediction`); ``'legacy'`` returns every row with
           its pointed queries' masks beside the ``'openpsg_panoptic'`` panoptic map.
        """
        out, heads = self.forward_heads(batch)
        return [self.predict_image(out, heads, b, meta) for b, meta in enumerate(batch.metas)]

    def predict_image(self, out: TransformerOutputs, heads: FormerOutputs, b: int,
                      meta: ImageMeta) -> Prediction:
        cfg = self.test_cfg
        rank_scores, rel_query, _, rel_probs = top_triplets(heads.rel_logits[-1, b],
                                                            cfg['max_per_img'])
        scores, labels = heads.logits[-1, b].float().softmax(-1)[:, :-1].max(-1)
        sub_query = heads.sub_scores[b].argmax(-1)[rel_query]
        obj_query = heads.obj_scores[b].argmax(-1)[rel_query]
        used = torch.cat([sub_query, obj_query]).unique()
        if self.drop_rug_bug:
            used = used[labels[used] != RUG_MERGED]
        position = torch.full_like(labels, -1)
        position[used] = torch.arange(len(used), device=used.device)
        rows = Rows(position[sub_query].cpu().numpy(), position[obj_query].cpu().numpy(),
                    rel_probs[rel_query].cpu().numpy(), rank_scores.cpu().numpy())
        logits = logits_at_original(self.mask_logits(out, torch.full_like(used, b), used), meta,
                                    self.output)
        labels, scores = labels[used].cpu().numpy(), scores[used].cpu().numpy()
        panoptic = triplet_prediction(
            meta, logits, labels, scores, rows.take((rows.sub >= 0) & (rows.obj >= 0)),
            'single_mpo' if self.output == 'single_mpo' else 'openpsg_panoptic',
            cfg['mask_thr'], cfg['thing_iou_thr'], self.num_thing_classes,
            cfg['claim_thr'])
        if self.output != 'legacy':
            return panoptic
        return legacy_prediction(meta, logits, labels, scores, rows, panoptic,
                                 cfg['mask_thr'])
