"""PanopticFCN: head shapes, targets worked out by hand, losses and their gradients, kernel fusion
and the panoptic combination by hand, the segmenter contract, ImageNet weights, the configs (the
R50 one at 800x1333) and overfitting four synthetic scenes to PQ > 50."""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from segmenter_scenes import coco_sized_batch
from openpsg.config import Config
from openpsg.datasets import DatasetError, PSGDataset
from openpsg.datasets.synthetic import generate_synthetic_psg
from openpsg.engine.optim import build_optimizer
from openpsg.evaluation import evaluate
from openpsg.models.segmenters import PanopticFCN, SegmentResult, combine_things_and_stuff
from openpsg.models.segmenters.panoptic_fcn import (_stuff_regions, _thing_peaks,
                                                    fuse_thing_kernels)
from openpsg.models.segmenters.panoptic_fcn_targets import panoptic_fcn_targets
from openpsg.registry import MODELS
from openpsg.structures import ImageMeta, Sample, collate_samples
from openpsg.structures.masks import masks_to_boxes

ROOT = Path(__file__).resolve().parents[1]
LOSS_KEYS = {'loss_pos_th', 'loss_pos_st', 'loss_seg_th', 'loss_seg_st'}
NORM = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
#: ResNet-18 with 32-channel FPN and heads, 16-d kernels: fast enough for unit tests.
TINY = dict(backbone=dict(depth=18, out_channels=32, frozen_stages=-1),
            position_head=dict(channels=32, num_groups=8),
            kernel_head=dict(channels=32, num_groups=8),
            feature_encoder=dict(merge_channels=32, merge_groups=8, channels=16))


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(**options) -> PanopticFCN:
    torch.manual_seed(0)
    return PanopticFCN(**{**TINY, **options})


def sample_from(masks: torch.Tensor, labels: list[int], boxes: list[list[float]],
                image_id: str = '7') -> Sample:
    h, w = masks.shape[-2:]
    meta = ImageMeta(image_id=image_id, ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w))
    return Sample(img=torch.zeros(3, h, w), meta=meta, labels=torch.tensor(labels),
                  boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), masks=masks,
                  rels=torch.zeros(0, 3, dtype=torch.long))


@pytest.fixture(scope='module')
def scenes(tmp_path_factory) -> tuple[PSGDataset, object]:
    """The first four test images of the synthetic PSG set (seed 0, 128 px: people, cars, boats
    on grass, road, sea, under sky) and their batch."""
    root = tmp_path_factory.mktemp('fcn') / 'psg_synth'
    generate_synthetic_psg(root, num_train=0, num_test=4, seed=0, size=128)
    pipeline = [dict(type='LoadImage'), dict(type='LoadPanopticAnnotations', with_rel=True),
                dict(type='Normalize', **NORM), dict(type='Pad', size_divisor=32),
                dict(type='PackSample')]
    dataset = PSGDataset(str(root / 'psg.json'), str(root), split='test', pipeline=pipeline)
    return dataset, collate_samples([dataset[i] for i in range(len(dataset))], size_divisor=32)


# ---------------------------------------------------------------------------------- shapes
def test_feature_maps_and_head_shapes():
    model = tiny_model()
    imgs = torch.randn(2, 3, 64, 96)
    feats = model.extract_feats(imgs)
    sizes = {'0': (16, 24), '1': (8, 12), '2': (4, 6), '3': (2, 3), 'p6': (1, 2), 'p7': (1, 1)}
    assert list(feats) == list(sizes)
    for name, size in sizes.items():
        assert feats[name].shape == (2, 32, *size), name
    assert [(lvl.name, lvl.stride, lvl.channels) for lvl in model.feature_levels] == [
        ('0', 4, 32), ('1', 8, 32), ('2', 16, 32), ('3', 32, 32)]
    out = model.heads(feats)
    assert out.encoded.shape == (2, 16, 16, 24)
    for level, name in enumerate(['1', '2', '3', 'p6', 'p7']):
        assert out.centres[level].shape == (2, 80, *sizes[name])
        assert out.regions[level].shape == (2, 54, *sizes[name])
        assert out.kernels[level].shape == (2, 32, *sizes[name])
    # published initialisation of the position outputs: N(0, 0.01), bias -2.19
    assert (model.position_head.centres.bias == -2.19).all()
    assert model.position_head.regions.weight.std().item() == pytest.approx(0.01, rel=0.1)
    assert model.thing_generator.weight.shape == (16, 32)
    r50 = PanopticFCN()
    assert [type(m).__name__ for m in r50.position_head.tower.layers][:3] == [
        'ModulatedDeformConv2d', 'GroupNorm', 'ReLU']
    assert r50.kernel_head.tower.layers[0].in_channels == 258  # CoordConv
    assert r50.feature_encoder.tower.layers[0].in_channels == 258
    assert r50.feature_encoder.tower.layers[-2].out_channels == 64
    assert r50.backbone.fpn.extra_blocks.p6.in_channels == 256  # P6 from P5, not C5


