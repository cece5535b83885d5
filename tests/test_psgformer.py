"""PSGFormer: losses and gradients, pointer loss, ObjectMatcher and IdMatcher against brute force,
DETR weight names, the optimizer groups of the configs and the R50 model on a full-size image."""
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
from openpsg.engine.optim import build_param_groups
from openpsg.models.one_stage.detr4seg import DETR4Seg
from openpsg.models.one_stage.psgformer import FormerOutputs, PSGFormer, relation_targets
from openpsg.models.one_stage.targets import box_targets
from openpsg.models.one_stage.triplet_matcher import IdMatcher, ObjectMatcher
from openpsg.registry import MODELS
from openpsg.structures import NUM_PREDICATES, Sample, collate_samples

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_one_step_gives_every_loss_and_gradients_reach_both_branches():
    model = PSGFormer(**TINY, num_queries=8, num_rel_queries=6)
    batch = collate_samples([sky_grass_scene('a', 48, 64, (20, 44, 6, 30), PERSON)[0],
                             sky_grass_scene('b', 40, 56, (16, 36, 30, 50), HORSE)[0]])
    losses = model(batch, mode='loss')
    per_layer = ['ce', 'bbox', 'giou', 'relation_ce']
    expected = {f'loss_{n}' for n in per_layer + ['mask', 'dice', 'sub_pointer', 'obj_pointer']}
    expected |= {f'loss_{n}_d0' for n in per_layer}
    assert set(losses) == expected
    assert all(torch.isfinite(v) and v.item() > 0 for v in losses.values())
    sum(losses.values()).backward()
    for name in ('class_embed.weight', 'bbox_embed.layers.2.weight', 'rel_class_embed.weight',
                 'sub_pointer.layers.0.weight', 'obj_pointer.layers.1.weight',
                 'mask_head.out_lay.weight', 'bbox_attention.q_linear.weight', 'query_embed.weight',
                 'rel_query_embed.weight', 'rel_decoder.layers.1.linear2.weight',
                 'transformer.decoder.layers.0.linear1.weight',
                 'transformer.encoder.layers.0.linear1.weight', 'input_proj.weight',
                 'backbone.0.body.layer4.0.conv1.weight'):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert len(model.rel_decoder.layers) == 2
    no_rels = collate_samples([Sample(**{**batch.samples[0].__dict__,
                                         'rels': torch.zeros(0, 3, dtype=torch.int64)})])
    losses = model(no_rels)
    assert losses['loss_sub_pointer'] == 0 and losses['loss_relation_ce'] > 0
    assert all(torch.isfinite(v) for v in losses.values())


def test_box_losses_are_divided_by_the_matched_queries():
    """OpenPSG divides the object box losses by the matched queries, min(Q, N) per image: with 2
    object queries and 3 GT segments by 2, not 3."""
    model = PSGFormer(**TINY, num_queries=2, num_rel_queries=2, aux_loss=False)
    batch = collate_samples([sky_grass_scene('a', 48, 64, (20, 44, 6, 30), PERSON)[0]])
    losses = model(batch)
    _, heads = model.forward_heads(batch)
    targets = box_targets(batch.samples, 133)
    (rows, cols), = model.matcher(heads.logits[-1], heads.boxes[-1], targets, [(48, 64)])
    assert len(rows) == 2
    l1 = (heads.boxes[-1, 0, rows] - targets[0][1][cols]).abs().sum()
    torch.testing.assert_close(losses['loss_bbox'], 3.0 * l1 / 2)


def test_relation_targets_and_the_pointer_loss():
    # segments 0..3; segment 3 is not matched to any object query
    match = (torch.tensor([1, 3, 4]), torch.tensor([2, 0, 1]))
    rels = torch.tensor([[0, 1, 5], [2, 0, 7], [3, 0, 1]])
    sub, obj, pred = relation_targets(match, rels, 4)
    assert sub.tolist() == [3, 1] and obj.tolist() == [4, 3] and pred.tolist() == [5, 7]

    model = PSGFormer(**TINY, num_queries=5, num_rel_queries=3, num_predicates=8)
    g = torch.Generator().manual_seed(0)
    heads = FormerOutputs(torch.randn(1, 1, 5, 134, generator=g), torch.rand(1, 1, 5, 4, generator=g),
                          torch.randn(1, 1, 3, 9, generator=g), torch.randn(1, 3, 5, generator=g),
                          torch.randn(1, 3, 5, generator=g))
    losses = model.relation_losses(heads, 0, [(sub, obj, pred)], [match], with_pointers=True)
    rows, cols = model.rel_matcher(heads.sub_scores[0], heads.obj_scores[0], heads.rel_logits[0, 0],
                                   sub, obj, pred)
    matched_queries = match[0]  # pointer logits are restricted to the matched object queries
    position = {q: i for i, q in enumerate(matched_queries.tolist())}
    expected = F.cross_entropy(heads.sub_scores[0][rows][:, matched_queries],
                               torch.tensor([position[q] for q in sub[cols].tolist()]))
    torch.testing.assert_close(losses['sub_pointer'], expected)
    targets = torch.full((3,), 8)
    targets[rows] = pred[cols]
    ce = F.cross_entropy(heads.rel_logits[0, 0], targets, reduction='none')
    weight = torch.where(targets == 8, 0.02, 1.0)
    torch.testing.assert_close(losses['relation_ce'], (weight * ce).sum() / weight.sum())
    assert set(model.relation_losses(heads, 0, [(sub, obj, pred)], [match],
                                     False)) == {'relation_ce'}


