"""Two-stage panoptic scene-graph models: a panoptic segmenter (first stage, frozen by default),
then a relation head on its segments and feature maps.

    model = MODELS.build(dict(type='TwoStageSceneGraph',
                              segmenter=dict(type='PanopticFPN', backbone=dict(depth=50)),
                              relation_head=dict(type='MotifHead'),
                              use_gt_box=False, use_gt_label=False))   # SGDet
    losses = model(batch, mode='loss')          # {'loss_relation', 'loss_object', ...}
    predictions = model(batch, mode='predict')  # list[Prediction] at original image size

Any registered :class:`~.segmenters.base.Segmenter` can be the first stage and any registered
:class:`~.relation_heads.head.RelationHead` the second: the head pools RoI features from the
maps the segmenter declares (``feature_levels``: names, strides, channels), which this model hands
over; nothing in a head depends on the segmenter it sits on.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..config import ConfigError
from ..registry import MODELS
from ..structures import (Batch, Prediction, Sample, boxes_to_original, id_map_to_masks,
                          masks_to_id_map, nearest_to_original)
from .base import PSGModel
from .relation_heads import ObjectSet, RelationHead, RelationResult, assign_object_targets
from .sample_checks import check_boxes, check_labels, checked_rels
from .segmenters.base import Segmenter, SegmentResult, check_feature_levels

#: Relation-head options that come from the segmenter's ``feature_levels``, never from a config.
SEGMENTER_GIVEN = ('in_channels', 'featmap_strides')


def mode_name(use_gt_box: bool, use_gt_label: bool) -> str:
    """``'predcls'`` (GT boxes and labels), ``'sgcls'`` (GT boxes) or ``'sgdet'`` (neither)."""
    if use_gt_label and not use_gt_box:
        raise ConfigError('use_gt_label=True needs use_gt_box=True (ground-truth labels come with '
                          'the ground-truth objects)')
    return 'predcls' if use_gt_label else 'sgcls' if use_gt_box else 'sgdet'


def build_segmenter(cfg: Mapping[str, Any]) -> Segmenter:
    """Build ``cfg`` and check that it is a :class:`Segmenter` with usable ``feature_levels``."""
    segmenter = MODELS.build(cfg)
    name = type(segmenter).__name__
    if not isinstance(segmenter, Segmenter):
        raise ConfigError(f'model.segmenter: {name} is not a segmenter (a registered subclass of '
                          'openpsg.models.segmenters.Segmenter)')
    check_feature_levels(segmenter.feature_levels, name)
    channels = sorted({level.channels for level in segmenter.feature_levels})
    if len(channels) != 1:
        raise ConfigError(f'model.segmenter: {name} declares feature levels with different channel '
                          f'counts {channels}; the relation heads pool every level with one RoI '
                          'extractor and need one channel count')
    return segmenter


@MODELS.register()
class TwoStageSceneGraph(PSGModel):
    """A panoptic segmenter (first stage) followed by a relation head (second stage).

    Modes: PredCls (``use_gt_box=True, use_gt_label=True``): the objects are the ground-truth
    segments with their labels; SGCls (``True, False``): ground-truth segments, the head classifies
    them; SGDet (``False, False``): the segmenter's panoptic segments (boxes = tight boxes of their
    masks), whose training targets are the labels of the ground-truth boxes they overlap with IoU
    ``>= 0.5`` (else background). Images without any object are left out of the losses and get an
    empty prediction.

    Args:
        segmenter: config of a registered :class:`~.segmenters.base.Segmenter` (Panoptic FPN,
            PanopticFCN, ...).
        relation_head: config of a :class:`~.relation_heads.head.RelationHead`. Its ``mode`` is
            set from ``use_gt_box``/``use_gt_label``, its ``in_channels`` and ``featmap_strides``
            from the segmenter's ``feature_levels`` (setting them in the config is an error).
        use_gt_box, use_gt_label: the mode, see above.
        segmenter_checkpoint: weights of the segmenter (a checkpoint of the segmenter model alone,
            e.g. ``work_dirs/panoptic_fpn_tiny_synth/latest.pth``), loaded strictly when the model
            is built. Leave it ``None`` when a whole scene-graph checkpoint is loaded afterwards.
        freeze_segmenter: keep the segmenter in eval mode and run it without gradient (configs
            also list ``'segmenter'`` in ``freeze_modules`` so its parameters are not optimised).

    ``predict`` returns, per image, the objects (labels: ground truth in PredCls, the head's in
    SGCls, the segmenter's in SGDet; scores: the head's object confidence, 1 in PredCls) with
    masks, boxes and panoptic map at ``meta.ori_shape``, and every ordered pair ranked by
    predicate probability x subject score x object score.
    """

    def __init__(self, segmenter: Mapping[str, Any], relation_head: Mapping[str, Any],
                 use_gt_box: bool = True, use_gt_label: bool = True,
                 segmenter_checkpoint: str | None = None, freeze_segmenter: bool = True) -> None:
        super().__init__()
        self.mode = mode_name(use_gt_box, use_gt_label)
        given = [k for k in ('mode', *SEGMENTER_GIVEN) if k in relation_head]
        if given:
            raise ConfigError(f'model.relation_head: {given} are set by the two-stage model (mode '
                              'from use_gt_box/use_gt_label, channels and strides from the '
                              "segmenter's feature_levels); remove them from the config")
        self.segmenter = build_segmenter(segmenter)
        if segmenter_checkpoint is not None:
            self.load_segmenter(segmenter_checkpoint)
        levels = self.segmenter.feature_levels
        self.relation_head: RelationHead = MODELS.build(
            relation_head, mode=self.mode, in_channels=levels[0].channels,
            featmap_strides=[level.stride for level in levels])
        self.freeze_segmenter = freeze_segmenter
        self.train()

    def load_segmenter(self, path: str) -> None:
        """Load the segmenter's weights from the checkpoint ``path`` (keys and shapes must
        match)."""
        from ..engine.checkpoint import CheckpointError, load_weights

        if not os.path.isfile(path):
            raise CheckpointError(
                f'{path}: segmenter checkpoint not found (train the segmenter first, or pass '
                '--cfg-options model.segmenter_checkpoint=None when a whole scene-graph checkpoint '
                'is loaded afterwards)')
        load_weights(self.segmenter, path, strict=True)

    def train(self, mode: bool = True) -> 'TwoStageSceneGraph':
        super().train(mode)
        if self.freeze_segmenter:
            self.segmenter.eval()
        return self

    # ----------------------------------------------------------------------------- first stage
    def extract_feats(self, imgs: torch.Tensor) -> Mapping[str, torch.Tensor]:
        """The segmenter's feature maps by name (:meth:`~.segmenters.base.Segmenter.extract_feats`),
        without gradient while the segmenter is frozen."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_segmenter):
            return self.segmenter.extract_feats(imgs)

    def objects(self, feats: Mapping[str, torch.Tensor], batch: Batch, training: bool
                ) -> tuple[list[ObjectSet], list[SegmentResult] | None]:
        """The objects of every image and, in SGDet, the segmenter's ``SegmentResult`` s."""
        head = self.relation_head
        for sample in batch.samples:
            check_labels(sample, head.num_classes)
            check_boxes(sample)
            checked_rels(sample, head.num_predicates)
        if self.mode != 'sgdet':
            return [ObjectSet(boxes=s.boxes, img_shape=tuple(s.meta.img_shape),
                              labels=s.labels if self.mode == 'predcls' else None,
                              masks=s.masks if head.with_mask_feats else None, targets=s.labels)
                    for s in batch.samples], None
        segments = self.segmenter.panoptic_segments(feats, batch)
        objects = []
        for seg, sample in zip(segments, batch.samples):
            boxes = seg.boxes().float()
            targets = None
            if training:
                targets = assign_object_targets(boxes, sample.boxes.to(boxes),
                                                sample.labels.to(boxes.device), head.num_classes)
            objects.append(ObjectSet(boxes=boxes, img_shape=tuple(sample.meta.img_shape),
                                     labels=seg.labels.long(), targets=targets,
                                     masks=seg.masks() if head.with_mask_feats else None))
        return objects, segments

    def _levels(self, feats: Mapping[str, torch.Tensor], keep: Sequence[int]) -> list[torch.Tensor]:
        """The relation heads' maps (the segmenter's ``feature_levels``) of the images ``keep``."""
        index = torch.as_tensor(list(keep), dtype=torch.long)
        return [f[index.to(f.device)] for f in self.segmenter.relation_features(feats)]

    # ----------------------------------------------------------------------------- training
    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Relation-head losses of the images that have objects (see
        :meth:`~.relation_heads.head.RelationHead.loss`)."""
        feats = self.extract_feats(batch.imgs)
        objects, _ = self.objects(feats, batch, training=True)
        keep = [i for i, o in enumerate(objects) if len(o)]
        if not keep:
            zero = sum(p.sum() for p in self.relation_head.parameters()) * 0.0
            return {'loss_relation': zero}
        return self.relation_head.loss(self._levels(feats, keep), [objects[i] for i in keep],
                                       [batch.samples[i] for i in keep])

    # ----------------------------------------------------------------------------- inference
    @torch.no_grad()
    def predict(self, batch: Batch) -> list[Prediction]:
        feats = self.extract_feats(batch.imgs)
        objects, segments = self.objects(feats, batch, training=False)
        keep = [i for i, o in enumerate(objects) if len(o)]
        results = iter(self.relation_head.predict(self._levels(feats, keep),
                                                  [objects[i] for i in keep]) if keep else [])
        predictions = []
        for i, sample in enumerate(batch.samples):
            if not len(objects[i]):
                predictions.append(Prediction.empty(sample.meta.image_id,
                                                    tuple(sample.meta.ori_shape),
                                                    self.relation_head.num_predicates))
                continue
            predictions.append(self.to_prediction(next(results), objects[i], sample,
                                                  None if segments is None else segments[i]))
        return predictions

    def to_prediction(self, result: RelationResult, objects: ObjectSet, sample: Sample,
                      segments: SegmentResult | None) -> Prediction:
        """One image's :class:`Prediction` at ``meta.ori_shape``: SGDet masks and panoptic map from
        the segmenter's id map, otherwise from the ground-truth masks (``None`` when the pipeline
        loaded none)."""
        meta = sample.meta
        if segments is not None:
            pan_id_map = nearest_to_original(segments.id_map, meta).cpu().numpy()
            masks = id_map_to_masks(pan_id_map, len(objects))
        elif sample.masks.shape[-2:].numel():
            masks = nearest_to_original(sample.masks, meta).cpu().numpy()
            pan_id_map = masks_to_id_map(masks)
        else:
            masks = pan_id_map = None
        return Prediction(
            image_id=meta.image_id,
            labels=result.labels.cpu().numpy().astype(np.int64),
            scores=result.scores.cpu().numpy().astype(np.float32),
            boxes=boxes_to_original(objects.boxes, meta).cpu().numpy(),
            masks=masks,
            pairs=result.pairs.cpu().numpy().astype(np.int64),
            predicate_scores=result.predicate_scores.cpu().numpy().astype(np.float32),
            triplet_scores=result.triplet_scores.cpu().numpy().astype(np.float32),
            no_relation_scores=result.no_relation_scores.cpu().numpy().astype(np.float32),
            pan_id_map=pan_id_map)


@MODELS.register()
class SceneGraphPanopticFPN(TwoStageSceneGraph):
    """The two-stage model in the layout of earlier configs and checkpoints: every keyword that is
    not a :class:`TwoStageSceneGraph` argument configures the segmenter of type
    ``segmenter_type``, and the relation head may repeat ``in_channels`` / ``featmap_strides``
    (they must then equal the segmenter's). Checkpoints of both classes share their weight names
    (``segmenter.*``, ``relation_head.*``), so they load into either. New configs use
    ``TwoStageSceneGraph(segmenter=dict(type=...))``.
    """

    def __init__(self, relation_head: Mapping[str, Any], use_gt_box: bool = True,
                 use_gt_label: bool = True, segmenter_type: str = 'PanopticFPN',
                 segmenter_checkpoint: str | None = None, freeze_segmenter: bool = True,
                 **segmenter: Any) -> None:
        head = dict(relation_head)
        repeated = {k: head.pop(k) for k in SEGMENTER_GIVEN if k in head}
        super().__init__({'type': segmenter_type, **segmenter}, head, use_gt_box, use_gt_label,
                         segmenter_checkpoint, freeze_segmenter)
        levels = self.segmenter.feature_levels
        given = {'in_channels': levels[0].channels,
                 'featmap_strides': [level.stride for level in levels]}
        wrong = {k: v for k, v in repeated.items()
                 if (list(v) if k == 'featmap_strides' else v) != given[k]}
        if wrong:
            raise ConfigError(f'model.relation_head: {wrong} differ from what the segmenter '
                              f'{segmenter_type} declares {given}')