# ---------------------------------------------------------------------------------- targets
LEVELS_128 = [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]  # P3..P7 of a 128 x 128 input


def person_grass_sky() -> Sample:
    """128 x 128: a person (48 x 48 px at rows 16-63, columns 40-87), grass (class 125) on rows
    106-127, sky (119) on rows 0-9; everything else unlabelled."""
    masks = torch.zeros(3, 128, 128, dtype=torch.bool)
    masks[0, 16:64, 40:88] = True
    masks[1, 106:128] = True
    masks[2, 0:10] = True
    return sample_from(masks, [0, 125, 119], [[40, 16, 88, 64], [0, 106, 128, 128],
                                               [0, 0, 128, 10]])


def test_thing_centre_and_gaussian_by_hand():
    targets = panoptic_fcn_targets(person_grass_sky(), (128, 128), (32, 32), LEVELS_128, 80, 53)
    # Stride-4 mask (bilinear, row i samples input row 4i + 1.5): rows 4..15, columns 10..21 ->
    # mass centre (x, y) = (15.5, 9.5). sqrt(48 * 48) = 48 trains P3 [1, 64] and P4 [32, 128].
    p3, p4 = targets[0], targets[1]
    assert p3.thing_labels.tolist() == [0] and p4.thing_labels.tolist() == [0]
    assert all(len(t.thing_labels) == 0 for t in targets[2:])
    mask = p3.thing_masks[0]
    assert mask.shape == (32, 32) and mask[4:16, 10:22].eq(1).all() and mask.sum() == 12 * 12
    # P3 (16 x 16): centre (int(7.75), int(4.75)) = (7, 4); the box is 6 x 6 there, CornerNet
    # radius (-16.8 + sqrt(403.2)) / 2 = 1.64 -> 1, sigma = (2 * 1 + 1) / 3 = 1.
    e1, e2 = math.exp(-0.5), math.exp(-1.0)
    expected = torch.zeros(16, 16)
    expected[3:6, 6:9] = torch.tensor([[e2, e1, e2], [e1, 1.0, e1], [e2, e1, e2]])
    torch.testing.assert_close(p3.heatmap[0], expected)
    assert p3.heatmap[1:].sum() == 0
    # P4 (8 x 8): centre (int(3.875), int(2.375)) = (3, 2); box 3 x 3, radius 0.82 -> 0
    assert torch.nonzero(p4.heatmap).tolist() == [[0, 2, 3]] and p4.heatmap.max() == 1


def test_level_assignment_at_the_range_edges():
    masks = torch.zeros(5, 256, 256, dtype=torch.bool)
    masks[0, 0:32, 0:32] = True      # sqrt area 32: P3 (<= 64) and P4 (>= 32)
    masks[1, 0:64, 32:96] = True     # 64: P3, P4, P5
    masks[2, 0:33, 96:127] = True    # 31 x 33, sqrt 31.98: P3 only
    masks[3, 128:256, 0:128] = True  # 128: P4, P5, P6
    masks[4, 8:16, 200:208] = True   # box 0.5 x 0.5: below P3's lower limit 1
    boxes = [[0, 0, 32, 32], [32, 0, 96, 64], [96, 0, 127, 33], [0, 128, 128, 256],
             [200, 10, 200.5, 10.5]]
    sample = sample_from(masks, [1, 2, 3, 4, 5], boxes)
    targets = panoptic_fcn_targets(sample, (256, 256), (64, 64),
                                   [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)], 80, 53)
    assert [t.thing_labels.tolist() for t in targets] == [[1, 2, 3], [1, 2, 4], [2, 4], [4], []]
    # every assigned thing has one peak of 1 in its own channel
    for t in targets:
        for label in t.thing_labels.tolist():
            assert t.heatmap[label].max() == 1
        assert set(torch.nonzero(t.heatmap.flatten(1).amax(1))[:, 0].tolist()) == set(
            t.thing_labels.tolist())


