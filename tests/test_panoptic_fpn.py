"""Panoptic FPN: torchvision COCO weight loading, heuristic fusion, semantic targets, training and
prediction on synthetic PSG images, and the real R50 config on an 800x1333 image."""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torchvision.models.detection import (MaskRCNN_ResNet50_FPN_Weights, maskrcnn_resnet50_fpn,
                                          maskrcnn_resnet50_fpn_v2)

from segmenter_scenes import coco_sized_batch
from openpsg.config import Config
from openpsg.datasets import DatasetError, PSGDataset
from openpsg.datasets.synthetic import generate_synthetic_psg
from openpsg.datasets.transforms import Compose, PackSample
from openpsg.engine.checkpoint import load_weights
from openpsg.models.segmenters import (PanopticFPN, SegmentResult, heuristic_fusion,
                                       load_torchvision_maskrcnn, semantic_target)
from openpsg.models.segmenters.coco_weights import WeightsError
from openpsg.models.segmenters.panoptic_fpn import build_backbone, build_roi_heads
from openpsg.models.segmenters.coco_weights import main as convert_main
from openpsg.registry import MODELS
from openpsg.structures import Batch, ImageMeta, Sample, collate_samples
from openpsg.structures.labels import THING_CLASSES
from openpsg.structures.masks import masks_to_boxes

ROOT = Path(__file__).resolve().parents[1]
LOSS_KEYS = {'loss_objectness', 'loss_rpn_box_reg', 'loss_classifier', 'loss_box_reg', 'loss_mask',
             'loss_semantic'}
PREDICTORS = ('roi_heads.box_predictor.cls_score', 'roi_heads.box_predictor.bbox_pred',
              'roi_heads.mask_predictor.mask_fcn_logits')


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """Run this module single-threaded: on a shared 2-core machine two OpenMP threads make every
    small convolution wait for a descheduled partner thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------- COCO weights
def coco_rows() -> list[int]:
    """The torchvision row of every PSG thing class, looked up by name in torchvision's metadata."""
    names = MaskRCNN_ResNet50_FPN_Weights.COCO_V1.meta['categories']
    return [0] + [names.index(name) for name in THING_CLASSES]


@pytest.fixture(scope='module')
def torchvision_models() -> dict[str, torch.nn.Module]:
    """torchvision's Mask R-CNN v1 and v2 with random weights: the official key names and shapes."""
    torch.manual_seed(0)
    return {'v1': maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).eval(),
            'v2': maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None).eval()}


@pytest.mark.parametrize('variant', ['v1', 'v2'])
def test_torchvision_weights_land(variant, torchvision_models, tmp_path):
    reference = torchvision_models[variant]
    source = reference.state_dict()
    path = tmp_path / 'tv.pth'
    torch.save(source, path)
    model = PanopticFPN(variant=variant).eval()
    missing = load_torchvision_maskrcnn(model, path, variant=variant)

    own = model.state_dict()
    assert set(missing) == {k for k in own if k.startswith('semantic_head.')} and missing
    not_in_model = {k for k in source if k not in own}
    # only the backbone's BatchNorm step counters, which FrozenBatchNorm does not keep
    assert not_in_model and all(k.startswith('backbone.body.') and k.endswith('num_batches_tracked')
                                for k in not_in_model)
    rows = torch.tensor(coco_rows())
    for key, value in source.items():
        if key in not_in_model:
            continue
        layer = key.rsplit('.', 1)[0]
        if layer in PREDICTORS:
            per_class = 4 if 'bbox_pred' in layer else 1
            expected = value.reshape(91, per_class, *value.shape[1:])[rows].reshape(81 * per_class,
                                                                                   *value.shape[1:])
            assert torch.equal(own[key], expected), key
        else:
            assert torch.equal(own[key], value), key
    x = torch.randn(1, 3, 64, 96)
    ours, theirs = model.extract_feats(x), reference.backbone(x)
    assert list(ours) == ['0', '1', '2', '3', 'pool']
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name])
    # strides 4, 8, 16, 32, 64 on a 64x96 image
    assert [tuple(f.shape) for f in ours.values()] == [
        (1, 256, 16, 24), (1, 256, 8, 12), (1, 256, 4, 6), (1, 256, 2, 3), (1, 256, 1, 2)]


