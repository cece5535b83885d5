"""PSGTR: losses and gradients, OpenPSG's loss normalisation, HTriMatcher against brute force,
well-formed predictions, bad input, the configs and the R50 model on a full-size image."""
import itertools
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_convert, generalized_box_iou

from one_stage_scenes import HORSE, PERSON, TINY, coco_sized_scene, sky_grass_scene

from openpsg.config import Config
from openpsg.datasets.errors import DatasetError
from openpsg.models.one_stage.detr4seg import DETR4Seg
from openpsg.models.one_stage.psgtr import PSGTr, triplet_targets
from openpsg.models.one_stage.triplet_matcher import HTriMatcher, TripletOutputs, TripletTargets
from openpsg.registry import MODELS
from openpsg.structures import NUM_PREDICATES, Sample, collate_samples, masks_to_boxes

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_one_step_gives_every_loss_and_gradients_reach_the_heads():
    model = PSGTr(**TINY, num_queries=10)
    batch = collate_samples([sky_grass_scene('a', 48, 64, (20, 44, 6, 30), PERSON)[0],
                             sky_grass_scene('b', 40, 56, (16, 36, 30, 50), HORSE)[0]])
    losses = model(batch, mode='loss')
    per_layer = ['sub_ce', 'obj_ce', 'relation_ce', 'sub_bbox', 'obj_bbox', 'sub_giou', 'obj_giou']
    expected = {f'loss_{n}' for n in per_layer + ['sub_dice', 'obj_dice']}
    expected |= {f'loss_{n}_d0' for n in per_layer}
    assert set(losses) == expected
    assert all(torch.isfinite(v) and v.item() > 0 for v in losses.values())
    sum(losses.values()).backward()
    for name in ('sub_class_embed.weight', 'obj_class_embed.weight', 'rel_class_embed.weight',
                 'sub_bbox_embed.layers.2.weight', 'obj_bbox_embed.layers.2.weight',
                 'sub_mask_head.out_lay.weight', 'obj_mask_head.adapter3.weight',
                 'sub_bbox_attention.q_linear.weight', 'obj_bbox_attention.k_linear.weight',
                 'query_embed.weight', 'transformer.encoder.layers.0.linear1.weight',
                 'input_proj.weight', 'backbone.0.body.layer4.0.conv1.weight'):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert model.get_parameter('backbone.0.body.layer1.0.conv1.weight').grad is None  # frozen


def test_layer_losses_follow_openpsg_normalisation():
    model = PSGTr(**TINY, num_queries=3, num_classes=4, num_predicates=3)
    torch.manual_seed(1)
    sub_boxes = torch.tensor([[[0.5, 0.5, 0.4, 0.4], [0.4, 0.5, 0.3, 0.6], [0.5, 0.5, 0.2, 0.2]]])
    obj_boxes = torch.tensor([[[0.3, 0.3, 0.2, 0.2], [0.6, 0.4, 0.5, 0.4], [0.5, 0.5, 0.2, 0.2]]])
    out = TripletOutputs(torch.randn(1, 3, 5), torch.randn(1, 3, 5), torch.randn(1, 3, 4), sub_boxes,
                         obj_boxes)
    target = TripletTargets(torch.tensor([2]), torch.tensor([1]), torch.tensor([0]),
                            torch.tensor([[0.45, 0.5, 0.3, 0.5]]),
                            torch.tensor([[0.6, 0.45, 0.4, 0.5]]))
    match = [(torch.tensor([1]), torch.tensor([0]))]
    size = (40, 100)  # not square: GIoU on pixel boxes differs from GIoU on normalised ones
    losses = model.layer_losses(out, [target], [size], match, 1.0)
    torch.testing.assert_close(losses['sub_ce'],
                               F.cross_entropy(out.sub_logits[0, 1:2], target.sub_labels))
    torch.testing.assert_close(losses['obj_ce'],
                               F.cross_entropy(out.obj_logits[0, 1:2], target.obj_labels))
    ce = F.cross_entropy(out.rel_logits[0], torch.tensor([3, 0, 3]), reduction='none')
    torch.testing.assert_close(losses['relation_ce'], (0.02 * ce[0] + ce[1] + 0.02 * ce[2]) / 1.04)
    torch.testing.assert_close(losses['sub_bbox'],
                               (out.sub_boxes[0, 1] - target.sub_boxes[0]).abs().sum())
    scale = torch.tensor([100.0, 40.0, 100.0, 40.0])
    giou = generalized_box_iou(box_convert(out.obj_boxes[0, 1:2], 'cxcywh', 'xyxy') * scale,
                               box_convert(target.obj_boxes, 'cxcywh', 'xyxy') * scale)[0, 0]
    torch.testing.assert_close(losses['obj_giou'], 1 - giou)
    unmatched = out._replace(sub_logits=out.sub_logits.clone())
    unmatched.sub_logits[0, [0, 2]] += 5.0  # unmatched queries get no subject/object loss
    again = model.layer_losses(unmatched, [target], [size], match, 1.0)
    torch.testing.assert_close(again['sub_ce'], losses['sub_ce'])