def test_stuff_soft_targets_by_hand():
    targets = panoptic_fcn_targets(person_grass_sky(), (128, 128), (32, 32), LEVELS_128, 80, 53)
    p3, p4 = targets[0], targets[1]
    # channels: 0 = "thing" (first, as PanopticFCN), 1 + (class - 80): sky 119 -> 40, grass 125 -> 46
    assert p3.stuff_channels.tolist() == [0, 40, 46]
    # stride 4: grass starts at input row 106 -> row 26 samples 105.5 -> 0.5, rows 27.. -> 1;
    # sky ends at row 10 -> rows 0, 1 -> 1, row 2 samples 9.5 -> 0.5
    grass, sky = p3.stuff_masks[2], p3.stuff_masks[1]
    assert grass[:, 0].tolist() == [0.0] * 26 + [0.5] + [1.0] * 5
    assert sky[:, 5].tolist() == [1.0, 1.0, 0.5] + [0.0] * 29
    # P3 row j averages stride-4 rows 2j, 2j + 1: grass row 13 -> 0.75 (kept soft), sky row 1 ->
    # 0.25 (< 0.5, zeroed); P4 row j averages rows 4j + 1, 4j + 2: grass row 6 -> 0.25 (zeroed),
    # sky row 0 -> 0.75
    assert p3.region_scores[46, :, 3].tolist() == [0.0] * 13 + [0.75, 1.0, 1.0]
    assert p3.region_scores[40, :, 3].tolist() == [1.0] + [0.0] * 15
    assert p4.region_scores[46, :, 0].tolist() == [0.0] * 7 + [1.0]
    assert p4.region_scores[40, :, 0].tolist() == [0.75] + [0.0] * 7
    assert p3.stuff_regions[2].any(1).tolist() == [False] * 13 + [True] * 3
    # unlabelled pixels are negatives of every channel
    assert p3.region_scores[:, 8].sum() == 0
    assert p3.region_scores.shape == (54, 16, 16) and p3.region_scores[0].max() == 1.0


def test_bad_samples_are_named():
    sample = person_grass_sky()
    sample.masks = torch.zeros(3, 64, 64, dtype=torch.bool)
    with pytest.raises(DatasetError, match=r"image_id=7: masks: PanopticFCN needs one mask per "
                                           r"object at the image size .* got \(3, 64, 64\)"):
        panoptic_fcn_targets(sample, (128, 128), (32, 32), LEVELS_128, 80, 53)
    sample = person_grass_sky()
    sample.labels = torch.tensor([0, 125, 140])
    with pytest.raises(DatasetError, match=r"image_id=7: labels: classes \[140\] are outside "
                                           r"0\.\.132"):
        panoptic_fcn_targets(sample, (128, 128), (32, 32), LEVELS_128, 80, 53)