def brute_force_min(cost: torch.Tensor) -> float:
    q, n = cost.shape
    if q >= n:
        return min(sum(cost[p[j], j].item() for j in range(n))
                   for p in itertools.permutations(range(q), n))
    return min(sum(cost[i, p[i]].item() for i in range(q)) for p in itertools.permutations(range(n), q))


@pytest.mark.parametrize('num_queries,num_targets', [(5, 3), (3, 3), (2, 4)])
@pytest.mark.parametrize('seed', [0, 1])
def test_object_and_id_matchers_against_brute_force(num_queries, num_targets, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(num_queries, 7, generator=g)
    boxes = torch.cat([torch.rand(num_queries, 2, generator=g) * 0.6 + 0.2,
                       torch.rand(num_queries, 2, generator=g) * 0.3 + 0.05], 1)
    labels = torch.randint(0, 6, (num_targets,), generator=g)
    target_boxes = torch.cat([torch.rand(num_targets, 2, generator=g) * 0.6 + 0.2,
                              torch.rand(num_targets, 2, generator=g) * 0.3 + 0.05], 1)
    h, w = 50, 20
    matcher = ObjectMatcher(cls=4, bbox=3, giou=2)
    cost = matcher.cost(logits, boxes, labels, target_boxes, (h, w))
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)
    for q in range(num_queries):
        for t in range(num_targets):
            a = box_convert(boxes[q:q + 1], 'cxcywh', 'xyxy')
            b = box_convert(target_boxes[t:t + 1], 'cxcywh', 'xyxy')
            value = (-4 * logits[q].softmax(-1)[labels[t]] + 3 * (a - b).abs().sum()
                     - 2 * generalized_box_iou(a * scale, b * scale)[0, 0])
            assert cost[q, t].item() == pytest.approx(value.item(), abs=1e-5)
    (rows, cols), = matcher(logits[None], boxes[None], [(labels, target_boxes)], [(h, w)])
    assert cost[rows, cols].sum().item() == pytest.approx(brute_force_min(cost), abs=1e-4)

    sub_scores, obj_scores = torch.randn(2, num_queries, 6, generator=g)
    rel_logits = torch.randn(num_queries, 5, generator=g)
    sub_q, obj_q = torch.randint(0, 6, (2, num_targets), generator=g)
    pred = torch.randint(0, 4, (num_targets,), generator=g)
    id_matcher = IdMatcher()
    cost = id_matcher.cost(sub_scores, obj_scores, rel_logits, sub_q, obj_q, pred)
    for r in range(num_queries):
        for t in range(num_targets):
            value = -(sub_scores[r].softmax(-1)[sub_q[t]] + obj_scores[r].softmax(-1)[obj_q[t]]
                      + rel_logits[r].softmax(-1)[pred[t]])
            assert cost[r, t].item() == pytest.approx(value.item(), abs=1e-6)
    rows, cols = id_matcher(sub_scores, obj_scores, rel_logits, sub_q, obj_q, pred)
    assert cost[rows, cols].sum().item() == pytest.approx(brute_force_min(cost), abs=1e-5)


