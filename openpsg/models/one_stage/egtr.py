"""EGTR (Im et al., CVPR'24, naver-ai/egtr): the scene graph extracted from the decoder
self-attention of a Deformable DETR object detector.

The detector is :class:`~.deformable_detr.DeformableDETR` (its parameter names, heads, matcher and
detection losses); its ``Q`` object queries are the graph's nodes. The relation extraction head
(:mod:`.egtr_head`; its modules sit at the model's top level under EGTR's names, and the
frequency table is EGTR's ``triplet_dist``, so converted EGTR weights load as they are) scores
every ordered pair of queries from the self-attention queries/keys of all ``L`` decoder layers
and the last decoder output: predicate
logits ``(B, Q, Q, P)`` - plus, by default, a fixed frequency bias indexed by the argmax classes
of subject and object (:mod:`.frequency_prior`) - and a connectivity logit ``(B, Q, Q)``.

Training (only the last decoder layer is matched for the relations; ``aux_loss`` adds the
detection losses of the other layers, off in EGTR's scene-graph stage):

* ``loss_ce``, ``loss_bbox``, ``loss_giou``: Deformable DETR's detection losses (weights 2, 5, 2);
* ``loss_relation`` (weight 15): binary cross-entropy with logits of the sampled entries
  (:mod:`.relation_sampling`: positives, 80 hard negatives and 80 hard non-matching entries per
  positive) against the targets smoothed by the matching cost (:mod:`.relation_smoothing`),
  averaged over all sampled entries of the batch; in eval mode every entry is used, as EGTR's
  validation does. A batch without any relation gives 0 (EGTR: NaN);
* ``loss_connectivity`` (weight 30): binary cross-entropy with logits over all ``Q x Q`` pairs
  (self pairs included), target 1 where the matched ground truth has any predicate (not
  smoothed);
* logged only: ``uncertainty`` (mean ``u_i u_j`` over the positives, 0 without any) and
  ``rel_gate_0 .. rel_gate_L`` (mean gate of each layer's pair feature; ``L`` = the last decoder
  output).

Inference (:meth:`EGTR.predict`, :mod:`.pair_ranking`): every query is an object (softmax class
score - EGTR's quirk); relation probability = ``sigmoid(predicate logits) * sigmoid(connectivity)``;
the ``max_per_img`` (100) best pairs by ``max_p(probability) * s_i * s_j`` (no self pairs), or
with ``graph_constraint=False`` the best ``(i, j, p)``. Boxes come back at the original size;
masks are ``None`` (box setting, evaluated with ``match='box'``).

This is the box setting. The panoptic (PSG) setting - a per-query mask branch, mask losses and
mask cost terms, non-overlapping segments and pairs re-indexed onto them - is
:class:`~.egtr_panoptic.PanopticEGTR`, which reuses :meth:`EGTR.relation_outputs`,
:meth:`EGTR.relation_entries` and :meth:`EGTR.relation_probabilities`.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...registry import DATASETS, MODELS
from ...structures import (NUM_CLASSES, NUM_PREDICATES, Batch, Prediction, Sample,
                           normalized_boxes_to_original)
from ..sample_checks import checked_rels
from .deformable_detr import DeformableDETR
from .deformable_transformer import DeformableTransformerOutputs
from .egtr_head import QK, gated_sum, pair_sources, relation_modules
from .frequency_prior import log_frequency_table, predicate_distribution
from .matcher import Match, focal_detr_cost
from .pair_ranking import rank_pairs, softmax_object_scores
from .relation_sampling import query_relation_targets, sample_relation_entries
from .relation_smoothing import (check_smoothing, match_weights, perfect_match_cost,
                                 query_weights, smoothed_targets)
from .targets import box_targets


def frequency_counts(cache: str | None, dataset: Mapping[str, Any] | None, num_classes: int,
                     num_predicates: int) -> np.ndarray:
    """``(C, C, P)`` training counts of (subject class, object class, predicate): read from the
    ``.npy`` file ``cache`` when it exists, else counted over ``dataset`` (a ``DATASETS`` config of
    the training split; every relation row counts) and written to ``cache`` when given."""
    shape = (num_classes, num_classes, num_predicates)
    if cache is not None and os.path.isfile(cache):
        counts = np.load(cache, allow_pickle=False)
        if counts.shape != shape:
            raise ValueError(f'{cache}: frequency counts of shape {counts.shape}, the model needs '
                             f'{shape} (num_classes, num_classes, num_predicates)')
        return counts
    if dataset is None:
        raise ValueError('EGTR: the frequency bias needs freq_dataset (the training split, e.g. '
                         f'data.train) or an existing freq_cache file (got {cache!r})')
    counts = DATASETS.build({k: v for k, v in dict(dataset).items() if k != 'pipeline'}
                            ).triplet_counts()
    if counts.shape != shape:
        raise ValueError(f'EGTR: freq_dataset has {counts.shape[0]} classes and {counts.shape[2]} '
                         f'predicates, the model {num_classes} and {num_predicates}')
    if cache is not None:
        os.makedirs(os.path.dirname(os.path.abspath(cache)), exist_ok=True)
        np.save(cache, counts)
    return counts


@MODELS.register()
class EGTR(DeformableDETR):
    """EGTR on Deformable DETR (module docstring).

    Args:
        backbone, transformer, num_classes, num_queries, aux_loss, matcher, focal_alpha,
            focal_gamma: as :class:`~.deformable_detr.DeformableDETR` (EGTR: 200 queries, no aux
            loss, matcher costs class 2, L1 5, GIoU 2).
        num_predicates: ``P`` (50 for Visual Genome, 56 for PSG): the dataset's.
        loss_weights: ``ce`` 2, ``bbox`` 5, ``giou`` 2, ``relation`` 15, ``connectivity`` 30.
        smoothing: ``s`` of the adaptive label smoothing (1e-14; 0 = hard targets).
        rel_sample_negatives, rel_sample_nonmatching: sampled entries per positive (80, 80;
            ``None`` = all); ``*_largest``: the hardest (True) or random.
        use_freq_bias: add the frequency bias to the predicate logits (training and inference).
        freq_log_count_quirk: EGTR's table of log counts instead of log probabilities.
        freq_dataset, freq_cache: where the training counts come from (:func:`frequency_counts`);
            needed by the frequency bias and the logit adjustment. The table is a buffer saved
            with the weights.
        test_cfg: ``max_per_img`` (100 rows), ``graph_constraint`` (True: one predicate per pair),
            ``logit_adjustment_tau`` (``None``; a float ``tau`` subtracts ``tau * log(predicate
            share)`` from the predicate logits at inference, EGTR's optional post-hoc
            adjustment).
    """

    default_loss_weights = {'ce': 2.0, 'bbox': 5.0, 'giou': 2.0, 'relation': 15.0,
                            'connectivity': 30.0}
    default_test_cfg = {'max_per_img': 100, 'graph_constraint': True,
                        'logit_adjustment_tau': None}

    def __init__(self, backbone: Mapping[str, Any], transformer: Mapping[str, Any],
                 num_classes: int = NUM_CLASSES, num_predicates: int = NUM_PREDICATES,
                 num_queries: int = 200, aux_loss: bool = False,
                 matcher: Mapping[str, float] | None = None,
                 loss_weights: Mapping[str, float] | None = None, focal_alpha: float = 0.25,
                 focal_gamma: float = 2.0, smoothing: float = 1e-14,
                 rel_sample_negatives: int | None = 80, rel_sample_nonmatching: int | None = 80,
                 rel_sample_negatives_largest: bool = True,
                 rel_sample_nonmatching_largest: bool = True, use_freq_bias: bool = True,
                 freq_log_count_quirk: bool = False,
                 freq_dataset: Mapping[str, Any] | None = None, freq_cache: str | None = None,
                 test_cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__(backbone, transformer, num_classes, num_queries, aux_loss, matcher,
                         loss_weights, focal_alpha, focal_gamma, test_cfg)
        for name, module in relation_modules(self.transformer.d_model,
                                             len(self.transformer.decoder.layers),
                                             num_predicates).items():
            self.add_module(name, module)
        self.num_predicates = num_predicates
        self.smoothing = check_smoothing(smoothing)
        self.perfect_cost = perfect_match_cost(self.matcher.cost_weights(), self.matcher.alpha)
        self.sampling = dict(negatives=rel_sample_negatives, nonmatching=rel_sample_nonmatching,
                             negatives_largest=rel_sample_negatives_largest,
                             nonmatching_largest=rel_sample_nonmatching_largest)
        self.use_freq_bias = use_freq_bias
        if use_freq_bias or self.test_cfg['logit_adjustment_tau'] is not None:
            counts = frequency_counts(freq_cache, freq_dataset, num_classes, num_predicates)
            # (C + 1, C + 1, P) as EGTR's table, whose last row and column (no class) stay 0
            padded = np.pad(counts, ((0, 1), (0, 1), (0, 0)))
            self.register_buffer('triplet_dist', log_frequency_table(padded, freq_log_count_quirk))
            self.register_buffer('rel_dist', predicate_distribution(counts))

    # ------------------------------------------------------------------------------ forward
    def relation_head(self, self_attn_qk: Sequence[QK], hidden: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The head of :mod:`.egtr_head`: ``(predicate logits (B, Q, Q, P), connectivity logits
        (B, Q, Q), gates (B, Q, Q, L + 1))`` from every decoder layer's self-attention ``(q, k)``
        ``(B, Q, d)`` and the last decoder output ``hidden (B, Q, d)``; the logits are float32 also
        under autocast (losses, sampling and ranking read them)."""
        subjects, objects = pair_sources(self.proj_q, self.proj_k, self.final_sub_proj,
                                         self.final_obj_proj, self_attn_qk, hidden)
        z, gates = gated_sum(self.rel_predictor_gate, subjects, objects)
        return self.rel_predictor(z).float(), self.connectivity_layer(z)[..., 0].float(), gates

    def relation_outputs(self, out: DeformableTransformerOutputs, logits: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`relation_head` of the transformer outputs, with the frequency bias of the
        argmax classes of the last layer's class ``logits (B, Q, C)`` added to the predicate
        logits."""
        rel, connectivity, gates = self.relation_head(out.self_attn_qk, out.hs[-1])
        if self.use_freq_bias:
            labels = logits.argmax(-1)
            rel = rel + self.triplet_dist[labels[:, :, None], labels[:, None, :]]
        return rel, connectivity, gates

    def forward_all(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                 torch.Tensor, torch.Tensor]:
        """Class logits ``(L, B, Q, C)``, boxes ``(L, B, Q, 4)`` and :meth:`relation_outputs`."""
        _, out = self.run_transformer(batch.imgs, batch.pad_mask)
        logits, boxes = self.predict_boxes(out)
        return (logits, boxes, *self.relation_outputs(out, logits[-1]))

    # ------------------------------------------------------------------------------ training
    def matched_costs(self, logits: torch.Tensor, boxes: torch.Tensor,
                      target: tuple[torch.Tensor, torch.Tensor], match: Match) -> torch.Tensor:
        """``(K,)`` the matcher's cost of each matched (query, target) pair of one image."""
        (query, index), m = match, self.matcher
        labels, target_boxes = target
        cost = focal_detr_cost(logits[query].float(), boxes[query].float(), labels[index],
                               target_boxes[index].float(), m.cost_class, m.cost_bbox,
                               m.cost_giou, m.alpha, m.gamma)
        return cost.diagonal()

    def relation_losses(self, rel: torch.Tensor, connectivity: torch.Tensor,
                        samples: list[Sample], matches: list[Match], costs: list[torch.Tensor]
                        ) -> dict[str, torch.Tensor]:
        """Unweighted ``relation`` and ``connectivity`` losses and the logged ``uncertainty``, from
        the relation outputs ``(B, Q, Q, P)`` / ``(B, Q, Q)`` and the last layer's matches and
        matched costs (module docstring)."""
        num_queries = rel.shape[1]
        rel_terms, connectivity_terms, uncertainty = [], [], []
        for b, (sample, (query, index), cost) in enumerate(zip(samples, matches, costs)):
            rels = checked_rels(sample, self.num_predicates)
            targets = query_relation_targets(rels, query, index, len(sample.labels), num_queries,
                                             self.num_predicates, sample.meta)
            weights = query_weights(num_queries, query,
                                    match_weights(cost, self.perfect_cost, self.smoothing))
            connectivity_terms.append(F.binary_cross_entropy_with_logits(
                connectivity[b], targets.amax(-1), reduction='none').flatten())
            soft = smoothed_targets(targets, weights.to(targets.dtype))
            if self.training:
                matched = torch.zeros(num_queries, dtype=torch.bool, device=rel.device)
                matched[query] = True
                i, j, p = sample_relation_entries(rel[b], targets, matched,
                                                  **self.sampling).unbind(1)
                rel_terms.append(F.binary_cross_entropy_with_logits(
                    rel[b, i, j, p], soft[i, j, p], reduction='none'))
            else:
                rel_terms.append(F.binary_cross_entropy_with_logits(
                    rel[b], soft, reduction='none').flatten())
            i, j, _ = targets.nonzero().unbind(1)
            uncertainty.append(((1 - weights[i]) * (1 - weights[j])).detach())
        rel_terms = torch.cat(rel_terms)
        uncertainty = torch.cat(uncertainty)
        return {
            'relation': rel_terms.mean() if len(rel_terms) else rel.sum() * 0,
            'connectivity': torch.cat(connectivity_terms).mean(),
            'uncertainty': uncertainty.mean() if len(uncertainty) else rel.new_zeros(()),
        }

    def relation_entries(self, rel: torch.Tensor, connectivity: torch.Tensor,
                         gates: torch.Tensor, samples: list[Sample], matches: list[Match],
                         costs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The loss dict's relation entries: weighted ``loss_relation`` and ``loss_connectivity``
        (:meth:`relation_losses`), the logged ``uncertainty`` and the mean gate of every layer's
        pair feature ``rel_gate_{l}`` (``gates (B, Q, Q, L + 1)``)."""
        terms = self.relation_losses(rel, connectivity, samples, matches, costs)
        entries = {'loss_relation': self.loss_weights['relation'] * terms['relation'],
                   'loss_connectivity': self.loss_weights['connectivity'] * terms['connectivity'],
                   'uncertainty': terms['uncertainty']}
        for layer, value in enumerate(gates.detach().flatten(0, 2).mean(0)):
            entries[f'rel_gate_{layer}'] = value
        return entries

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        logits, boxes, rel, connectivity, gates = self.forward_all(batch)
        targets = box_targets(batch.samples, self.num_classes)
        losses, matches, _ = self.detection_losses(logits, boxes, targets)
        costs = [self.matched_costs(lg, bx, t, m).detach()
                 for lg, bx, t, m in zip(logits[-1], boxes[-1], targets, matches)]
        losses.update(self.relation_entries(rel, connectivity, gates, batch.samples, matches,
                                            costs))
        return losses

    # ------------------------------------------------------------------------------ inference
    def relation_probabilities(self, rel: torch.Tensor, connectivity: torch.Tensor
                               ) -> torch.Tensor:
        """``(B, Q, Q, P)`` ``clamp(sigmoid(rel)) * clamp(sigmoid(connectivity))`` after the
        optional logit adjustment."""
        tau = self.test_cfg['logit_adjustment_tau']
        if tau is not None:
            rel = rel - tau * self.rel_dist.log()
        return (rel.float().sigmoid().clamp(0, 1)
                * connectivity.float().sigmoid().clamp(0, 1)[..., None])

    def rank_relations(self, logits: torch.Tensor, probs: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                  torch.Tensor]:
        """One image: softmax object ``scores``/``labels (Q,)`` from ``logits (Q, C)`` and the
        ranked ``pairs``, ``predicate_scores``, ``triplet_scores`` of ``probs (Q, Q, P)``."""
        scores, labels = softmax_object_scores(logits)
        pairs, rows, triplet = rank_pairs(scores, probs, self.test_cfg['max_per_img'],
                                          self.test_cfg['graph_constraint'])
        return scores, labels, pairs, rows, triplet

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[Prediction]:
        logits, boxes, rel, connectivity, _ = self.forward_all(batch)
        probs = self.relation_probabilities(rel, connectivity)
        predictions = []
        for b, meta in enumerate(batch.metas):
            scores, labels, pairs, rows, triplet = self.rank_relations(logits[-1, b], probs[b])
            predictions.append(Prediction(
                image_id=meta.image_id, labels=labels.cpu().numpy(),
                scores=scores.cpu().numpy(),
                boxes=normalized_boxes_to_original(boxes[-1, b].float(), meta).cpu().numpy(), masks=None,
                pairs=pairs.cpu().numpy(), predicate_scores=rows.cpu().numpy(),
                triplet_scores=triplet.cpu().numpy()))
        return predictions