# ---------------------------------------------------------------------------------- losses
def test_losses_are_finite_and_reach_every_parameter(scenes):
    _, batch = scenes
    model = tiny_model().train()
    losses = model(batch, mode='loss')
    assert set(losses) == LOSS_KEYS
    for name, value in losses.items():
        assert value.ndim == 0 and torch.isfinite(value) and value > 0, name
    sum(losses.values()).backward()
    silent = [name for name, p in model.named_parameters()
              if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not silent
    groups = {name.split('.')[0] for name, _ in model.named_parameters()}
    assert groups == {'backbone', 'position_head', 'kernel_head', 'feature_encoder',
                      'thing_generator', 'stuff_generator'}


def test_thing_mask_loss_trains_the_position_head_through_its_dice_weights(scenes):
    # the released code weights each thing's k masks by the (not detached) centre probabilities
    _, batch = scenes
    model = tiny_model().train()
    model(batch)['loss_seg_th'].backward()
    assert model.position_head.centres.weight.grad.abs().sum() > 0
    assert model.position_head.regions.weight.grad is None or \
        model.position_head.regions.weight.grad.abs().sum() == 0


def test_a_batch_without_things_still_touches_the_thing_generator():
    masks = torch.zeros(2, 64, 64, dtype=torch.bool)
    masks[0, :32] = True
    masks[1, 32:] = True
    sample = sample_from(masks, [119, 125], [[0, 0, 64, 32], [0, 32, 64, 64]])
    model = tiny_model().train()
    losses = model(collate_samples([sample], size_divisor=32))
    assert losses['loss_seg_th'] == 0 and torch.isfinite(losses['loss_pos_th'])
    assert losses['loss_seg_st'] > 0
    sum(losses.values()).backward()
    # a zero gradient, not none: DistributedDataParallel needs every parameter in the graph
    assert model.thing_generator.weight.grad is not None


# ---------------------------------------------------------------------------------- inference
def unit(degrees: float) -> list[float]:
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


def test_kernel_fusion_by_hand():
    # cos(k0, k1) = 0.95 >= 0.9: k1 joins k0; cos(k0, k2) = 0.6 and cos(k1, k2) = 0.82: k2 stays
    kernels = torch.tensor([[1.0, 0.0], [0.95, math.sqrt(1 - 0.95 ** 2)], [0.6, 0.8]])
    keep, fused = fuse_thing_kernels(kernels, torch.tensor([3, 3, 3]), 0.9)
    assert keep.tolist() == [0, 2]
    torch.testing.assert_close(fused, torch.stack([(kernels[0] + kernels[1]) / 2, kernels[2]]))
    # only kernels of one class are fused
    keep, fused = fuse_thing_kernels(kernels, torch.tensor([3, 4, 3]), 0.9)
    assert keep.tolist() == [0, 1, 2] and torch.equal(fused, kernels)
    # a chain at 20 degree steps (cos 0.94): k1 is removed by k0 and k2 by k1 (cos(k0, k2) = 0.77),
    # although k1 did not survive; k0 absorbs k1 only
    kernels = 2 * torch.tensor([unit(0), unit(20), unit(40)])
    keep, fused = fuse_thing_kernels(kernels, torch.tensor([1, 1, 1]), 0.9)
    assert keep.tolist() == [0]
    torch.testing.assert_close(fused, (kernels[:1] + kernels[1:2]) / 2)
    keep, fused = fuse_thing_kernels(kernels[:0], torch.tensor([], dtype=torch.long), 0.9)
    assert keep.shape == (0,) and fused.shape == (0, 2)


def box(rows: slice, cols: slice) -> torch.Tensor:
    mask = torch.zeros(6, 8, dtype=torch.bool)
    mask[rows, cols] = True
    return mask


def test_centre_peaks_by_hand():
    """Smoothing ``(p + mean3x3(p)) / 2`` (zero padding counted), 3x3 max-pool NMS, best first,
    cut at ``top`` and at the threshold (the released inference)."""
    probs = torch.zeros(2, 3, 3)
    probs[0, 1, 1] = 0.9  # class 0: one peak in the middle
    probs[1, 0, 0], probs[1, 2, 2] = 0.8, 0.6  # class 1: two corners
    logits = torch.logit(probs, eps=1e-30).double()
    scores, classes, positions = _thing_peaks(logits, 3, 3, 50, 0.05)
    # middle: (0.9 + 0.9 / 9) / 2; corners (0.8 + 0.8 / 9) / 2 and (0.6 + 0.6 / 9) / 2; the
    # middle's neighbours (0.05) and class 1's centre ((0.8 + 0.6) / 18) are no peaks
    assert scores.tolist() == pytest.approx([0.5, 0.8 * 10 / 18, 0.6 * 10 / 18])
    assert classes.tolist() == [0, 1, 1] and positions.tolist() == [4, 0, 8]
    scores, classes, positions = _thing_peaks(logits, 3, 3, 2, 0.05)
    assert classes.tolist() == [0, 1] and positions.tolist() == [4, 0]
    scores, _, positions = _thing_peaks(logits, 3, 3, 50, 0.4)
    assert positions.tolist() == [4, 0]


def test_stuff_regions_by_hand():
    """Each pixel to its most probable channel; a channel's score is its mean probability over
    its own pixels, kept above the threshold."""
    probs = torch.tensor([[[0.9, 0.7], [0.1, 0.2]],    # channel 0 wins the top row
                          [[0.2, 0.1], [0.2, 0.3]],    # channel 1 wins (1, 1)
                          [[0.1, 0.3], [0.6, 0.04]]])  # channel 2 wins (1, 0)
    channels, scores, masks = _stuff_regions(torch.logit(probs).double(), 0.35)
    assert channels.tolist() == [0, 2] and scores.tolist() == pytest.approx([0.8, 0.6])
    assert masks.tolist() == [[[True, True], [False, False]], [[False, False], [True, False]]]
    channels, scores, _ = _stuff_regions(torch.logit(probs).double(), 0.05)
    assert channels.tolist() == [0, 1, 2] and scores.tolist() == pytest.approx([0.8, 0.3, 0.6])


def test_panoptic_combine_by_hand():
    masks = torch.stack([
        box(slice(0, 3), slice(0, 4)),   # A 0.9: laid first, 12 px
        box(slice(0, 3), slice(1, 5)),   # C 0.8: 9 of 12 px under A (> 0.5) -> dropped
        box(slice(1, 4), slice(2, 6)),   # B 0.7: 4 of 12 px under A -> takes its other 8
        box(slice(4, 6), slice(6, 8)),   # D 0.2: exactly score_thr -> kept
        box(slice(4, 6), slice(0, 2)),   # E 0.19: below score_thr
        box(slice(0, 0), slice(0, 0)),   # F 0.95: empty
    ])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.2, 0.19, 0.95])
    labels = torch.tensor([5, 9, 7, 3, 1, 2])
    # stuff index per pixel (class 80 + s), -1 where the stuff map says "thing"
    semantic = torch.full((6, 8), -1)
    semantic[3, 0:6] = 0
    semantic[4:6, 0:6] = 0
    semantic[4:6, 6:8] = 1
    stuff_scores = torch.tensor([0.7, 0.6])
    out = combine_things_and_stuff(masks, scores, labels, semantic, stuff_scores, 80,
                                   score_thr=0.2, overlap_thr=0.5, stuff_area_limit=5)
    # things from the lowest score: D 0, B 1, A 2; stuff 0 keeps 14 free px (>= 5) -> 3;
    # stuff 1's 4 px are all D's -> no segment
    expected = torch.tensor([
        [2, 2, 2, 2, -1, -1, -1, -1],
        [2, 2, 2, 2, 1, 1, -1, -1],
        [2, 2, 2, 2, 1, 1, -1, -1],
        [3, 3, 1, 1, 1, 1, -1, -1],
        [3, 3, 3, 3, 3, 3, 0, 0],
        [3, 3, 3, 3, 3, 3, 0, 0],
    ], dtype=torch.int32)
    assert torch.equal(out.id_map, expected)
    assert out.labels.tolist() == [3, 7, 5, 80]
    torch.testing.assert_close(out.scores, torch.tensor([0.2, 0.7, 0.9, 0.7]))
    out = combine_things_and_stuff(masks, scores, labels, semantic, stuff_scores, 80,
                                   score_thr=0.2, overlap_thr=0.5, stuff_area_limit=15)
    assert out.labels.tolist() == [3, 7, 5] and int((out.id_map == -1).sum()) == 48 - 24