def test_box_losses_are_divided_by_the_matched_queries():
    """OpenPSG divides the box losses by the matched queries, min(Q, M) per image: with 2 queries
    and 3 GT triplets by 2, not 3."""
    model = PSGTr(**TINY, num_queries=2, aux_loss=False)
    sample = sky_grass_scene('a', 48, 64, (20, 44, 6, 30), PERSON,
                             rels=((2, 1, 14), (2, 0, 1), (0, 1, 5)))[0]
    batch = collate_samples([sample])
    losses = model(batch)
    _, heads = model.forward_heads(batch)
    layer = TripletOutputs(*(field[-1] for field in heads))
    targets = triplet_targets(batch.samples, 133, NUM_PREDICATES)
    (rows, cols), = model.matcher(layer, targets, [(48, 64)])
    assert len(rows) == 2
    l1 = (layer.sub_boxes[0, rows] - targets[0].sub_boxes[cols]).abs().sum()
    torch.testing.assert_close(losses['loss_sub_bbox'], 5.0 * l1 / 2)


def test_loss_weights_aux_loss_and_images_without_relations():
    a = PSGTr(**TINY, num_queries=10, aux_loss=False)
    b = PSGTr(**TINY, num_queries=10, aux_loss=False,
              loss_weights=dict(relation_ce=4.0, sub_dice=3.0))
    b.load_state_dict(a.state_dict())
    sample = sky_grass_scene('a', 48, 64, (20, 44, 6, 30), PERSON)[0]
    batch = collate_samples([sample])
    la, lb = a(batch), b(batch)
    assert len(la) == 9
    torch.testing.assert_close(lb['loss_relation_ce'], 2 * la['loss_relation_ce'])
    torch.testing.assert_close(lb['loss_sub_dice'], 3 * la['loss_sub_dice'])
    torch.testing.assert_close(lb['loss_obj_giou'], la['loss_obj_giou'])
    no_rels = Sample(**{**sample.__dict__, 'rels': torch.zeros(0, 3, dtype=torch.int64)})
    losses = a(collate_samples([no_rels]))
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses['loss_sub_ce'] == 0 and losses['loss_obj_dice'] == 0
    assert losses['loss_relation_ce'] > 0
    with pytest.raises(ValueError, match="unknown loss_weights keys \\['rel'\\]"):
        PSGTr(**TINY, loss_weights=dict(rel=1.0))
    with pytest.raises(ValueError, match='output must be one of'):
        PSGTr(**TINY, output='triplets')


def test_bad_targets_name_the_image_and_the_field():
    model = PSGTr(**TINY, num_queries=5)
    sample = sky_grass_scene('img7', 48, 64, (20, 44, 6, 30), PERSON)[0]
    bad_rel = Sample(**{**sample.__dict__, 'rels': torch.tensor([[2, 3, 14]])})
    with pytest.raises(DatasetError,
                       match=r'img7\.jpg: image_id=img7: rels: subject/object \[\[2, 3\]\] must '
                             r'index the 3 segments'):
        model(collate_samples([bad_rel]))
    bad_pred = Sample(**{**sample.__dict__, 'rels': torch.tensor([[2, 1, NUM_PREDICATES]])})
    with pytest.raises(DatasetError, match=r'image_id=img7: rels: predicates \[56\] are outside 0\.\.55'):
        model(collate_samples([bad_pred]))
    no_masks = Sample(**{**sample.__dict__, 'masks': torch.zeros(3, 0, 0, dtype=torch.bool)})
    with pytest.raises(DatasetError, match='image_id=img7: masks: PSGTr needs one mask per object'):
        model(collate_samples([no_masks]))


