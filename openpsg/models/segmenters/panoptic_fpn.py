"""Panoptic FPN (Kirillov et al., CVPR'19) on PSG, built from torchvision's Mask R-CNN parts.

The first stage of the two-stage scene-graph models: ResNet-FPN backbone -> RPN -> RoI heads
(box + mask branches for the 80 thing classes) and a semantic FPN head (53 stuff classes + "thing"),
fused heuristically into one panoptic segmentation per image. Module names follow torchvision's
``MaskRCNN`` (``backbone``, ``rpn``, ``roi_heads``) so its COCO weights load directly
(see :mod:`.coco_weights`).
"""
from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import (FastRCNNConvFCHead, FastRCNNPredictor,
                                                      TwoMLPHead)
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import RoIHeads, paste_masks_in_image
from torchvision.models.detection.rpn import AnchorGenerator, RegionProposalNetwork, RPNHead
from torchvision.ops import MultiScaleRoIAlign, clip_boxes_to_image, nms

from ...registry import MODELS
from ...structures import (Batch, Sample, boxes_to_original, logits_to_original, original_shape,
                           unflip, upsample_stride)
from ...structures.labels import NUM_THING_CLASSES, STUFF_CLASSES
from ..backbones.resnet_fpn import build_resnet_fpn
from ..options import checked_options
from .base import FeatureLevel, Segmenter, SegmentResult
from .coco_weights import VARIANTS
from .panoptic_fusion import heuristic_fusion
from .semantic_head import SemanticFPNHead, semantic_targets

FPN_LEVELS = ('0', '1', '2', '3')  # strides 4, 8, 16, 32; 'pool' (stride 64) feeds the RPN only

#: OpenPSG's panoptic test settings (mmdet's Panoptic FPN ``test_cfg``).
DEFAULT_TEST_CFG = dict(score_thr=0.6, nms_iou_thr=0.5, max_per_img=100, mask_thr=0.5,
                        overlap_thr=0.5, stuff_area_limit=4096)


def build_backbone(depth: int = 50, pretrained: bool | str = False, frozen_stages: int = 1,
                   variant: str = 'v1', out_channels: int = 256) -> BackboneWithFPN:
    """ResNet-``depth`` + FPN (``out_channels``, levels '0'..'3' and 'pool'), see
    :func:`~openpsg.models.backbones.resnet_fpn.build_resnet_fpn`. The v2 variant puts BatchNorm in
    the FPN convolutions, as ``maskrcnn_resnet50_fpn_v2`` does."""
    return build_resnet_fpn(depth, pretrained, frozen_stages, out_channels,
                            norm_layer=nn.BatchNorm2d if variant == 'v2' else None)