def test_converted_file_serves_as_load_from(torchvision_models, tmp_path):
    src = tmp_path / 'tv.pth'
    torch.save(torchvision_models['v1'].state_dict(), src)
    out = tmp_path / 'checkpoints' / 'coco_psg.pth'
    assert convert_main(['--variant', 'v1', '--src', str(src), '--out', str(out)]) == 0
    model = PanopticFPN()
    report = load_weights(model, out)
    assert not report.unexpected and not report.mismatched
    assert report.missing and all(k.startswith('semantic_head.') for k in report.missing)
    assert convert_main(['--variant', 'v2', '--src', str(src), '--out', str(tmp_path / 'x.pth')]) == 1


def test_weight_errors_name_the_problem(torchvision_models, tmp_path):
    v2_state = torchvision_models['v2'].state_dict()
    with pytest.raises(WeightsError, match="variant='v2'"):
        load_torchvision_maskrcnn(PanopticFPN(backbone=dict(depth=18), variant='v1'), v2_state, 'v1')
    with pytest.raises(WeightsError, match='built with variant'):
        load_torchvision_maskrcnn(PanopticFPN(backbone=dict(depth=18), variant='v1'), v2_state, 'v2')
    with pytest.raises(WeightsError, match='shapes differ'):
        load_torchvision_maskrcnn(PanopticFPN(backbone=dict(depth=18), variant='v2'), v2_state, 'v2')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_torchvision_maskrcnn(PanopticFPN(backbone=dict(depth=18)), tmp_path / 'nope.pth')


# ---------------------------------------------------------------------------------- fusion
def box_mask(rows: slice, cols: slice, prob: float = 0.9) -> torch.Tensor:
    m = torch.zeros(6, 8)
    m[rows, cols] = prob
    return m


def semantic_logits() -> torch.Tensor:
    """3 channels (stuff 0 = class 80, stuff 1 = class 81, "thing") on a 6x8 image.

    Rows 0-2: "thing". Row 3: stuff 0 at x 0-5 with probability 3/5, "thing" at x 6-7.
    Rows 4-5: stuff 0 at x 0-5 with probability 8/10, stuff 1 at x 6-7 (probability 8/10).
    """
    logits = torch.zeros(3, 6, 8)
    logits[2, 0:3, :] = np.log(8.0)
    logits[0, 3, 0:6] = np.log(3.0)
    logits[2, 3, 6:8] = np.log(8.0)
    logits[0, 4:6, 0:6] = np.log(8.0)
    logits[1, 4:6, 6:8] = np.log(8.0)
    return logits


def instances():
    masks = torch.stack([
        box_mask(slice(0, 3), slice(0, 4)),        # A 0.9: laid first on 12 px
        box_mask(slice(0, 3), slice(1, 5)),        # C 0.8: 9 of 12 px under A -> dropped
        box_mask(slice(1, 4), slice(2, 6)),        # B 0.7: 4 of 12 px under A -> takes 8 px
        box_mask(slice(4, 6), slice(0, 8)),        # D 0.6: not above the score threshold
        box_mask(slice(0, 6), slice(0, 8), 0.4),   # E 0.95: no pixel reaches mask_thr
    ])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.95])
    labels = torch.tensor([5, 9, 7, 3, 1])
    return masks, scores, labels


