"""DETR4Seg: losses and gradients, panoptic inference, bad input, a short overfit, the R50 config."""
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from one_stage_scenes import GRASS, HORSE, PERSON, SKY, TINY, coco_sized_scene, sky_grass_scene

from openpsg.config import Config
from openpsg.datasets.errors import DatasetError
from openpsg.models.one_stage import DETR4Seg
from openpsg.models.one_stage.detr4seg import panoptic_prediction
from openpsg.registry import MODELS
from openpsg.structures import (NUM_PREDICATES, VOID, ImageMeta, Sample, collate_samples,
                                id_map_iou, masks_to_boxes)

ROOT = Path(__file__).resolve().parents[1]


def tiny_model(**overrides) -> DETR4Seg:
    cfg = dict(type='DETR4Seg', **TINY, num_queries=10)
    cfg.update(overrides)
    return MODELS.build(cfg)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_one_step_gives_every_loss_and_gradients_reach_the_heads():
    model = tiny_model()
    batch = collate_samples([sky_grass_scene('a', 48, 64, (20, 44, 6, 30), PERSON)[0],
                             sky_grass_scene('b', 40, 56, (16, 36, 30, 50), HORSE)[0]])
    losses = model(batch, mode='loss')
    expected = {'loss_ce', 'loss_bbox', 'loss_giou', 'loss_mask', 'loss_dice',
                'loss_ce_d0', 'loss_bbox_d0', 'loss_giou_d0'}
    assert set(losses) == expected
    assert all(torch.isfinite(v) and v.item() > 0 for v in losses.values())
    sum(losses.values()).backward()
    for name in ('class_embed.weight', 'bbox_embed.layers.2.weight', 'mask_head.out_lay.weight',
                 'mask_head.adapter3.weight', 'bbox_attention.q_linear.weight', 'query_embed.weight',
                 'transformer.encoder.layers.0.linear1.weight', 'input_proj.weight',
                 'backbone.0.body.layer4.0.conv1.weight'):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert model.get_parameter('backbone.0.body.layer1.0.conv1.weight').grad is None  # frozen


def test_loss_weights_scale_the_terms_and_images_without_objects_work():
    a = tiny_model(aux_loss=False)
    b = tiny_model(aux_loss=False, loss_weights=dict(dice=2.0, ce=0.5))
    b.load_state_dict(a.state_dict())
    sample, _ = sky_grass_scene('a', 48, 64, (20, 44, 6, 30), PERSON)
    empty = Sample(img=torch.randn(3, 40, 40),
                   meta=ImageMeta('e', ori_shape=(40, 40), img_shape=(40, 40)),
                   labels=torch.zeros(0, dtype=torch.int64), boxes=torch.zeros(0, 4),
                   masks=torch.zeros(0, 40, 40, dtype=torch.bool),
                   rels=torch.zeros(0, 3, dtype=torch.int64))
    batch = collate_samples([sample, empty])
    la, lb = a(batch), b(batch)
    assert set(la) == {'loss_ce', 'loss_bbox', 'loss_giou', 'loss_mask', 'loss_dice'}
    torch.testing.assert_close(lb['loss_dice'], 2 * la['loss_dice'])
    torch.testing.assert_close(lb['loss_ce'], 0.5 * la['loss_ce'])
    torch.testing.assert_close(lb['loss_mask'], la['loss_mask'])
    only_empty = a(collate_samples([empty]))
    assert all(torch.isfinite(v) for v in only_empty.values())
    assert only_empty['loss_bbox'] == 0 and only_empty['loss_dice'] == 0 and only_empty['loss_ce'] > 0
    with pytest.raises(ValueError, match="unknown loss_weights keys \\['dcie'\\]"):
        tiny_model(loss_weights=dict(dcie=1.0))