def brute_force_min(cost: torch.Tensor) -> float:
    q, n = cost.shape
    if q >= n:
        return min(sum(cost[p[j], j].item() for j in range(n))
                   for p in itertools.permutations(range(q), n))
    return min(sum(cost[i, p[i]].item() for i in range(q)) for p in itertools.permutations(range(n), q))


def random_boxes(n: int, g: torch.Generator) -> torch.Tensor:
    centre = torch.rand(n, 2, generator=g) * 0.6 + 0.2
    return torch.cat([centre, torch.rand(n, 2, generator=g) * 0.3 + 0.05], 1)


@pytest.mark.parametrize('num_queries,num_targets', [(5, 3), (4, 4), (2, 4)])
@pytest.mark.parametrize('seed', [0, 1])
def test_htrimatcher_cost_and_assignment_against_brute_force(num_queries, num_targets, seed):
    g = torch.Generator().manual_seed(seed)
    out = TripletOutputs(torch.randn(1, num_queries, 6, generator=g),
                         torch.randn(1, num_queries, 6, generator=g),
                         torch.randn(1, num_queries, 4, generator=g),
                         random_boxes(num_queries, g)[None], random_boxes(num_queries, g)[None])
    tgt = TripletTargets(torch.randint(0, 5, (num_targets,), generator=g),
                         torch.randint(0, 5, (num_targets,), generator=g),
                         torch.randint(0, 3, (num_targets,), generator=g),
                         random_boxes(num_targets, g), random_boxes(num_targets, g))
    h, w = 30, 80
    matcher = HTriMatcher()
    cost = matcher.cost(TripletOutputs(*(t[0] for t in out)), tgt, (h, w))
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)

    def xyxy(box):
        return box_convert(box[None], 'cxcywh', 'xyxy')[0]

    for q in range(num_queries):
        for m in range(num_targets):
            cls = -(out.sub_logits[0, q].softmax(-1)[tgt.sub_labels[m]]
                    + out.obj_logits[0, q].softmax(-1)[tgt.obj_labels[m]]
                    + 2 * out.rel_logits[0, q].softmax(-1)[tgt.predicates[m]]) / 3
            box = 0.0
            for pred, gt in ((out.sub_boxes[0, q], tgt.sub_boxes[m]),
                             (out.obj_boxes[0, q], tgt.obj_boxes[m])):
                box += 5 * (xyxy(pred) - xyxy(gt)).abs().sum()
                box -= 2 * generalized_box_iou((xyxy(pred) * scale)[None],
                                               (xyxy(gt) * scale)[None])[0, 0]
            assert cost[q, m].item() == pytest.approx((1.2 * cls + box / 2).item(), abs=1e-5)
    (rows, cols), = matcher(out, [tgt], [(h, w)])
    assert len(rows) == min(num_queries, num_targets) == len(set(cols.tolist()))
    assert cost[rows, cols].sum().item() == pytest.approx(brute_force_min(cost), abs=1e-4)


@pytest.mark.parametrize('output', ['single_mpo', 'legacy', 'openpsg_panoptic'])
def test_predict_is_wellformed_at_original_size(output):
    everything = dict(subject_score_thr=0.0, object_score_thr=0.0, predicate_score_thr=0.0)
    model = PSGTr(**TINY, num_queries=10, output=output, test_cfg=everything).eval()
    small = sky_grass_scene('a', 48, 64, (20, 44, 6, 30), PERSON, ori_shape=(96, 128), flip=True)[0]
    large = sky_grass_scene('b', 56, 72, (16, 36, 30, 50), HORSE)[0]
    preds = model(collate_samples([small, large]), mode='predict')
    assert [p.image_id for p in preds] == ['a', 'b']
    for pred, shape in zip(preds, [(96, 128), (56, 72)]):
        n, r = pred.num_segments, len(pred.pairs)
        assert n > 0 and r > 0
        assert pred.masks.shape == (n, *shape) and pred.masks.dtype == bool
        assert pred.labels.dtype == np.int64 and pred.pairs.dtype == np.int64
        assert pred.predicate_scores.shape == (r, NUM_PREDICATES)
        assert pred.predicate_scores.dtype == np.float32
        assert pred.no_relation_scores.shape == (r,) and pred.triplet_scores.shape == (r,)
        assert (np.diff(pred.triplet_scores) <= 0).all()
        np.testing.assert_allclose(pred.predicate_scores.sum(1) + pred.no_relation_scores, 1, atol=1e-5)
        assert pred.pan_id_map.shape == shape
        np.testing.assert_array_equal(pred.boxes, masks_to_boxes(pred.masks))
        if output == 'legacy':
            assert n == 2 * r and pred.pairs.tolist() == [[i, r + i] for i in range(r)]
            assert r == 100  # every row of the top 100 passes zero thresholds
            assert pred.pan_id_map.min() == 0  # OpenPSG: every pixel assigned
            continue
        assert pred.pairs.max() < n
        np.testing.assert_array_equal(pred.masks,
                                      pred.pan_id_map[None] == np.arange(n)[:, None, None])
        if output == 'single_mpo':
            assert len(np.unique(pred.pairs, axis=0)) == r
            assert (pred.pairs[:, 0] != pred.pairs[:, 1]).all()
        else:
            assert pred.pan_id_map.min() == 0