def test_fusion_overlap_threshold_area_limit_and_void():
    masks, scores, labels = instances()
    out = heuristic_fusion(masks, scores, labels, semantic_logits(), num_things=80, score_thr=0.6,
                           mask_thr=0.5, overlap_thr=0.5, stuff_area_limit=5)
    # B (index 0, lowest score first), A (1), stuff 0 (2); stuff 1 has 4 px < 5 -> void;
    # "thing" pixels no instance covers -> void.
    expected = np.array([
        [1, 1, 1, 1, -1, -1, -1, -1],
        [1, 1, 1, 1, 0, 0, -1, -1],
        [1, 1, 1, 1, 0, 0, -1, -1],
        [2, 2, 0, 0, 0, 0, -1, -1],
        [2, 2, 2, 2, 2, 2, -1, -1],
        [2, 2, 2, 2, 2, 2, -1, -1],
    ], dtype=np.int32)
    assert out.id_map.dtype == torch.int32
    np.testing.assert_array_equal(out.id_map.numpy(), expected)
    assert out.labels.tolist() == [7, 5, 80]
    # stuff 0 keeps 12 px at 0.8 and 2 px at 0.6 (its 4 px under B are B's)
    np.testing.assert_allclose(out.scores.numpy(), [0.7, 0.9, (12 * 0.8 + 2 * 0.6) / 14], rtol=1e-6)
    np.testing.assert_array_equal(out.boxes().numpy(), [[2, 1, 6, 4], [0, 0, 4, 3], [0, 3, 6, 6]])


def test_fusion_stuff_order_and_thresholds_at_their_limits():
    masks, scores, labels = instances()
    out = heuristic_fusion(masks, scores, labels, semantic_logits(), num_things=80, score_thr=0.55,
                           mask_thr=0.4, overlap_thr=0.75, stuff_area_limit=4)
    # mask_thr 0.4 makes E (0.95) cover everything first; every other instance is then fully
    # covered (> 0.75) and dropped; no stuff pixel is left uncovered.
    assert out.labels.tolist() == [1]
    assert (out.id_map == 0).all()
    out = heuristic_fusion(masks[:4], scores[:4], labels[:4], semantic_logits(), num_things=80,
                           score_thr=0.55, overlap_thr=0.75, stuff_area_limit=4)
    # A takes 12 px; C: 9/12 = 0.75 is not above 0.75 -> kept on its 3 free px; B: 6/12 under A
    # and C -> kept on 6 px; D now passes the score threshold and takes rows 4-5 (16 px), which
    # leaves stuff 0 with 2 px (< 4) -> void.
    assert out.labels.tolist() == [3, 7, 9, 5]
    assert [int((out.id_map == i).sum()) for i in range(4)] == [16, 6, 3, 12]
    assert int((out.id_map == -1).sum()) == 6 * 8 - 37
    out = heuristic_fusion(masks[:0], scores[:0], labels[:0], semantic_logits(), num_things=80,
                           stuff_area_limit=4)
    # no instances: stuff 1 (class 81, 4 px >= 4) comes before stuff 0 (class 80, 18 px)
    assert out.labels.tolist() == [81, 80]
    assert [int((out.id_map == i).sum()) for i in range(2)] == [4, 18]
    assert int((out.id_map == -1).sum()) == 6 * 8 - 22


# ---------------------------------------------------------------------------------- synthetic data
@pytest.fixture(scope='module')
def synth(tmp_path_factory) -> PSGDataset:
    root = tmp_path_factory.mktemp('pfpn') / 'psg_synth'
    generate_synthetic_psg(root, num_train=3, num_test=1, seed=0, size=64)
    cfg = Config.fromfile(str(ROOT / 'configs' / '_base_' / 'datasets' / 'psg_synth.py'))
    pipeline = [step.to_dict() for step in cfg.train_pipeline]
    for step in pipeline:
        if step['type'] == 'Resize':
            step['scale'] = (64, 64)
        if step['type'] == 'RandomFlip':
            step['prob'] = 1.0
    return PSGDataset(str(root / 'psg.json'), str(root), 'train', pipeline, seed=0)