# ---------------------------------------------------------------------------------- learning
OVERFIT_STEPS = 120


@pytest.fixture(scope='module')
def overfitted(scenes) -> tuple[PanopticFCN, float, float]:
    """The tiny model trained on the four scenes: AdamW (lr 2e-3, cosine), the randomly
    initialised ResNet-18 frozen (FPN and heads train), stuff area limit scaled to 128 px as in
    the tiny config; ~40 s of CPU time. Returns the model and the PQ before and after (seeds 0,
    1, 2 of the model: PQ 61, 71, 83 after)."""
    dataset, batch = scenes
    model = tiny_model(backbone=dict(depth=18, out_channels=32, frozen_stages=4),
                       test_cfg=dict(stuff_area_limit=160))
    before = evaluate(model.eval()(batch, mode='predict'), dataset, metrics=('PQ',))['PQ']
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, OVERFIT_STEPS)
    model.train()
    for _ in range(OVERFIT_STEPS):
        losses = model(batch)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        torch.nn.utils.clip_grad_value_(params, 35)
        optimizer.step()
        schedule.step()
    model.eval()
    after = evaluate(model(batch, mode='predict'), dataset, metrics=('PQ',))
    return model, before, after


def test_overfitting_four_scenes_reaches_pq_50(overfitted):
    _, before, after = overfitted
    assert before < 10, before
    assert after['PQ'] > 50, after
    assert after['PQ_th'] > 30 and after['PQ_st'] > 30, after


