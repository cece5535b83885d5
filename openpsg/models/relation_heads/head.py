"""The base class of the two-stage relation heads: features in, losses or ranked relations out."""
from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...datasets.statistics import load_frequency_counts
from ...structures import MODES, NUM_CLASSES, NUM_PREDICATES, Sample
from ..options import checked_options
from .contracts import ObjectSet, RelationInputs, RelationOutputs, RelationResult, RelationTargets
from .features import RoIFeatureExtractor, object_and_union_features
from .frequency import FrequencyBias
from .postprocess import object_scores, rank_relations
from .sampling import RelationSampler, inference_pairs


class RelationHead(nn.Module):
    """Base class of the two-stage relation heads.

    Subclasses build their context model in ``__init__`` (taking their own options, then passing
    the ones below on) and implement :meth:`context` (``RelationInputs -> RelationOutputs``); this
    class extracts the features, draws training pairs, computes the losses and post-processes
    predictions.

    Args:
        mode: ``'predcls'`` (ground-truth objects and labels), ``'sgcls'`` (ground-truth objects)
            or ``'sgdet'`` (the segmenter's objects); set by the two-stage model.
        num_classes / num_predicates: C and P (the background / no-relation index is C / P).
        in_channels, roi_size, featmap_strides, finest_scale: FPN channels and RoIAlign settings.
        roi_dim: size of the object and union features.
        with_mask_feats: weight RoI features by the RoI-aligned object (union: subject or object)
            masks. rect_coord_bug: reproduce OpenPSG's object rectangle in the spatial branch.
        use_bias, freq_cache, freq_ann_file: add the learned frequency bias to the relation
            logits, initialised from counts read from ``freq_cache`` or computed from the training
            split of ``freq_ann_file`` (see
            :func:`~openpsg.datasets.statistics.load_frequency_counts`).
        sampler: :class:`~.sampling.RelationSampler` arguments.
        loss_weights: weights of the loss terms, keyed by the loss name without ``loss_``
            (``relation``, ``object``, ...: :attr:`default_loss_weights`; an unknown key is an
            error).
    """

    default_loss_weights: Mapping[str, float] = {'object': 1.0, 'relation': 1.0}

    def __init__(self, mode: str = 'predcls', num_classes: int = NUM_CLASSES,
                 num_predicates: int = NUM_PREDICATES, in_channels: int = 256, roi_size: int = 7,
                 featmap_strides: Sequence[int] = (4, 8, 16, 32), finest_scale: float = 56.0,
                 roi_dim: int = 1024, with_mask_feats: bool = False, rect_coord_bug: bool = False,
                 use_bias: bool = False, freq_cache: str | None = None,
                 freq_ann_file: str | None = None, sampler: Mapping | None = None,
                 loss_weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f'relation head mode must be one of {MODES}, got {mode!r}')
        self.loss_weights = checked_options(self.default_loss_weights, loss_weights,
                                            type(self).__name__, 'loss_weights')
        self.mode = mode
        self.num_classes = num_classes
        self.num_predicates = num_predicates
        self.roi_dim = roi_dim
        self.with_mask_feats = with_mask_feats
        self.rect_coord_bug = rect_coord_bug
        self.num_levels = len(featmap_strides)
        extractor = dict(in_channels=in_channels, out_dim=roi_dim, roi_size=roi_size,
                         strides=featmap_strides, finest_scale=finest_scale)
        self.obj_extractor = RoIFeatureExtractor(**extractor)
        self.union_extractor = RoIFeatureExtractor(**extractor, with_spatial=True)
        self.freq_bias = FrequencyBias(load_frequency_counts(
            freq_cache, freq_ann_file, num_classes, num_predicates)) if use_bias else None
        self.sampler = RelationSampler(**(sampler or {}))

    @property
    def predcls(self) -> bool:
        return self.mode == 'predcls'

    # ----------------------------------------------------------------------------- features
    def build_inputs(self, feats: Sequence[torch.Tensor], objects: Sequence[ObjectSet],
                     pairs: Sequence[torch.Tensor], training: bool) -> RelationInputs:
        """RoI features of the objects and pairs of a batch (image ``i`` of ``objects`` is batch
        row ``i`` of ``feats``), and their label information."""
        levels = list(feats)[:self.num_levels]
        device = levels[0].device
        boxes = [o.boxes.to(device=device, dtype=torch.float32) for o in objects]
        pairs = [p.to(device) for p in pairs]
        obj_feats, union_feats = object_and_union_features(
            self.obj_extractor, self.union_extractor, levels, objects, boxes, pairs,
            self.with_mask_feats, self.rect_coord_bug)
        known = None
        if objects[0].labels is not None:
            known = torch.cat([o.labels.to(device) for o in objects])
        teacher = None
        if training and self.mode == 'sgdet':
            teacher = known
        elif training and self.mode == 'sgcls':
            teacher = torch.cat([o.targets.to(device) for o in objects])
        return RelationInputs(obj_feats=obj_feats, union_feats=union_feats, boxes=boxes,
                              img_shapes=[tuple(o.img_shape) for o in objects], pairs=pairs,
                              label_dists=self._label_dists(known, sum(map(len, boxes)), device),
                              known_labels=known, labels_given=self.predcls,
                              teacher_labels=teacher)

    def _label_dists(self, known: torch.Tensor | None, k: int,
                     device: torch.device) -> torch.Tensor:
        if known is None:
            dists = torch.full((k, self.num_classes + 1), 1.0 / self.num_classes, device=device)
            dists[:, -1] = 0
            return dists
        return F.one_hot(known, self.num_classes + 1).float()

    # ----------------------------------------------------------------------------- forward
    def context(self, x: RelationInputs) -> RelationOutputs:
        """The head's own model: object and relation logits from the inputs. The object logits
        and labels come from :meth:`RelationInputs.object_outputs` (PredCls keeps the known
        labels there)."""
        raise NotImplementedError

    def forward(self, feats: Sequence[torch.Tensor], objects: Sequence[ObjectSet],
                pairs: Sequence[torch.Tensor]) -> tuple[RelationInputs, RelationOutputs]:
        """Features -> :meth:`context`; the frequency bias (if used) of the object labels the
        context reports is added to its relation logits."""
        x = self.build_inputs(feats, objects, pairs, self.training)
        out = self.context(x)
        if self.freq_bias is None:
            return x, out
        gp = x.global_pairs
        bias = self.freq_bias(out.obj_labels[gp[:, 0]], out.obj_labels[gp[:, 1]])
        return x, replace(out, rel_logits=out.rel_logits + bias)

    # ----------------------------------------------------------------------------- training
    def loss(self, feats: Sequence[torch.Tensor], objects: Sequence[ObjectSet],
             samples: Sequence[Sample],
             generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Draw training pairs, run the head and return the weighted losses: ``loss_relation``
        (cross-entropy over the P + 1 predicate classes of the sampled pairs) and, unless PredCls,
        ``loss_object`` (cross-entropy of the object classifier against ``ObjectSet.targets``),
        plus :meth:`extra_losses`."""
        targets = [self.sampler(o, s, self.num_predicates, self.mode != 'sgdet', generator)
                   for o, s in zip(objects, samples)]
        x, out = self(feats, objects, [t.pairs for t in targets])
        rel_labels = torch.cat([t.labels for t in targets]).to(out.rel_logits.device)
        losses = {'loss_relation': F.cross_entropy(out.rel_logits, rel_labels)}
        if not self.predcls:
            obj_targets = torch.cat([o.targets for o in objects]).to(out.obj_logits.device)
            losses['loss_object'] = F.cross_entropy(out.obj_logits, obj_targets)
        losses.update(self.extra_losses(x, out, targets))
        return {k: v * self.loss_weights[k.removeprefix('loss_')] for k, v in losses.items()}

    def extra_losses(self, x: RelationInputs, out: RelationOutputs,
                     targets: Sequence[RelationTargets]) -> dict[str, torch.Tensor]:
        """Head-specific loss terms ``loss_<name>`` (none by default; each ``<name>`` belongs in
        :attr:`default_loss_weights`)."""
        return {}

    # ----------------------------------------------------------------------------- inference
    @torch.no_grad()
    def predict(self, feats: Sequence[torch.Tensor],
                objects: Sequence[ObjectSet]) -> list[RelationResult]:
        """Score every ordered pair of every image (see :func:`~.sampling.inference_pairs`) and
        rank them."""
        pairs = [inference_pairs(len(o), o.boxes.device) for o in objects]
        x, out = self(feats, objects, pairs)
        known = ([None] * len(objects) if x.known_labels is None
                 else x.split_objects(x.known_labels))
        obj_logits = x.split_objects(out.obj_logits)
        rel_logits = out.rel_logits.split([len(p) for p in x.pairs])
        results = []
        for logits, labels, rel, p in zip(obj_logits, known, rel_logits, x.pairs):
            labels, scores = object_scores(logits, labels)
            results.append(rank_relations(rel, p, labels, scores))
        return results