def unpacked(dataset: PSGDataset, idx: int) -> tuple[dict, Sample]:
    """The pipeline's results dict before :class:`PackSample`, and the Sample packed from it."""
    steps = dataset.pipeline.transforms
    assert isinstance(steps[-1], PackSample)
    results = Compose(steps[:-1])({**dataset.get_data_info(idx), 'rng': np.random.default_rng(idx)})
    return results, steps[-1](results)


def test_detections_of_an_image_without_proposals_are_empty():
    """An image for which the RPN keeps no proposal (all degenerate) has no detection; the other
    images of the batch are decoded as usual (class-agnostic NMS over (RoI, class) pairs)."""
    heads = build_roi_heads(num_things=3, score_thr=0.5, nms_iou_thr=0.5, max_per_img=10)
    proposals = [torch.zeros(0, 4), torch.tensor([[10.0, 10.0, 30.0, 30.0],
                                                  [12.0, 12.0, 30.0, 30.0]])]
    logits = torch.tensor([[0.0, 0.0, 10.0, 0.0], [0.0, 0.0, 9.0, 0.0]])
    boxes, scores, labels = heads.postprocess_detections(
        logits, torch.zeros(2, 16), proposals, [(40, 50), (40, 50)])
    assert boxes[0].shape == (0, 4) and scores[0].shape == labels[0].shape == (0,)
    assert boxes[1].tolist() == [[10.0, 10.0, 30.0, 30.0]] and labels[1].tolist() == [2]
    assert scores[1].tolist() == pytest.approx([math.exp(10) / (math.exp(10) + 3)])
    boxes, scores, labels = heads.postprocess_detections(  # no proposal in the whole batch
        torch.zeros(0, 4), torch.zeros(0, 16), proposals[:1], [(40, 50)])
    assert boxes[0].shape == (0, 4) and scores[0].shape == labels[0].shape == (0,)


def test_semantic_target_equals_the_pipeline_map(synth):
    for idx in range(2):
        results, sample = unpacked(synth, idx)
        seg = results['gt_semantic_seg'].astype(np.int64)  # after Pad and SegRescale(1/4)
        expected = np.where(seg == 255, 255, np.where(seg < 80, 53, seg - 80))
        assert expected.shape == (sample.img.shape[1] // 4, sample.img.shape[2] // 4)
        assert (expected == 53).any() and ((expected < 53)).any() and (expected == 255).any()
        np.testing.assert_array_equal(semantic_target(sample, 80, 53).numpy(), expected)


def test_semantic_target_by_hand_and_bad_masks():
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, 0:4, 0:4] = True   # person (thing)
    masks[1, 4:8, :] = True     # grass-merged (125 -> stuff 45)
    sample = Sample(img=torch.zeros(3, 8, 8), meta=ImageMeta(image_id='42'),
                    labels=torch.tensor([0, 125]), boxes=torch.tensor([[0., 0, 4, 4], [0, 4, 8, 8]]),
                    masks=masks, rels=torch.zeros(0, 3, dtype=torch.long))
    # stride 4 samples pixel centres (1, 1), (1, 5), (5, 1), (5, 5)
    assert semantic_target(sample, 80, 53).tolist() == [[53, 255], [45, 45]]
    sample.masks = torch.zeros(2, 0, 0, dtype=torch.bool)
    with pytest.raises(DatasetError, match=r"<sample>: image_id=42: masks: the semantic head needs "
                                           r"one mask per object at the image size \(2, 8, 8\)"):
        semantic_target(sample, 80, 53)


def tiny_model(**test_cfg) -> PanopticFPN:
    torch.manual_seed(0)
    return PanopticFPN(backbone=dict(depth=18), rpn=dict(post_nms_top_n_train=64,
                                                         post_nms_top_n_test=32),
                       roi_head=dict(batch_size_per_image=16), test_cfg=test_cfg)