def test_panoptic_segments_follow_the_contract(overfitted, scenes):
    model, _, _ = overfitted
    _, batch = scenes
    model.train()
    feats = model.extract_feats(batch.imgs)
    results = model.panoptic_segments(feats, batch)
    assert model.training
    seen_things = seen_stuff = 0
    for seg, meta in zip(results, batch.metas):
        assert isinstance(seg, SegmentResult)
        n = seg.num_segments
        assert seg.id_map.shape == meta.img_shape and seg.id_map.dtype == torch.int32
        assert seg.labels.dtype == torch.int64 and seg.scores.dtype == torch.float32
        assert seg.scores.shape == (n,) and not seg.scores.requires_grad
        assert ((seg.labels >= 0) & (seg.labels < 133)).all()
        is_thing = seg.labels < 80
        num_things = int(is_thing.sum())
        assert (seg.scores[:num_things] >= 0.2).all()             # score_thr
        assert (seg.scores[num_things:] > 0.05).all()             # stuff_thr
        assert (seg.scores <= 1).all()
        assert is_thing[:num_things].all()                        # things first,
        assert (seg.scores[:num_things].diff() >= 0).all()        # lowest score first,
        assert (seg.labels[num_things:].diff() < 0).all()         # stuff by decreasing class
        assert torch.equal(torch.unique(seg.id_map[seg.id_map >= 0]),
                           torch.arange(n, dtype=torch.int32))
        assert seg.id_map.min() >= -1                             # -1: void
        np.testing.assert_array_equal(seg.boxes().numpy(), masks_to_boxes(seg.masks().numpy()))
        seen_things += num_things
        seen_stuff += n - num_things
    assert seen_things and seen_stuff


def test_predictions_at_the_original_size(overfitted, scenes):
    model, _, _ = overfitted
    dataset, _ = scenes
    # one image shown at 96 x 96 (resized from 128 x 128): predictions come back at 128 x 128
    pipeline = [dict(type='LoadImage'), dict(type='LoadPanopticAnnotations', with_rel=True),
                dict(type='Resize', scale=(96, 96), keep_ratio=True),
                dict(type='Normalize', **NORM), dict(type='Pad', size_divisor=32),
                dict(type='PackSample')]
    small = PSGDataset(dataset.ann_file, dataset.data_root, split='test', pipeline=pipeline)
    sample = small[0]
    assert sample.meta.img_shape == (96, 96) and sample.meta.ori_shape == (128, 128)
    batch = collate_samples([sample], size_divisor=32)
    pred, = model.eval()(batch, mode='predict')
    segments, = model.panoptic_segments(model.extract_feats(batch.imgs), batch, rescale=True)
    assert pred.image_id == sample.meta.image_id
    assert pred.pan_id_map.shape == (128, 128) and pred.masks.shape[1:] == (128, 128)
    np.testing.assert_array_equal(pred.pan_id_map, segments.id_map.numpy())
    np.testing.assert_array_equal(pred.labels, segments.labels.numpy())
    assert pred.pairs.shape == (0, 2) and pred.predicate_scores.shape == (0, 56)


# ---------------------------------------------------------------------------------- weights, options
def test_imagenet_resnet_weights_load_into_the_backbone(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / 'r18.pth')
    model = PanopticFCN(**{**TINY, 'backbone': dict(depth=18, out_channels=32,
                                                    pretrained=str(tmp_path / 'r18.pth'))})
    body = model.backbone.body
    assert torch.equal(body.layer3[0].conv1.weight, reference.layer3[0].conv1.weight)
    assert torch.equal(body.bn1.running_var, reference.bn1.running_var)
    # the default frozen_stages=1: stem and layer1 frozen
    assert not body.conv1.weight.requires_grad and not body.layer1[0].conv1.weight.requires_grad
    assert body.layer2[0].conv1.weight.requires_grad
    with pytest.raises(ValueError, match='r18.pth: not the weights of this ResNet'):
        PanopticFCN(backbone=dict(depth=50, pretrained=str(tmp_path / 'r18.pth')))