@pytest.mark.parametrize('output', ['single_mpo', 'legacy', 'openpsg_panoptic'])
def test_predict_is_wellformed(output):
    model = PSGFormer(**TINY, num_queries=8, num_rel_queries=6, output=output).eval()
    preds = model(collate_samples([sky_grass_scene('a', 48, 64, (20, 44, 6, 30), PERSON)[0],
                                   sky_grass_scene('b', 40, 56, (16, 36, 30, 50), HORSE)[0]]), mode='predict')
    for pred, shape in zip(preds, [(48, 64), (40, 56)]):
        n, r = pred.num_segments, len(pred.pairs)
        assert n > 0 and pred.masks.shape == (n, *shape) and pred.pan_id_map.shape == shape
        assert pred.predicate_scores.shape == (r, NUM_PREDICATES)
        assert (np.diff(pred.triplet_scores) <= 0).all()
        if output == 'legacy':  # no thresholds: all 6 x 56 cells compete for the top 100
            assert r == 100 and n == 200
            continue
        np.testing.assert_array_equal(pred.masks,
                                      pred.pan_id_map[None] == np.arange(n)[:, None, None])
        if output == 'single_mpo':
            assert len(np.unique(pred.pairs, axis=0)) == r
        else:  # every row whose pointed queries have pixels, every pixel assigned
            assert 0 < r <= 100 and pred.pan_id_map.min() == 0


def test_detr_panoptic_weights_initialise_the_whole_object_branch():
    psgformer = PSGFormer(**TINY, num_queries=10).state_dict()
    detr = DETR4Seg(**TINY, num_queries=10).state_dict()
    assert all(k in psgformer and psgformer[k].shape == v.shape for k, v in detr.items())
    new = sorted({k.split('.')[0] for k in psgformer if k not in detr})
    assert new == ['obj_pointer', 'rel_class_embed', 'rel_decoder', 'rel_query_embed', 'sub_pointer']


def test_r50_config_forward_backward_on_a_full_size_image():
    cfg = Config.fromfile(ROOT / 'configs' / '_base_' / 'models' / 'psgformer_r50.py')
    model = MODELS.build(cfg.model)
    assert model.num_queries == 100 and model.rel_query_embed.num_embeddings == 100
    assert model.class_embed.out_features == 134 and model.rel_class_embed.out_features == 57
    sample = coco_sized_scene()
    start = time.perf_counter()
    losses = model(collate_samples([sample]))
    sum(losses.values()).backward()
    assert len(losses) == 8 + 4 * 5 and all(torch.isfinite(v) for v in losses.values())
    assert model.mask_head.lay1.weight.grad.abs().sum() > 0
    assert model.sub_pointer.layers[0].weight.grad.abs().sum() > 0
    assert time.perf_counter() - start < 120


@pytest.mark.parametrize('name', ['psgformer_r50_psg', 'psgformer_r101_psg', 'psgformer_tiny_synth'])
def test_configs_resolve(name):
    cfg = Config.fromfile(ROOT / 'configs' / 'psgformer' / f'{name}.py')
    assert cfg.model.type == 'PSGFormer' and cfg.model.output == 'single_mpo'
    assert cfg.model.drop_rug_bug is False and cfg.find_unused_parameters is True
    assert cfg.evaluation.metric == ['sgdet', 'PQ']
    if name == 'psgformer_tiny_synth':
        assert cfg.model.backbone.depth == 18 and cfg.model.backbone.frozen_stages == 4
        assert cfg.model.backbone.pretrained == 'work_dirs/panoptic_fpn_tiny_synth/latest.pth'
        assert cfg.model.backbone.pretrained_prefix == 'backbone.body.'
        assert cfg.model.transformer.d_model == 64 and cfg.model.num_queries <= 50
        assert cfg.load_from is None
        return
    depth = 101 if 'r101' in name else 50
    assert cfg.model.backbone.depth == depth
    assert cfg.optimizer.lr == 1e-3 and cfg.optimizer.weight_decay == 1e-4
    assert cfg.optimizer_config.grad_clip.max_norm == 0.1
    assert cfg.runner.max_epochs == 60 and cfg.lr_config.step == [48 if depth == 101 else 40]
    assert cfg.load_from == f'work_dirs/checkpoints/detr_pan_r{depth}.pth'


def test_lr_multipliers_cover_exactly_the_detr_pretrained_parts():
    cfg = Config.fromfile(ROOT / 'configs' / 'psgformer' / 'psgformer_r50_psg.py')
    model = PSGFormer(**TINY, num_queries=5, num_rel_queries=5)
    groups = build_param_groups(model, cfg.optimizer.lr, cfg.optimizer.weight_decay,
                                cfg.optimizer.paramwise_cfg)
    assert {g['name'] for g in groups} == set(cfg.optimizer.paramwise_cfg.custom_keys) | {'default'}
    slow = {id(p) for g in groups if g['lr'] == pytest.approx(1e-4) for p in g['params']}
    detr = DETR4Seg(**TINY, num_queries=5).state_dict()
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert (id(param) in slow) == (name in detr), name