def test_training_step_gives_every_loss(synth):
    batch = collate_samples([synth[0], synth[1]], size_divisor=32)
    model = tiny_model().train()
    losses = model(batch, mode='loss')
    assert set(losses) == LOSS_KEYS
    for name, value in losses.items():
        assert value.ndim == 0 and torch.isfinite(value) and value > 0, name
    sum(losses.values()).backward()
    params = dict(model.named_parameters())
    for name in ('semantic_head.conv_logits.weight', 'roi_heads.mask_predictor.mask_fcn_logits.weight',
                 'roi_heads.box_predictor.cls_score.weight', 'rpn.head.cls_logits.weight',
                 'backbone.fpn.layer_blocks.0.0.weight', 'backbone.body.layer2.0.conv1.weight'):
        assert params[name].grad is not None and params[name].grad.abs().sum() > 0, name
    assert not params['backbone.body.conv1.weight'].requires_grad
    assert not params['backbone.body.layer1.0.conv1.weight'].requires_grad
    with pytest.raises(RuntimeError, match='training mode'):
        model.eval().loss(batch)


def test_tiny_config_sizes_fpn_heads_and_anchors(synth):
    cfg = Config.fromfile(ROOT / 'configs/panoptic_fpn/panoptic_fpn_tiny_synth.py')
    model = MODELS.build(cfg.model).train()
    params = dict(model.named_parameters())
    assert model.backbone.out_channels == 64
    assert params['backbone.fpn.layer_blocks.0.0.weight'].shape == (64, 64, 3, 3)
    assert params['rpn.head.conv.0.0.weight'].shape == (64, 64, 3, 3)
    assert params['roi_heads.box_head.fc6.weight'].shape == (256, 64 * 7 * 7)
    assert params['roi_heads.box_predictor.cls_score.weight'].shape == (81, 256)
    assert len(model.roi_heads.mask_head) == 2
    assert params['roi_heads.mask_predictor.conv5_mask.weight'].shape == (64, 64, 2, 2)
    assert all(p.requires_grad for p in model.backbone.body.parameters())  # frozen_stages=-1
    assert [s[0] for s in model.rpn.anchor_generator.sizes] == [8, 16, 32, 64, 128]
    losses = model(collate_samples([synth[0], synth[1]], size_divisor=32), mode='loss')
    assert set(losses) == LOSS_KEYS and all(torch.isfinite(v) for v in losses.values())
    with pytest.raises(ValueError, match='one size per FPN level'):
        PanopticFPN(backbone=dict(depth=18), rpn=dict(anchor_sizes=(8, 16)))
    with pytest.raises(ValueError, match='frozen_stages'):
        PanopticFPN(backbone=dict(depth=18, frozen_stages=5))


def test_backbone_takes_a_resnet_state_dict_file_and_names_a_wrong_one(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / 'r18.pth')
    backbone = build_backbone(depth=18, pretrained=str(tmp_path / 'r18.pth'))
    assert torch.equal(backbone.body.layer3[0].conv1.weight, reference.layer3[0].conv1.weight)
    assert [m.in_channels for m in backbone.fpn.inner_blocks.modules()
            if isinstance(m, torch.nn.Conv2d)] == [64, 128, 256, 512]
    with pytest.raises(ValueError, match='r18.pth: not the weights of this ResNet'):
        build_backbone(depth=50, pretrained=str(tmp_path / 'r18.pth'))


def test_panoptic_segments_contract(synth):
    batch = collate_samples([synth[0], synth[1]], size_divisor=32)
    model = tiny_model(score_thr=0.0, stuff_area_limit=0, max_per_img=8).train()
    feats = model.extract_feats(batch.imgs)
    results = model.panoptic_segments(feats, batch)
    assert model.training and model.rpn.training and model.roi_heads.training
    for seg, meta in zip(results, batch.metas):
        assert isinstance(seg, SegmentResult)
        n = seg.num_segments
        assert seg.id_map.shape == meta.img_shape and seg.id_map.dtype == torch.int32
        assert seg.labels.dtype == torch.int64 and seg.scores.shape == (n,)
        assert not seg.id_map.requires_grad and not seg.scores.requires_grad
        is_thing = seg.labels < 80
        num_things = int(is_thing.sum())
        assert 0 < num_things < n and is_thing[:num_things].all()  # things first
        assert (seg.labels >= 0).all() and (seg.labels < 133).all()
        assert (seg.scores[:num_things].diff() >= 0).all()         # lowest score first
        assert (seg.labels[num_things:].diff() < 0).all()          # stuff by decreasing class
        assert ((seg.scores > 0) & (seg.scores <= 1)).all()
        assert torch.equal(torch.unique(seg.id_map[seg.id_map >= 0]), torch.arange(n, dtype=torch.int32))
        boxes = seg.boxes()
        np.testing.assert_array_equal(boxes.numpy(), masks_to_boxes(seg.masks().numpy()))