def test_detr_panoptic_weights_initialise_the_shared_parts():
    """A converted DETR-panoptic checkpoint fills PSGTR's backbone, projection, queries and
    transformer (the names and shapes are DETR's); the triplet heads start fresh."""
    psgtr = PSGTr(**TINY, num_queries=10).state_dict()
    detr = DETR4Seg(**TINY, num_queries=10).state_dict()
    parts = ('backbone', 'input_proj', 'query_embed', 'transformer')
    shared = [k for k in detr if k.split('.')[0] in parts]
    assert shared and all(k in psgtr and psgtr[k].shape == detr[k].shape for k in shared)


def test_r50_config_forward_backward_on_a_full_size_image():
    cfg = Config.fromfile(ROOT / 'configs' / '_base_' / 'models' / 'psgtr_r50.py')
    model = MODELS.build(cfg.model)
    assert model.num_queries == 100 and model.rel_class_embed.out_features == 57
    assert model.sub_class_embed.out_features == model.obj_class_embed.out_features == 134
    sample = coco_sized_scene()
    start = time.perf_counter()
    losses = model(collate_samples([sample]))
    sum(losses.values()).backward()
    assert len(losses) == 9 + 7 * 5 and all(torch.isfinite(v) for v in losses.values())
    assert model.sub_mask_head.lay1.weight.grad.abs().sum() > 0
    assert model.obj_mask_head.lay1.weight.grad.abs().sum() > 0
    assert time.perf_counter() - start < 120


@pytest.mark.parametrize('name', ['psgtr_r50_psg', 'psgtr_r101_psg', 'psgtr_tiny_synth'])
def test_configs_resolve(name):
    cfg = Config.fromfile(ROOT / 'configs' / 'psgtr' / f'{name}.py')
    assert cfg.model.type == 'PSGTr' and cfg.model.output == 'single_mpo'
    assert cfg.model.drop_wall_other_bug is False
    assert cfg.evaluation.metric == ['sgdet', 'PQ']
    assert cfg.optimizer.type == 'AdamW'
    if name == 'psgtr_tiny_synth':
        assert cfg.model.backbone.depth == 18 and cfg.model.backbone.frozen_stages == 4
        assert cfg.model.backbone.pretrained == 'work_dirs/panoptic_fpn_tiny_synth/latest.pth'
        assert cfg.model.backbone.pretrained_prefix == 'backbone.body.'
        assert cfg.model.transformer.d_model == 64 and cfg.model.num_queries <= 50
        assert cfg.data.train.ann_file == 'data/psg_synth/psg.json' and cfg.load_from is None
        return
    depth = 101 if 'r101' in name else 50
    assert cfg.model.backbone.depth == depth and cfg.model.num_queries == 100
    assert cfg.optimizer.lr == 1e-4 and cfg.optimizer.weight_decay == 1e-4
    assert cfg.optimizer.paramwise_cfg.custom_keys.backbone.lr_mult == 0.1
    assert cfg.optimizer_config.grad_clip.max_norm == 0.1
    assert cfg.runner.max_epochs == 60 and cfg.lr_config.step == [40]
    assert cfg.data.samples_per_gpu == 1 and cfg.data.train.ann_file == 'data/psg/psg.json'
    assert cfg.load_from == f'work_dirs/checkpoints/detr_pan_r{depth}.pth'