def test_predict_returns_a_wellformed_prediction_at_original_size():
    model = tiny_model(test_cfg=dict(score_thr=0.0)).eval()
    small, _ = sky_grass_scene('a', 48, 64, (20, 44, 6, 30), PERSON, ori_shape=(96, 128))  # resized by 0.5
    large, _ = sky_grass_scene('b', 56, 72, (16, 36, 30, 50), HORSE)
    preds = model(collate_samples([small, large]), mode='predict')
    assert [p.image_id for p in preds] == ['a', 'b']
    for pred, shape in zip(preds, [(96, 128), (56, 72)]):
        n = pred.num_segments
        assert n > 0
        assert pred.masks.shape == (n, *shape) and pred.masks.dtype == bool
        assert pred.pan_id_map.shape == shape and pred.pan_id_map.dtype == np.int32
        assert pred.pan_id_map.min() == 0 and pred.pan_id_map.max() == n - 1  # every pixel assigned
        for i in range(n):
            assert np.array_equal(pred.masks[i], pred.pan_id_map == i) and pred.masks[i].any()
        np.testing.assert_array_equal(pred.boxes, masks_to_boxes(pred.masks))
        assert pred.labels.dtype == np.int64 and ((pred.labels >= 0) & (pred.labels < 133)).all()
        assert pred.scores.dtype == np.float32 and (np.diff(pred.scores) <= 0).all()
        stuff = pred.labels[pred.labels >= 80]
        assert len(stuff) == len(set(stuff.tolist()))  # one segment per stuff class
        assert pred.pairs.shape == (0, 2) and pred.predicate_scores.shape == (0, NUM_PREDICATES)
        assert pred.triplet_scores.shape == (0,)
        assert pred.panoptic()[0] is pred.pan_id_map


def test_predict_undoes_a_horizontal_flip_and_handles_no_kept_query():
    model = tiny_model(test_cfg=dict(score_thr=0.0)).eval()
    plain = model(collate_samples([sky_grass_scene('a', 48, 64, (20, 44, 6, 30), PERSON)[0]]), 'predict')[0]
    flipped = model(collate_samples([sky_grass_scene('a', 48, 64, (20, 44, 6, 30), PERSON, flip=True)[0]]),
                    'predict')[0]
    np.testing.assert_array_equal(flipped.pan_id_map, plain.pan_id_map[:, ::-1])
    model.test_cfg['score_thr'] = 1.0  # no probability exceeds 1: nothing kept
    empty = model(collate_samples([sky_grass_scene('a', 48, 64, (20, 44, 6, 30), PERSON, ori_shape=(50, 70))[0]]),
                  'predict')[0]
    assert empty.num_segments == 0 and empty.masks.shape == (0, 50, 70)
    assert (empty.pan_id_map == VOID).all() and empty.pan_id_map.shape == (50, 70)


def test_panoptic_prediction_hand_made_logits():
    # stride-4 logits of a 8x16 input: query A high on the left half, B on the right half, C never
    left = torch.tensor([[1.0, 1.0, -1.0, -1.0]] * 2)
    logits = torch.stack([left, -left, torch.full((2, 4), -5.0)])
    meta = ImageMeta('x', ori_shape=(16, 32), img_shape=(8, 16), pad_shape=(8, 16))
    # two things: split exactly at the middle (bilinear x4 then x2 is symmetric around it)
    scores = np.array([0.7, 0.9, 0.99], np.float32)
    pred = panoptic_prediction(meta, logits, np.array([5, 5, 7]), scores)
    assert pred.labels.tolist() == [5, 5]  # C owns no pixel and is dropped
    np.testing.assert_allclose(pred.scores, [0.9, 0.7])  # ranked by score: B first
    expected = np.zeros((16, 32), np.int32)
    expected[:, :16] = 1
    np.testing.assert_array_equal(pred.pan_id_map, expected)
    np.testing.assert_array_equal(pred.boxes, [[16, 0, 32, 16], [0, 0, 16, 16]])
    # the same halves as one stuff class merge into one segment with the best score
    pred = panoptic_prediction(meta, logits, np.array([SKY, SKY, 7]), scores)
    assert pred.labels.tolist() == [SKY] and pred.scores.tolist() == [pytest.approx(0.9)]
    assert (pred.pan_id_map == 0).all()
    np.testing.assert_array_equal(pred.boxes, [[0, 0, 32, 16]])