def test_predict_returns_panoptic_predictions_at_original_size(synth):
    samples = [synth[0], synth[2]]
    batch = collate_samples(samples, size_divisor=32)
    model = tiny_model(score_thr=0.0, stuff_area_limit=0, max_per_img=8).eval()
    preds = model(batch, mode='predict')
    assert [p.image_id for p in preds] == [s.meta.image_id for s in samples]
    for pred, sample in zip(preds, samples):
        n = pred.num_segments
        assert n > 0
        assert pred.masks.dtype == bool and pred.masks.shape == (n, *sample.meta.ori_shape)
        assert pred.masks.reshape(n, -1).any(1).all()
        assert pred.pan_id_map.shape == sample.meta.ori_shape and pred.pan_id_map.dtype == np.int32
        np.testing.assert_array_equal(pred.masks, pred.pan_id_map[None] == np.arange(n)[:, None, None])
        np.testing.assert_array_equal(pred.boxes, masks_to_boxes(pred.masks))
        assert pred.labels.dtype == np.int64 and pred.scores.dtype == np.float32
        assert ((pred.labels >= 0) & (pred.labels < 133)).all() and pred.scores.shape == (n,)
        assert pred.pairs.shape == (0, 2) and pred.pairs.dtype == np.int64
        assert pred.predicate_scores.shape == (0, 56) and pred.triplet_scores.shape == (0,)
    # the same input with the other flip flag (the pipeline flipped these): the same segments,
    # mirrored
    assert all(s.meta.flip for s in samples)
    mirrored = Batch(batch.imgs, batch.pad_mask,
                     [replace(s, meta=replace(s.meta, flip=False)) for s in batch.samples])
    for pred, back in zip(preds, model(mirrored, mode='predict')):
        np.testing.assert_array_equal(back.pan_id_map, pred.pan_id_map[:, ::-1])
        np.testing.assert_array_equal(back.labels, pred.labels)
    with pytest.raises(ValueError, match=r"PanopticFPN: unknown test_cfg keys \['score_threshold'\]"):
        PanopticFPN(backbone=dict(depth=18), test_cfg=dict(score_threshold=0.5))


# ---------------------------------------------------------------------------------- real config
def test_r50_config_trains_and_predicts_on_a_coco_sized_image():
    cfg = Config.fromfile(str(ROOT / 'configs' / 'panoptic_fpn' / 'panoptic_fpn_r50_fpn_1x_psg.py'))
    assert cfg.model.test_cfg == dict(score_thr=0.6, nms_iou_thr=0.5, max_per_img=100, mask_thr=0.5,
                                      overlap_thr=0.5, stuff_area_limit=4096)
    assert cfg.optimizer.lr == 0.02 and cfg.lr_config.step == [8, 11] and cfg.runner.max_epochs == 12
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert len(model.backbone.body.layer3) == 6  # ResNet-50
    h, w = 800, 1333
    batch = coco_sized_batch()
    losses = model.train()(batch, mode='loss')
    assert set(losses) == LOSS_KEYS and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    pred, = model.eval()(batch, mode='predict')
    assert pred.pan_id_map.shape == (h, w) and pred.masks.shape[1:] == (h, w)