def test_unknown_options_are_errors():
    with pytest.raises(ValueError, match=r"PanopticFCN: unknown test_cfg keys \['mask_threshold'\]"):
        PanopticFCN(**TINY, test_cfg=dict(mask_threshold=0.5))
    with pytest.raises(ValueError, match='unknown train_cfg keys'):
        PanopticFCN(**TINY, train_cfg=dict(top_k=7))
    with pytest.raises(ValueError, match='unknown loss_weights'):
        PanopticFCN(**TINY, loss_weights=dict(position=1.0))
    with pytest.raises(ValueError, match='smooth_kernels needs one entry per level'):
        PanopticFCN(**TINY, test_cfg=dict(smooth_kernels=(3, 3, 3)))


def test_tiny_config_builds_trains_and_predicts(scenes):
    _, batch = scenes
    cfg = Config.fromfile(ROOT / 'configs/panoptic_fcn/panoptic_fcn_tiny_synth.py')
    assert cfg.optimizer_config.grad_clip == dict(clip_value=35)
    assert cfg.lr_config.policy == 'poly' and cfg.lr_config.power == 0.9
    model = MODELS.build(cfg.model)
    assert isinstance(model, PanopticFCN) and model.test_cfg['stuff_area_limit'] == 160
    assert model.test_cfg['score_thr'] == 0.1 and cfg.optimizer.type == 'AdamW'
    assert model.thing_generator.weight.shape == (64, 64)
    assert all(p.requires_grad for p in model.backbone.body.parameters())
    losses = model.train()(collate_samples(batch.samples[:2], size_divisor=32))
    assert set(losses) == LOSS_KEYS and all(torch.isfinite(v) for v in losses.values())
    preds = model.eval()(collate_samples(batch.samples[:1], size_divisor=32), mode='predict')
    assert preds[0].pan_id_map.shape == batch.metas[0].ori_shape


def test_r50_config_trains_and_predicts_on_a_coco_sized_image():
    """One training and one test step of the real config at 800 x 1333 (~50 s of CPU time)."""
    cfg = Config.fromfile(ROOT / 'configs/panoptic_fcn/panoptic_fcn_r50_fpn_3x_psg.py')
    assert cfg.model.test_cfg == dict(
        smooth_kernels=(3, 3, 3, 5, 5), nms_kernel=3, peaks_per_level=50, center_thr=0.05,
        stuff_thr=0.05, fusion_thr=0.9, mask_thr=0.4, rescore_thr=0.05, max_per_img=100,
        score_thr=0.2, overlap_thr=0.5, stuff_area_limit=4096)
    assert cfg.optimizer.lr == 0.01 and cfg.optimizer.weight_decay == 0.0001
    assert cfg.lr_config.warmup_iters == 1000 and cfg.runner.max_epochs == 93
    cfg.model.backbone.pretrained = False  # nothing is downloaded in the tests
    start = time.perf_counter()
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert len(model.backbone.body.layer3) == 6  # ResNet-50
    groups = {g['name']: g for g in build_optimizer(model, cfg.optimizer).param_groups}
    # detectron2's WEIGHT_DECAY_NORM = 0: no decay on the heads' GroupNorms
    norms = {id(p) for m in model.modules() if isinstance(m, torch.nn.GroupNorm)
             for p in m.parameters()}
    assert norms and {id(p) for p in groups['norm']['params']} == norms
    assert groups['norm']['weight_decay'] == 0 and groups['default']['weight_decay'] == 1e-4
    h, w = 800, 1333
    batch = coco_sized_batch()
    losses = model.train()(batch, mode='loss')
    assert set(losses) == LOSS_KEYS and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    pred, = model.eval()(batch, mode='predict')
    assert pred.pan_id_map.shape == (h, w)
    print(f'R50 train + test step at 800x1333: {time.perf_counter() - start:.1f} s')
