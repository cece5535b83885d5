"""PanopticFCN on PSG (Li et al., "Fully Convolutional Networks for Panoptic Segmentation",
CVPR'21).

A box-free segmenter: every thing instance and every stuff class is a generated **kernel**, and its
mask is that kernel applied (a 1x1 dynamic convolution) to one shared stride-4 feature map.

* Backbone: ResNet (FrozenBatchNorm) + FPN P2..P5 (256 ch) and P6/P7 from P5 (two stride-2 3x3
  convs, ReLU between): strides 4..128.
* Position head, shared over P3..P7: three modulated deformable 3x3 convs (GroupNorm, ReLU), then a
  3x3 conv to the thing centre heatmaps (80 ch) and one to the stuff region maps (54 ch: the
  "thing" region first, then the 53 stuff classes).
* Kernel head, shared over P3..P7: CoordConv, three 3x3 convs (GroupNorm, ReLU) and a 3x3 conv
  -> a 256-d vector per position.
* Feature encoder: the semantic-FPN merge of P2..P5 (256 ch, GroupNorm) -> CoordConv -> three
  3x3 convs of 64 ch (ReLU) -> ``E (B, 64, H/4, W/4)``.
* Kernel generators (things, stuff): a linear map 256 -> 64 of the chosen kernel-head vectors;
  ``masks = K E``.

Training picks, for each ground-truth thing, the 7 positions inside its mask where the predicted
centre score of its class is highest (one kernel and mask each), and for each stuff class present
on a level, the kernel-head map averaged over its region (:mod:`.panoptic_fcn_targets` builds the
targets). Inference finds centre peaks and stuff regions on every level, fuses kernels of the same
class with cosine similarity >= 0.9, rescores things by their mask and combines things and stuff
panopticapi-style (:func:`~.panoptic_fusion.combine_things_and_stuff`).

Images are normalised by the project's pipeline (RGB mean and std, what torchvision's ImageNet
weights expect); the released PanopticFCN subtracts RGB means from BGR images with std 1, which is
not reproduced.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from ...registry import MODELS
from ...structures import Batch, ImageMeta, logits_to_original, upsample_stride
from ...structures.labels import NUM_THING_CLASSES, STUFF_CLASSES
from ..backbones.resnet_fpn import build_resnet_fpn
from ..layers import ConvStack
from ..losses import sigmoid_focal_loss, squared_dice_loss
from ..options import checked_options
from .base import FeatureLevel, Segmenter, SegmentResult
from .panoptic_fcn_targets import INSTANCE_SCALES, THING_REGION, LevelTargets, panoptic_fcn_targets
from .panoptic_fusion import combine_things_and_stuff
from .resize import resize_maps
from .semantic_head import SemanticFPNMerge

FPN_LEVELS = ('0', '1', '2', '3')  # P2..P5, strides 4..32: the encoder's input and relation heads'
HEAD_LEVELS = ('1', '2', '3', 'p6', 'p7')  # P3..P7, strides 8..128: position and kernel heads
EPS = 1e-8

#: Target assignment and loss settings (the released code's defaults).
DEFAULT_TRAIN_CFG = dict(instance_scales=INSTANCE_SCALES, pos_num=7, min_overlap=0.7,
                         sigma_factor=3.0, focal_alpha=0.25, focal_gamma=2.0)
#: Weights of ``loss_pos_th``, ``loss_pos_st`` (position) and ``loss_seg_th``, ``loss_seg_st``.
DEFAULT_LOSS_WEIGHTS = dict(pos_th=1.0, pos_st=1.0, seg_th=3.0, seg_st=3.0)
#: Inference settings (the released code's defaults; its FAST configs use ``center_thr=0.2``,
#: ``stuff_thr=0.1``). ``stuff_area_limit`` counts pixels at the size the segments are made at.
DEFAULT_TEST_CFG = dict(smooth_kernels=(3, 3, 3, 5, 5), nms_kernel=3, peaks_per_level=50,
                        center_thr=0.05, stuff_thr=0.05, fusion_thr=0.9, mask_thr=0.4,
                        rescore_thr=0.05, max_per_img=100, score_thr=0.2, overlap_thr=0.5,
                        stuff_area_limit=4096)


class PositionHead(nn.Module):
    """Thing centres and stuff regions on one FPN level.

    ``(B, in_channels, h, w)`` -> centre logits ``(B, num_things, h, w)`` and region logits
    ``(B, num_regions, h, w)`` (channel 0 = "thing" region, ``1 + s`` = stuff class ``s``). Both
    output convs start from ``N(0, 0.01)`` weights and bias ``bias`` (prior ~0.1).
    """

    def __init__(self, in_channels: int = 256, channels: int = 256, num_convs: int = 3,
                 num_groups: int = 32, deform: bool = True, num_things: int = NUM_THING_CLASSES,
                 num_regions: int = 1 + len(STUFF_CLASSES), bias: float = -2.19) -> None:
        super().__init__()
        self.tower = ConvStack(in_channels, channels, num_convs, num_groups, deform=deform)
        self.centres = nn.Conv2d(channels, num_things, 3, padding=1)
        self.regions = nn.Conv2d(channels, num_regions, 3, padding=1)
        for conv in (self.centres, self.regions):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.constant_(conv.bias, bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.tower(x)
        return self.centres(x), self.regions(x)


class KernelHead(nn.Module):
    """Kernel-head vectors on one FPN level: CoordConv, ``num_convs`` 3x3 convs (GroupNorm, ReLU)
    and a 3x3 conv (``N(0, 0.01)``, no activation).
    ``(B, in_channels, h, w) -> (B, channels, h, w)``.
    """

    def __init__(self, in_channels: int = 256, channels: int = 256, num_convs: int = 3,
                 num_groups: int = 32, deform: bool = False) -> None:
        super().__init__()
        self.tower = ConvStack(in_channels, channels, num_convs, num_groups, deform=deform,
                               coord=True)
        self.out = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.normal_(self.out.weight, std=0.01)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.tower(x))


class FeatureEncoder(nn.Module):
    """The high-resolution map the kernels are applied to: :class:`SemanticFPNMerge` of P2..P5
    (``merge_channels``, GroupNorm of ``merge_groups``, MSRA init) -> CoordConv -> ``num_convs``
    3x3 convs of ``channels`` (``num_groups=0``: no norm; ``deform`` for PanopticFCN*).
    P2..P5 ``(B, in_channels, H / s, W / s)`` -> ``(B, channels, H / 4, W / 4)``.
    """

    def __init__(self, in_channels: int = 256, merge_channels: int = 256, merge_groups: int = 32,
                 channels: int = 64, num_convs: int = 3, num_groups: int = 0,
                 deform: bool = False) -> None:
        super().__init__()
        self.merge = SemanticFPNMerge(in_channels, merge_channels, len(FPN_LEVELS), merge_groups)
        self.merge.reset_parameters()
        self.tower = ConvStack(merge_channels, channels, num_convs, num_groups, deform=deform,
                               coord=True)
        self.channels = channels

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.tower(self.merge(feats))


@dataclass
class HeadOutputs:
    """Everything the heads compute from the FPN maps: ``encoded (B, E, H4, W4)`` and, per level
    P3..P7, ``centres (B, num_things, h, w)``, ``regions (B, num_regions, h, w)`` logits and
    ``kernels (B, C, h, w)`` kernel-head vectors."""

    encoded: torch.Tensor
    centres: list[torch.Tensor]
    regions: list[torch.Tensor]
    kernels: list[torch.Tensor]

    def float(self) -> 'HeadOutputs':
        """The same outputs in float32 (inference runs in float32 under mixed precision)."""
        return HeadOutputs(self.encoded.float(), [c.float() for c in self.centres],
                           [r.float() for r in self.regions], [k.float() for k in self.kernels])


def _linear(in_features: int, out_features: int) -> nn.Linear:
    layer = nn.Linear(in_features, out_features)
    nn.init.normal_(layer.weight, std=0.01)
    nn.init.zeros_(layer.bias)
    return layer


def fuse_thing_kernels(kernels: torch.Tensor, labels: torch.Tensor,
                       threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """PanopticFCN's kernel fusion of thing candidates sorted by decreasing score.

    ``kernels (N, D)``, ``labels (N,)``. Kernel ``j`` is removed when an earlier kernel ``i < j``
    of the same class has cosine similarity >= ``threshold`` with it (whether or not ``i`` itself
    survives); a survivor becomes the mean of itself and the removed kernels whose first such
    earlier kernel it is. Returns the survivors' indices ``(M,)`` (in order) and their fused
    kernels ``(M, D)``.
    """
    unit = kernels / kernels.norm(dim=1, keepdim=True).clamp(min=EPS)
    similar = (unit @ unit.T >= threshold).triu() & (labels[:, None] == labels[None, :])
    first = similar & (similar.cumsum(0) == 1)  # row i: the kernels whose first match is i
    keep = torch.nonzero(first.diagonal())[:, 0]
    members = first[keep].to(kernels.dtype)
    return keep, members @ kernels / members.sum(1, keepdim=True)


def _thing_peaks(centres: torch.Tensor, smooth: int, nms: int, top: int,
                 threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centre peaks of one image on one level, ``centres (C, h, w)`` logits: the probabilities
    averaged with their ``smooth`` x ``smooth`` mean, peaks kept by an ``nms`` x ``nms`` max pool,
    the ``min(h w, top)`` best over all classes kept if ``> threshold``. Returns scores, classes
    and flat positions ``y w + x``."""
    probs = centres.sigmoid()[None]
    probs = (probs + F.avg_pool2d(probs, smooth, 1, (smooth - 1) // 2)) / 2
    peaks = probs * (F.max_pool2d(probs, nms, 1, (nms - 1) // 2) == probs)
    size = centres.shape[-2] * centres.shape[-1]
    scores, index = peaks.flatten().topk(min(size, top))
    keep = scores > threshold
    return scores[keep], index[keep] // size, index[keep] % size


def _stuff_regions(regions: torch.Tensor, threshold: float
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stuff regions of one image on one level, ``regions (S, h, w)`` logits: each pixel goes to
    its most probable channel; a channel's score is its mean probability over its pixels. Returns
    the channels scoring ``> threshold``, their scores and their regions ``(M, h, w)`` bool."""
    probs = regions.sigmoid()
    best = probs.argmax(0)
    channels = torch.unique(best)
    masks = best[None] == channels[:, None, None]
    scores = (probs[channels] * masks).flatten(1).sum(1) / masks.flatten(1).sum(1)
    keep = scores > threshold
    return channels[keep], scores[keep], masks[keep]


def _region_kernels(regions: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """``(M, C)``: the kernel-head map ``kernels (C, h, w)`` summed over each region of
    ``regions (M, h, w)`` and divided by the whole map's ``h w`` (not the region's area)."""
    return torch.einsum('mhw,chw->mc', regions.to(kernels.dtype), kernels) / kernels[0].numel()


@MODELS.register()
class PanopticFCN(Segmenter):
    """PanopticFCN for PSG's 80 thing and 53 stuff classes.

    Args:
        backbone: :func:`~openpsg.models.backbones.resnet_fpn.build_resnet_fpn` options (``depth``
            18/34/50/101, ``pretrained`` (``True``: torchvision ImageNet weights, or a file),
            ``frozen_stages``, ``out_channels``).
        num_things, num_stuff: class counts; PSG classes are things ``0..num_things-1``, then stuff.
        position_head, kernel_head, feature_encoder: options of :class:`PositionHead`,
            :class:`KernelHead`, :class:`FeatureEncoder` (channels, convs, groups, deform).
        train_cfg: ``instance_scales`` (sqrt-area range per level P3..P7), ``pos_num`` (kernels per
            thing and level), ``min_overlap`` and ``sigma_factor`` (centre Gaussians),
            ``focal_alpha``, ``focal_gamma``. Defaults: :data:`DEFAULT_TRAIN_CFG`.
        loss_weights: ``pos_th``, ``pos_st``, ``seg_th``, ``seg_st``
            (:data:`DEFAULT_LOSS_WEIGHTS`: 1, 1, 3, 3).
        test_cfg: see :meth:`panoptic_segments`; defaults :data:`DEFAULT_TEST_CFG`.

    An unknown key in ``train_cfg``, ``loss_weights`` or ``test_cfg`` is a ``ValueError``.
    """

    def __init__(self, backbone: Mapping[str, Any] | None = None,
                 num_things: int = NUM_THING_CLASSES, num_stuff: int = len(STUFF_CLASSES),
                 position_head: Mapping[str, Any] | None = None,
                 kernel_head: Mapping[str, Any] | None = None,
                 feature_encoder: Mapping[str, Any] | None = None,
                 train_cfg: Mapping[str, Any] | None = None,
                 loss_weights: Mapping[str, Any] | None = None,
                 test_cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.num_things = num_things
        self.num_stuff = num_stuff
        self.train_cfg = checked_options(DEFAULT_TRAIN_CFG, train_cfg, 'PanopticFCN',
                                         'train_cfg')
        self.loss_weights = checked_options(DEFAULT_LOSS_WEIGHTS, loss_weights, 'PanopticFCN',
                                            'loss_weights')
        self.test_cfg = checked_options(DEFAULT_TEST_CFG, test_cfg, 'PanopticFCN', 'test_cfg')
        for cfg, key in ((self.train_cfg, 'instance_scales'), (self.test_cfg, 'smooth_kernels')):
            if len(cfg[key]) != len(HEAD_LEVELS):
                raise ValueError(f'PanopticFCN: {key} needs one entry per level P3..P7, '
                                 f'got {cfg[key]}')
        backbone = dict(backbone or {})
        channels = backbone.setdefault('out_channels', 256)
        self.backbone = build_resnet_fpn(**backbone, extra_blocks=LastLevelP6P7(channels, channels))
        self.feature_levels = tuple(FeatureLevel(name, 4 * 2**k, channels)
                                    for k, name in enumerate(FPN_LEVELS))
        self.position_head = PositionHead(channels, num_things=num_things,
                                          num_regions=1 + num_stuff, **(position_head or {}))
        self.kernel_head = KernelHead(channels, **(kernel_head or {}))
        self.feature_encoder = FeatureEncoder(channels, **(feature_encoder or {}))
        kernel_channels = self.kernel_head.out.out_channels
        self.thing_generator = _linear(kernel_channels, self.feature_encoder.channels)
        self.stuff_generator = _linear(kernel_channels, self.feature_encoder.channels)

    def extract_feats(self, imgs: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """``imgs (B, 3, H, W)`` -> FPN maps ``'0'..'3'`` (P2..P5, strides 4..32), ``'p6'``,
        ``'p7'`` (strides 64, 128), each ``(B, C, ceil(H / s), ceil(W / s))``."""
        return self.backbone(imgs)

    def heads(self, feats: Mapping[str, torch.Tensor]) -> HeadOutputs:
        """Run the feature encoder on P2..P5 and the position and kernel heads on P3..P7."""
        encoded = self.feature_encoder([feats[k] for k in FPN_LEVELS])
        centres, regions = zip(*(self.position_head(feats[k]) for k in HEAD_LEVELS))
        kernels = [self.kernel_head(feats[k]) for k in HEAD_LEVELS]
        return HeadOutputs(encoded, list(centres), list(regions), kernels)

    # ------------------------------------------------------------------------------ training
    def targets(self, batch: Batch, out: HeadOutputs) -> list[list[LevelTargets]]:
        """:func:`~.panoptic_fcn_targets.panoptic_fcn_targets` of every image (per level)."""
        cfg = self.train_cfg
        sizes = [tuple(c.shape[-2:]) for c in out.centres]
        with torch.autocast(batch.imgs.device.type, enabled=False):  # targets in float32
            return [panoptic_fcn_targets(sample, tuple(batch.imgs.shape[-2:]),
                                         tuple(out.encoded.shape[-2:]), sizes, self.num_things,
                                         self.num_stuff, cfg['instance_scales'],
                                         cfg['min_overlap'], cfg['sigma_factor'])
                    for sample in batch.samples]

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``loss_pos_th`` (focal loss of the centre heatmaps, summed, divided by the number of
        thing assignments), ``loss_pos_st`` (focal loss of the region maps, averaged per map,
        summed, divided by the batch size), ``loss_seg_th`` (weighted dice of the thing masks)
        and ``loss_seg_st`` (dice of the stuff masks), the last two divided by the number of
        thing assignments / stuff entries.

        The dice weights of a thing's ``pos_num`` masks are its centre probabilities at the
        chosen positions normalised to sum 1, **not detached** (as in the released code), so the
        mask loss also trains the position head. A level with fewer than ``pos_num`` positions
        (P7 of a small image) gives each thing all of them.
        """
        cfg, weights = self.train_cfg, self.loss_weights
        out = self.heads(self.extract_feats(batch.imgs))
        targets = self.targets(batch, out)
        focal = dict(alpha=cfg['focal_alpha'], gamma=cfg['focal_gamma'])
        pos_th = pos_st = 0
        for level, (centres, regions) in enumerate(zip(out.centres, out.regions)):
            heatmaps = torch.stack([t[level].heatmap for t in targets])
            pos_th = pos_th + torchvision.ops.sigmoid_focal_loss(centres, heatmaps,
                                                                 reduction='sum', **focal)
            scores = torch.stack([t[level].region_scores for t in targets])
            pos_st = pos_st + sigmoid_focal_loss(regions.flatten(0, 1).flatten(1),
                                                 scores.flatten(0, 1).flatten(1), len(batch),
                                                 **focal)
        seg_th, num_th = self._thing_mask_loss(out, targets)
        seg_st, num_st = self._stuff_mask_loss(out, targets)
        return {'loss_pos_th': weights['pos_th'] * pos_th / max(num_th, 1),
                'loss_pos_st': weights['pos_st'] * pos_st,
                'loss_seg_th': weights['seg_th'] * seg_th / max(num_th, 1),
                'loss_seg_st': weights['seg_st'] * seg_st / max(num_st, 1)}

    def _thing_mask_loss(self, out: HeadOutputs, targets: list[list[LevelTargets]]
                         ) -> tuple[torch.Tensor, int]:
        """Summed weighted dice of the thing masks and the number of thing assignments."""
        top = self.train_cfg['pos_num']
        total, count = out.encoded.new_zeros(()), 0
        for b, image_targets in enumerate(targets):
            encoded = out.encoded[b].flatten(1)
            for level, t in enumerate(image_targets):
                n = len(t.thing_labels)
                centres, kernels = out.centres[level][b], out.kernels[level][b]
                guide = resize_maps(t.thing_masks, centres.shape[-2:])
                guidance = torch.where(guide > 0.1, centres[t.thing_labels].sigmoid(),
                                       torch.zeros_like(guide))
                weight, position = guidance.flatten(1).topk(min(top, centres[0].numel()), dim=1)
                chosen = kernels.flatten(1)[:, position].permute(1, 2, 0)  # (n, k, C)
                probs = (self.thing_generator(chosen) @ encoded).sigmoid()  # (n, k, P)
                dice = squared_dice_loss(probs, t.thing_masks.flatten(1)[:, None], eps=EPS)
                weight = weight / weight.sum(1, keepdim=True).clamp(min=EPS)
                total = total + (dice * weight).sum()
                count += n
        return total, count

    def _stuff_mask_loss(self, out: HeadOutputs, targets: list[list[LevelTargets]]
                         ) -> tuple[torch.Tensor, int]:
        """Summed dice of the stuff masks and the number of stuff entries."""
        total, count = out.encoded.new_zeros(()), 0
        for b, image_targets in enumerate(targets):
            kernels = torch.cat([_region_kernels(t.stuff_regions, out.kernels[level][b])
                                 for level, t in enumerate(image_targets)])
            masks = torch.cat([t.stuff_masks for t in image_targets]).flatten(1)
            probs = (self.stuff_generator(kernels) @ out.encoded[b].flatten(1)).sigmoid()
            total = total + squared_dice_loss(probs, masks, eps=EPS).sum()
            count += len(masks)
        return total, count

    # ------------------------------------------------------------------------------ inference
    @torch.no_grad()
    def panoptic_segments(self, feats: Mapping[str, torch.Tensor], batch: Batch,
                          rescale: bool = False) -> list[SegmentResult]:
        """The panoptic segmentation of every image of ``batch`` (see :class:`SegmentResult`),
        at ``meta.img_shape`` or, with ``rescale``, at ``meta.ori_shape``.

        ``test_cfg`` steps: per level P3..P7, centre probabilities are smoothed with their
        ``smooth_kernels[l]`` mean, peaks kept by a ``nms_kernel`` max pool, the best
        ``peaks_per_level`` above ``center_thr`` become thing candidates; stuff channels whose
        mean probability over their argmax pixels is above ``stuff_thr`` become stuff candidates
        (kernel: the region average of the kernel map). Thing kernels are fused (cosine >=
        ``fusion_thr``, same class, :func:`fuse_thing_kernels`), stuff kernels and scores
        averaged per class over the levels. A thing's score is multiplied by its mean mask
        probability over its pixels above ``mask_thr``; things under ``rescore_thr`` are dropped
        and the best ``max_per_img`` kept. Masks are upsampled to the image, resized to the output
        size and binarised at ``mask_thr``; the stuff map is the argmax of the stuff masks. Then
        :func:`~.panoptic_fusion.combine_things_and_stuff` with ``score_thr``, ``overlap_thr``
        and ``stuff_area_limit`` (pixels at the output size). Thing scores: rescored kernel
        scores; stuff scores: the fused class scores.
        """
        out = self.heads(feats).float()
        with torch.autocast(batch.imgs.device.type, enabled=False):  # kernels, masks in float32
            return [self._segment_image(out, b, meta, rescale)
                    for b, meta in enumerate(batch.metas)]

    def _candidates(self, out: HeadOutputs, b: int) -> tuple[torch.Tensor, ...]:
        """Thing candidates (kernels, scores, classes; by decreasing score) and stuff candidates
        (kernels, scores, channels) of image ``b`` over all levels, before fusion."""
        cfg = self.test_cfg
        things: list[tuple[torch.Tensor, ...]] = []
        stuff: list[tuple[torch.Tensor, ...]] = []
        for level, smooth in enumerate(cfg['smooth_kernels']):
            kernels = out.kernels[level][b]
            scores, classes, positions = _thing_peaks(
                out.centres[level][b], smooth, cfg['nms_kernel'], cfg['peaks_per_level'],
                cfg['center_thr'])
            things.append((kernels.flatten(1)[:, positions].T, scores, classes))
            channels, scores, regions = _stuff_regions(out.regions[level][b], cfg['stuff_thr'])
            stuff.append((_region_kernels(regions, kernels), scores, channels))
        thing_kernels, thing_scores, thing_classes = (torch.cat(x) for x in zip(*things))
        order = torch.argsort(thing_scores, descending=True, stable=True)
        stuff_kernels, stuff_scores, stuff_channels = (torch.cat(x) for x in zip(*stuff))
        return (thing_kernels[order], thing_scores[order], thing_classes[order], stuff_kernels,
                stuff_scores, stuff_channels)

    def _segment_image(self, out: HeadOutputs, b: int, meta: ImageMeta, rescale: bool
                       ) -> SegmentResult:
        cfg = self.test_cfg

        def to_output(maps: torch.Tensor) -> torch.Tensor:
            """Stride-4 maps ``(K, h, w)`` -> the output frame: bilinear to the input size, and
            with ``rescale`` bilinear on to the original size with the flip undone."""
            if rescale:
                return logits_to_original(maps, meta)
            return upsample_stride(maps, 4, tuple(meta.img_shape))

        thing_kernels, thing_scores, thing_classes, stuff_kernels, stuff_scores, channels = \
            self._candidates(out, b)
        masks, scores, classes = self._things(out.encoded[b], thing_kernels, thing_scores,
                                              thing_classes, to_output)
        semantic, class_scores = self._stuff(out.encoded[b], stuff_kernels, stuff_scores,
                                             channels, to_output)
        return combine_things_and_stuff(
            masks, scores, classes, semantic, class_scores, self.num_things,
            score_thr=cfg['score_thr'], overlap_thr=cfg['overlap_thr'],
            stuff_area_limit=cfg['stuff_area_limit'])

    def _things(self, encoded: torch.Tensor, kernels: torch.Tensor, scores: torch.Tensor,
                classes: torch.Tensor, to_output: Callable[[torch.Tensor], torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fused, rescored thing candidates of one image that can enter the panoptic result
        (score >= ``score_thr``), best first: binary masks ``(N, H, W)`` in the output frame
        (``to_output``), scores, classes."""
        cfg = self.test_cfg
        keep, kernels = fuse_thing_kernels(self.thing_generator(kernels), classes,
                                           cfg['fusion_thr'])
        probs = torch.einsum('nc,chw->nhw', kernels, encoded).sigmoid()
        binary = probs > cfg['mask_thr']
        mask_score = (probs * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
        scores, classes = scores[keep] * mask_score, classes[keep]
        order = torch.argsort(scores, descending=True, stable=True)
        order = order[scores[order] >= cfg['rescore_thr']][:cfg['max_per_img']]
        order = order[scores[order] >= cfg['score_thr']]
        masks = to_output(probs[order]) > cfg['mask_thr']
        return masks, scores[order], classes[order]

    def _stuff(self, encoded: torch.Tensor, kernels: torch.Tensor, scores: torch.Tensor,
               channels: torch.Tensor, to_output: Callable[[torch.Tensor], torch.Tensor]
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """The stuff map of one image: candidates of one channel averaged over the levels
        (kernels and scores), the argmax of their masks in the output frame (``to_output``). Returns the stuff index of
        every pixel (``channel - 1``; ``-1`` where the "thing" region wins) and the score of each
        stuff class ``(num_stuff,)``."""
        channels, group = torch.unique(channels, return_inverse=True)
        members = group[None] == torch.arange(len(channels), device=group.device)[:, None]
        members = members.to(kernels.dtype) / members.sum(1, keepdim=True)
        probs = torch.einsum('mc,chw->mhw', self.stuff_generator(members @ kernels),
                             encoded).sigmoid()
        if len(channels):
            best = channels[to_output(probs).argmax(0)]
        else:
            size = to_output(encoded[:1]).shape[-2:]
            best = torch.full(size, THING_REGION, device=encoded.device)
        class_scores = torch.zeros(self.num_stuff, device=encoded.device)
        is_stuff = channels != THING_REGION
        class_scores[channels[is_stuff] - 1] = (members @ scores)[is_stuff]
        return torch.where(best == THING_REGION, torch.full_like(best, -1), best - 1), \
            class_scores