def test_bad_targets_name_the_image_and_the_field():
    model = tiny_model()
    sample, _ = sky_grass_scene('img7', 48, 64, (20, 44, 6, 30), PERSON)
    no_masks = Sample(**{**sample.__dict__, 'masks': torch.zeros(3, 0, 0, dtype=torch.bool)})
    with pytest.raises(DatasetError, match=r'img7\.jpg: image_id=img7: masks: DETR4Seg needs one mask'):
        model(collate_samples([no_masks]))
    bad_label = Sample(**{**sample.__dict__, 'labels': torch.tensor([SKY, GRASS, 140])})
    with pytest.raises(DatasetError, match=r'image_id=img7: labels: classes \[140\] are outside 0\.\.132'):
        model(collate_samples([bad_label]))
    flat_box = sample.boxes.clone()
    flat_box[2, 3] = flat_box[2, 1]
    with pytest.raises(DatasetError, match='image_id=img7: boxes:'):
        model(collate_samples([Sample(**{**sample.__dict__, 'boxes': flat_box})]))


def mean_matched_iou(preds, scenes) -> float:
    """Per GT segment, the best IoU with a predicted segment of the same class; mean over all."""
    ious = []
    for pred, (sample, gt) in zip(preds, scenes):
        iou = id_map_iou(pred.pan_id_map, gt, pred.num_segments, len(sample.labels))
        same_class = pred.labels[:, None] == sample.labels.numpy()[None]
        ious.extend(np.where(same_class, iou, 0.0).max(0, initial=0.0))
    return float(np.mean(ious))


def test_short_overfit_learns_the_panoptic_maps():
    """200 steps on two 48x64 scenes (backbone frozen): classes, boxes and masks are learned."""
    model = tiny_model(backbone=dict(type='ResNet', depth=18, frozen_stages=4), num_queries=5,
                       test_cfg=dict(score_thr=0.5))
    scenes = [sky_grass_scene('a', 48, 64, (24, 44, 6, 32), PERSON), sky_grass_scene('b', 48, 64, (18, 40, 32, 58), HORSE)]
    batch = collate_samples([s for s, _ in scenes])

    def evaluate() -> float:
        model.eval()
        preds = model(batch, mode='predict')
        model.train()
        return mean_matched_iou(preds, scenes)

    before = evaluate()
    steps = 200
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3,
                                  weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(steps):
        losses = model(batch)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
        schedule.step()
    after = evaluate()
    assert before == 0.0  # at init no query is confident enough to be kept
    assert after > 0.5, after
    assert losses['loss_dice'].item() < 0.5  # the masks themselves were learned (init: ~0.6)


def test_r50_config_forward_backward_on_a_full_size_image():
    cfg = Config.fromfile(ROOT / 'configs' / '_base_' / 'models' / 'detr4seg_r50.py')
    model = MODELS.build(cfg.model)
    assert model.num_queries == 100 and model.class_embed.out_features == 134
    sample = coco_sized_scene(rels=())
    start = time.perf_counter()
    losses = model(collate_samples([sample]))
    sum(losses.values()).backward()
    assert len(losses) == 5 + 3 * 5 and all(torch.isfinite(v) for v in losses.values())
    assert model.mask_head.lay1.weight.grad.abs().sum() > 0
    assert time.perf_counter() - start < 120


@pytest.mark.parametrize('name', ['detr4seg_r50_psg', 'detr4seg_r101_psg', 'detr4seg_tiny_synth'])
def test_configs_resolve(name):
    cfg = Config.fromfile(ROOT / 'configs' / 'detr4seg' / f'{name}.py')
    assert cfg.model.type == 'DETR4Seg'
    assert cfg.evaluation.metric == ['PQ']
    if name == 'detr4seg_tiny_synth':
        assert cfg.model.backbone.depth == 18 and cfg.model.transformer.d_model == 64
        assert cfg.model.backbone.pretrained is None and cfg.model.num_queries == 20
    else:
        assert cfg.optimizer.lr == 1e-5 and cfg.runner.max_epochs == 10 and cfg.lr_config.step == [8]
        mults = {k: v.lr_mult for k, v in cfg.optimizer.paramwise_cfg.custom_keys.items()}
        assert mults == {'backbone': 0.1, 'bbox_attention': 10.0, 'mask_head': 10.0}
        depth = 101 if 'r101' in name else 50
        assert cfg.model.backbone.depth == depth
        assert cfg.load_from == f'work_dirs/checkpoints/detr_pan_r{depth}.pth'