class Float32RPNHead(RPNHead):
    """torchvision's RPN head whose objectness logits and box deltas leave in float32, also under
    autocast: the RPN decodes the anchors into proposals in the deltas' dtype, and bfloat16 would
    round proposal coordinates of 512-2048 px to 2-8 px."""

    def forward(self, x: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        logits, deltas = super().forward(x)
        return [t.float() for t in logits], [t.float() for t in deltas]


def build_rpn(variant: str = 'v1', pre_nms_top_n_train: int = 2000, pre_nms_top_n_test: int = 1000,
              post_nms_top_n_train: int = 1000, post_nms_top_n_test: int = 1000,
              nms_iou_thr: float = 0.7, fg_iou_thr: float = 0.7, bg_iou_thr: float = 0.3,
              batch_size_per_image: int = 256, positive_fraction: float = 0.5,
              anchor_sizes: Sequence[int] = (32, 64, 128, 256, 512),
              in_channels: int = 256) -> RegionProposalNetwork:
    """torchvision's RPN over the 5 FPN levels: one anchor size per level (``anchor_sizes``,
    default 32..512 px), ratios 0.5/1/2; ``pre_nms_top_n`` counts per level, ``post_nms_top_n`` per
    image. v2 has two 3x3 convs in the head, v1 one."""
    if len(anchor_sizes) != len(FPN_LEVELS) + 1:
        raise ValueError(f'rpn.anchor_sizes needs one size per FPN level '
                         f'({len(FPN_LEVELS) + 1}), got {tuple(anchor_sizes)}')
    anchors = AnchorGenerator(tuple((int(a),) for a in anchor_sizes), ((0.5, 1.0, 2.0),) * 5)
    head = Float32RPNHead(in_channels, anchors.num_anchors_per_location()[0],
                          conv_depth=2 if variant == 'v2' else 1)
    return RegionProposalNetwork(
        anchors, head, fg_iou_thr, bg_iou_thr, batch_size_per_image, positive_fraction,
        pre_nms_top_n=dict(training=pre_nms_top_n_train, testing=pre_nms_top_n_test),
        post_nms_top_n=dict(training=post_nms_top_n_train, testing=post_nms_top_n_test),
        nms_thresh=nms_iou_thr)


class ThingRoIHeads(RoIHeads):
    """torchvision's Mask R-CNN RoI heads whose test-time NMS is class-agnostic.

    At test time every (RoI, class) pair scoring above ``score_thresh`` is a candidate box; one NMS
    at ``nms_thresh`` runs over all of them regardless of class and the best ``detections_per_img``
    stay. Labels are predictor rows: ``1..num_classes - 1`` (0 is background). Boxes and scores
    are decoded in float32, also under autocast.
    """

    def postprocess_detections(self, class_logits: torch.Tensor, box_regression: torch.Tensor,
                               proposals: list[torch.Tensor], image_shapes: list[tuple[int, int]]
                               ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        counts = [len(p) for p in proposals]
        boxes = self.box_coder.decode(box_regression.float(), proposals)
        boxes = boxes.reshape(sum(counts), class_logits.shape[-1], 4)  # (R, C, 4), also for R = 0
        probs = class_logits.float().softmax(-1)
        all_boxes, all_scores, all_labels = [], [], []
        for img_boxes, img_probs, shape in zip(boxes.split(counts), probs.split(counts), image_shapes):
            img_boxes = clip_boxes_to_image(img_boxes[:, 1:], shape)
            img_probs = img_probs[:, 1:]
            roi, cls = torch.nonzero(img_probs > self.score_thresh, as_tuple=True)
            cand_boxes, cand_scores = img_boxes[roi, cls], img_probs[roi, cls]
            keep = nms(cand_boxes, cand_scores, self.nms_thresh)[:self.detections_per_img]
            all_boxes.append(cand_boxes[keep])
            all_scores.append(cand_scores[keep])
            all_labels.append(cls[keep] + 1)
        return all_boxes, all_scores, all_labels


def build_roi_heads(variant: str = 'v1', num_things: int = NUM_THING_CLASSES, score_thr: float = 0.6,
                    nms_iou_thr: float = 0.5, max_per_img: int = 100, fg_iou_thr: float = 0.5,
                    bg_iou_thr: float = 0.5, batch_size_per_image: int = 512,
                    positive_fraction: float = 0.25, in_channels: int = 256,
                    representation_size: int = 1024, mask_channels: int = 256,
                    mask_convs: int = 4) -> ThingRoIHeads:
    """Box branch (RoIAlign 7x7 -> v1: two FC ``representation_size`` / v2: four conv+BN and one
    FC) and mask branch (RoIAlign 14x14 -> ``mask_convs`` convs of ``mask_channels``, v2 with BN
    -> 28x28 masks) over ``num_things + 1`` rows. The defaults are torchvision's Mask R-CNN."""
    norm = nn.BatchNorm2d if variant == 'v2' else None
    box_head = (FastRCNNConvFCHead((in_channels, 7, 7), [in_channels] * 4, [representation_size],
                                   norm_layer=norm) if variant == 'v2'
                else TwoMLPHead(in_channels * 7 * 7, representation_size))
    return ThingRoIHeads(
        box_roi_pool=MultiScaleRoIAlign(list(FPN_LEVELS), 7, 2), box_head=box_head,
        box_predictor=FastRCNNPredictor(representation_size, num_things + 1),
        fg_iou_thresh=fg_iou_thr, bg_iou_thresh=bg_iou_thr,
        batch_size_per_image=batch_size_per_image, positive_fraction=positive_fraction,
        bbox_reg_weights=None, score_thresh=score_thr, nms_thresh=nms_iou_thr,
        detections_per_img=max_per_img,
        mask_roi_pool=MultiScaleRoIAlign(list(FPN_LEVELS), 14, 2),
        mask_head=MaskRCNNHeads(in_channels, [mask_channels] * mask_convs, 1, norm_layer=norm),
        mask_predictor=MaskRCNNPredictor(mask_channels, mask_channels, num_things + 1))


@contextmanager
def _inference_mode(*modules: nn.Module) -> Iterator[None]:
    """Run ``modules`` in eval mode (torchvision's RPN/RoI heads choose test behaviour by it)."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


def thing_targets(sample: Sample, num_things: int) -> dict[str, torch.Tensor]:
    """torchvision detection targets of one sample: its thing segments with a non-empty box.

    ``boxes (K, 4)`` float xyxy input pixels, ``labels (K,)`` int64 predictor rows ``1..num_things``,
    ``masks (K, H, W)`` bool.
    """
    boxes = sample.boxes
    keep = (sample.labels < num_things) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return {'boxes': boxes[keep], 'labels': sample.labels[keep] + 1, 'masks': sample.masks[keep]}


@MODELS.register()
class PanopticFPN(Segmenter):
    """Panoptic FPN for PSG: Mask R-CNN for the 80 thing classes + semantic FPN head for stuff.

    Args:
        backbone: :func:`build_backbone` options (``depth`` 18/34/50/101, ``pretrained``,
            ``frozen_stages``, ``out_channels``).
        variant: ``'v1'`` (torchvision ``maskrcnn_resnet50_fpn``) or ``'v2'``
            (``maskrcnn_resnet50_fpn_v2``: BatchNorm in FPN and heads, conv box head, 2-conv RPN).
        num_things, num_stuff: class counts; PSG classes are things ``0..num_things-1`` then stuff.
        rpn: :func:`build_rpn` options. roi_head: :func:`build_roi_heads` sampling and size options.
        semantic_head: :class:`SemanticFPNHead` options (``inner_channels``, ``num_groups``,
            ``loss_weight``).
        test_cfg: ``score_thr``, ``nms_iou_thr`` (class-agnostic), ``max_per_img`` for the
            detections; ``mask_thr``, ``overlap_thr``, ``stuff_area_limit`` (pixels at the
            resolution the fusion runs at) for :func:`heuristic_fusion`. Defaults:
            :data:`DEFAULT_TEST_CFG`.

    Input images come from the pipeline already resized and normalised (no
    ``GeneralizedRCNNTransform``); ``meta.img_shape`` tells each image's valid region in the batch.
    """

    def __init__(self, backbone: Mapping[str, Any] | None = None, variant: str = 'v1',
                 num_things: int = NUM_THING_CLASSES, num_stuff: int = len(STUFF_CLASSES),
                 rpn: Mapping[str, Any] | None = None, roi_head: Mapping[str, Any] | None = None,
                 semantic_head: Mapping[str, Any] | None = None,
                 test_cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f'PanopticFPN variant must be one of {VARIANTS}, got {variant!r}')
        self.variant = variant
        self.num_things = num_things
        self.num_stuff = num_stuff
        self.test_cfg = checked_options(DEFAULT_TEST_CFG, test_cfg, 'PanopticFPN', 'test_cfg')
        self.backbone = build_backbone(**(backbone or {}), variant=variant)
        channels = self.backbone.out_channels
        self.feature_levels = tuple(FeatureLevel(name, 4 * 2**k, channels)
                                    for k, name in enumerate(FPN_LEVELS))
        self.rpn = build_rpn(variant, **{'in_channels': channels, **(rpn or {})})
        self.roi_heads = build_roi_heads(
            variant, num_things, in_channels=channels, score_thr=self.test_cfg['score_thr'],
            nms_iou_thr=self.test_cfg['nms_iou_thr'], max_per_img=self.test_cfg['max_per_img'],
            **(roi_head or {}))
        self.semantic_head = SemanticFPNHead(channels,
                                             num_classes=num_stuff + 1, **(semantic_head or {}))

    def extract_feats(self, imgs: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """``imgs (B, 3, H, W)`` -> FPN maps ``'0'..'3'`` (strides 4..32) and ``'pool'`` (stride 64),
        each ``(B, 256, ceil(H / s), ceil(W / s))``."""
        return self.backbone(imgs)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Segmentation losses: ``loss_objectness``, ``loss_rpn_box_reg`` (RPN), ``loss_classifier``,
        ``loss_box_reg``, ``loss_mask`` (thing branch) and ``loss_semantic`` (stuff + "thing")."""
        if not self.training:
            raise RuntimeError('PanopticFPN.loss needs the model in training mode (model.train())')
        feats = self.extract_feats(batch.imgs)
        logits = self.semantic_head([feats[k] for k in FPN_LEVELS])
        semantic = semantic_targets(batch.samples, tuple(logits.shape[-2:]), self.num_things,
                                    self.num_stuff)
        sizes = [tuple(m.img_shape) for m in batch.metas]
        targets = [thing_targets(s, self.num_things) for s in batch.samples]
        proposals, losses = self.rpn(ImageList(batch.imgs, sizes), feats, targets)
        _, roi_losses = self.roi_heads(feats, proposals, sizes, targets)
        return {**losses, **roi_losses, 'loss_semantic': self.semantic_head.loss(logits, semantic)}

    @torch.no_grad()
    def panoptic_segments(self, feats: Mapping[str, torch.Tensor], batch: Batch,
                          rescale: bool = False) -> list[SegmentResult]:
        """The panoptic segmentation of every image of ``batch`` from its features ``feats``
        (:meth:`extract_feats`), without gradient, whatever the training mode.

        Segments are at the input size ``meta.img_shape`` (or, with ``rescale``, at
        ``meta.ori_shape``: instance masks pasted into original-size boxes and semantic logits
        resized there - :func:`~openpsg.structures.logits_to_original`, bilinear - before fusing,
        as mmdet's Panoptic FPN does for evaluation; a flipped image is fused in its mirrored
        frame and the id map mirrored back). See :class:`SegmentResult` for the segment order and
        scores.
        """
        sizes = [tuple(m.img_shape) for m in batch.metas]
        with _inference_mode(self.rpn, self.roi_heads):
            proposals, _ = self.rpn(ImageList(batch.imgs, sizes), dict(feats))
            detections, _ = self.roi_heads(dict(feats), proposals, sizes)
        logits = self.semantic_head([feats[k] for k in FPN_LEVELS])
        fusion = {k: self.test_cfg[k] for k in ('score_thr', 'mask_thr', 'overlap_thr',
                                                 'stuff_area_limit')}
        results = []
        for i, (det, meta) in enumerate(zip(detections, batch.metas)):
            if rescale:
                mirrored = replace(meta, flip=False)
                size, boxes = original_shape(meta), boxes_to_original(det['boxes'], mirrored)
                semantic = logits_to_original(logits[i], mirrored)
            else:
                size, boxes = tuple(meta.img_shape), det['boxes']
                semantic = upsample_stride(logits[i], 4, size)
            masks = paste_masks_in_image(det['masks'], boxes, size, padding=1)[:, 0]
            result = heuristic_fusion(masks, det['scores'], det['labels'] - 1, semantic,
                                      self.num_things, **fusion)
            if rescale:
                result.id_map = unflip(result.id_map, meta)
            results.append(result)
        return results
