"""Deformable DETR: the transformer (valid ratios, reference points, a decoder layer and its
self-attention queries/keys recomputed by hand, padding invariance), the detector (reference
initialisation and names, losses, top-k prediction at the original size), its configs, that it
learns, and one R50 step at 800x1333."""
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from one_stage_scenes import coco_sized_scene
from openpsg.config import Config
from openpsg.datasets import PSGDataset
from openpsg.datasets.synthetic import generate_synthetic_psg
from openpsg.engine.optim import build_param_groups
from openpsg.models.losses import sigmoid_focal_classification
from openpsg.models.one_stage import DeformableDETR, DeformableTransformer, PositionEmbeddingSine
from openpsg.models.one_stage.deformable_transformer import encoder_reference_points, valid_ratio
from openpsg.registry import MODELS
from openpsg.structures import ImageMeta, Sample, collate_samples
from test_one_stage_learns import NORM, SmallCNN

ROOT = Path(__file__).resolve().parents[1]
TINY_TRANSFORMER = dict(d_model=32, nhead=4, num_encoder_layers=2, num_decoder_layers=3,
                        dim_feedforward=64, dropout=0.0, num_feature_levels=2, enc_n_points=2,
                        dec_n_points=3)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def level_inputs(shapes, valid, d=32, batch=1):
    """Random maps of the given ``shapes`` with the top-left ``valid`` block of each unpadded,
    their masks and sine position encodings (Deformable DETR's normalisation)."""
    srcs, masks = [], []
    for (h, w), (vh, vw) in zip(shapes, valid):
        srcs.append(torch.randn(batch, d, h, w))
        mask = torch.ones(batch, h, w, dtype=torch.bool)
        mask[:, :vh, :vw] = False
        masks.append(mask)
    encoding = PositionEmbeddingSine(d // 2, normalize=True, offset=-0.5)
    return srcs, masks, [encoding(m) for m in masks]


def test_valid_ratios_and_encoder_reference_points_by_hand():
    # level 0: 2x4 map, valid 2 rows x 3 columns -> ratio (w, h) = (0.75, 1);
    # level 1: 2x2 map, valid 1 row x 2 columns -> (1, 0.5)
    _, masks, _ = level_inputs([(2, 4), (2, 2)], [(2, 3), (1, 2)])
    ratios = torch.stack([valid_ratio(m) for m in masks], 1)
    torch.testing.assert_close(ratios, torch.tensor([[[0.75, 1.0], [1.0, 0.5]]]))
    points = encoder_reference_points(torch.tensor([[2, 4], [2, 2]]), ratios)
    assert points.shape == (1, 8 + 4, 2, 2)
    # token (row 1, col 2) of level 0: centre (2.5, 1.5) px of the 3x2 valid block ->
    # (2.5 / 3, 1.5 / 2) of the valid image; on level 0 x (0.75, 1), on level 1 x (1, 0.5)
    torch.testing.assert_close(points[0, 6], torch.tensor([[2.5 / 3 * 0.75, 0.75],
                                                           [2.5 / 3, 0.75 * 0.5]]))
    # token (row 0, col 1) of level 1: centre (1.5, 0.5) px of the 2x1 valid block
    torch.testing.assert_close(points[0, 8 + 1], torch.tensor([[0.75 * 0.75, 0.5],
                                                               [0.75, 0.5 * 0.5]]))


def test_deformable_position_encoding_uses_pixel_centres():
    # 2 valid rows: the second row is at (2 - 0.5) / 2 * 2 pi; F = 2 channels per axis
    encoding = PositionEmbeddingSine(num_pos_feats=2, offset=-0.5)
    pos = encoding(torch.zeros(1, 2, 3, dtype=torch.bool))
    y, x = 1.5 / 2 * 2 * math.pi, 0.5 / 3 * 2 * math.pi
    torch.testing.assert_close(pos[0, :, 1, 0], torch.tensor([math.sin(y), math.cos(y),
                                                              math.sin(x), math.cos(x)]))


def test_transformer_outputs_shapes_and_reference_names():
    tr = DeformableTransformer(**TINY_TRANSFORMER).eval()
    srcs, masks, pos = level_inputs([(4, 6), (2, 3)], [(4, 5), (2, 3)], batch=2)
    masks[0][1, :, 3:] = True
    masks[1][1, :, 2:] = True
    out = tr(srcs, masks, pos, torch.randn(5, 64))
    assert out.hs.shape == (3, 2, 5, 32) and out.memory.shape == (2, 24 + 6, 32)
    assert out.init_reference.shape == (2, 5, 2)
    assert ((out.init_reference > 0) & (out.init_reference < 1)).all()
    assert out.inter_references.shape == (3, 2, 5, 2)
    assert (out.inter_references == out.init_reference).all()  # no box refinement
    assert out.spatial_shapes.tolist() == [[4, 6], [2, 3]]
    assert out.spatial_shapes.dtype == torch.int64
    assert out.level_start_index.tolist() == [0, 24]
    torch.testing.assert_close(out.valid_ratios, torch.tensor([[[5 / 6, 1.0], [1.0, 1.0]],
                                                               [[3 / 6, 1.0], [2 / 3, 1.0]]]))
    assert out.mask_flatten.shape == (2, 30) and out.mask_flatten[1].sum() == 4 * 3 + 2
    assert len(out.self_attn_qk) == 3
    assert all(q.shape == k.shape == (2, 5, 32) for q, k in out.self_attn_qk)
    names = set(tr.state_dict())
    assert {'level_embed', 'reference_points.weight',
            'encoder.layers.1.self_attn.sampling_offsets.bias',
            'encoder.layers.0.self_attn.attention_weights.weight', 'encoder.layers.0.norm2.weight',
            'encoder.layers.0.linear1.weight', 'decoder.layers.2.cross_attn.value_proj.weight',
            'decoder.layers.0.cross_attn.output_proj.bias',
            'decoder.layers.0.self_attn.in_proj_weight',
            'decoder.layers.0.self_attn.out_proj.weight', 'decoder.layers.0.norm3.bias'} <= names
    assert not any(n.startswith(('decoder.norm', 'encoder.norm')) for n in names)
    assert tr.level_embed.shape == (2, 32)
    assert tr.encoder.layers[0].self_attn.sampling_offsets.out_features == 4 * 2 * 2 * 2
    assert tr.decoder.layers[0].cross_attn.sampling_offsets.out_features == 4 * 2 * 3 * 2
    with pytest.raises(ValueError, match='expected 2 levels, got 1 maps'):
        tr(srcs[:1], masks[:1], pos[:1], torch.randn(5, 64))


def test_dropout_placement_of_the_reference_and_of_hugging_face():
    def rates(tr):
        enc, dec = tr.encoder.layers[0], tr.decoder.layers[0]
        return {'input': tr.input_dropout.p, 'enc_residual': (enc.dropout1.p, enc.dropout3.p),
                'enc_ffn': enc.dropout2.p, 'dec_attn_weights': dec.self_attn.dropout,
                'dec_residual': (dec.dropout1.p, dec.dropout2.p, dec.dropout4.p),
                'dec_ffn': dec.dropout3.p}

    # fundamentalvision/Deformable-DETR: `dropout` everywhere but the encoder input
    ref = DeformableTransformer(**dict(TINY_TRANSFORMER, dropout=0.1))
    assert rates(ref) == {'input': 0.0, 'enc_residual': (0.1, 0.1), 'enc_ffn': 0.1,
                          'dec_attn_weights': 0.1, 'dec_residual': (0.1, 0.1, 0.1),
                          'dec_ffn': 0.1}
    # Hugging Face (EGTR): dropout 0.1, attention_dropout 0, activation_dropout 0, and the
    # encoder input dropped out at `dropout`; the second decoder follows the first
    hf = DeformableTransformer(**dict(TINY_TRANSFORMER, dropout=0.1, attention_dropout=0.0,
                                      activation_dropout=0.0, input_dropout=0.1))
    assert rates(hf) == {'input': 0.1, 'enc_residual': (0.1, 0.1), 'enc_ffn': 0.0,
                         'dec_attn_weights': 0.0, 'dec_residual': (0.1, 0.1, 0.1),
                         'dec_ffn': 0.0}
    second = hf.new_decoder().layers[0]
    assert (second.self_attn.dropout, second.dropout3.p, second.dropout4.p) == (0.0, 0.0, 0.1)


def test_decoder_reference_points_from_the_query_position():
    """``reference_points`` reads the first half of ``query_embed``; the cross-attention gets the
    point scaled by each level's valid ratio."""
    tr = DeformableTransformer(**TINY_TRANSFORMER).eval()
    with torch.no_grad():
        tr.reference_points.weight.zero_()
        tr.reference_points.bias.copy_(torch.tensor([0.0, math.log(3)]))  # sigmoid -> (0.5, 0.75)
    srcs, masks, pos = level_inputs([(2, 4), (2, 2)], [(2, 3), (1, 2)])
    seen = []
    tr.decoder.layers[1].cross_attn.register_forward_pre_hook(lambda m, args: seen.append(args[1]))
    out = tr(srcs, masks, pos, torch.randn(4, 64))
    torch.testing.assert_close(out.init_reference, torch.tensor([0.5, 0.75]).expand(1, 4, 2))
    expected = torch.tensor([[0.5 * 0.75, 0.75 * 1.0], [0.5 * 1.0, 0.75 * 0.5]])
    torch.testing.assert_close(seen[0], expected.expand(1, 4, 2, 2))


def test_self_attn_qk_and_every_decoder_layer_by_hand():
    """Each layer's (q, k) is in_proj applied to (layer input + query position), unscaled: the
    attention weights nn.MultiheadAttention computes are softmax(q_h k_h^T / sqrt(d_h)). Each
    layer's output follows the reference's order (self-attention, norm2, cross-attention, norm1,
    FFN, norm3), so exposing (q, k) leaves the decoder's numbers as they were."""
    tr = DeformableTransformer(**TINY_TRANSFORMER).eval()
    srcs, masks, pos = level_inputs([(3, 4), (2, 2)], [(3, 3), (2, 2)], batch=2)
    query_embed = torch.randn(6, 64)
    out = tr(srcs, masks, pos, query_embed)
    query_pos, tgt = query_embed[:, :32].expand(2, 6, 32), query_embed[:, 32:].expand(2, 6, 32)
    reference = out.init_reference[:, :, None] * out.valid_ratios[:, None]
    for layer_idx, layer in enumerate(tr.decoder.layers):
        x = tgt + query_pos
        weight, bias = layer.self_attn.in_proj_weight, layer.self_attn.in_proj_bias
        q, k = out.self_attn_qk[layer_idx]
        torch.testing.assert_close(q, x @ weight[:32].T + bias[:32])
        torch.testing.assert_close(k, x @ weight[32:64].T + bias[32:64])
        attended, attn_weights = layer.self_attn(x, x, tgt, need_weights=True,
                                                 average_attn_weights=False)
        qh, kh = q.view(2, 6, 4, 8).transpose(1, 2), k.view(2, 6, 4, 8).transpose(1, 2)
        expected = (qh @ kh.transpose(-1, -2) / math.sqrt(8)).softmax(-1)
        torch.testing.assert_close(attn_weights, expected)
        h = layer.norm2(tgt + attended)
        h = layer.norm1(h + layer.cross_attn(h + query_pos, reference, out.memory,
                                             out.spatial_shapes, out.mask_flatten))
        h = layer.norm3(h + layer.linear2(F.relu(layer.linear1(h))))
        torch.testing.assert_close(out.hs[layer_idx], h)
        tgt = h


def test_padding_does_not_change_the_valid_region():
    """An image padded into a larger batch gets the same memory on its valid tokens and the same
    decoder outputs as the image alone: reference points and offsets land on the same pixels,
    and padded values read 0 as points off the map do."""
    tr = DeformableTransformer(**TINY_TRANSFORMER).eval()
    query_embed = torch.randn(5, 64)
    alone_srcs, alone_masks, alone_pos = level_inputs([(3, 4), (2, 2)], [(3, 4), (2, 2)])
    alone = tr(alone_srcs, alone_masks, alone_pos, query_embed)
    srcs, masks, pos = level_inputs([(4, 6), (3, 3)], [(3, 4), (2, 2)])
    for src, small in zip(srcs, alone_srcs):
        src *= 100  # padding holds garbage
        src[:, :, :small.shape[2], :small.shape[3]] = small
    padded = tr(srcs, masks, pos, query_embed)
    torch.testing.assert_close(padded.hs, alone.hs, atol=1e-5, rtol=1e-5)
    valid = ~padded.mask_flatten[0]
    torch.testing.assert_close(padded.memory[0, valid], alone.memory[0], atol=1e-5, rtol=1e-5)


def test_sigmoid_focal_classification_hand_computed():
    # all logits 0 (p = 0.5): a positive entry costs 0.25 * 0.5^2 * ln 2, a negative one
    # 0.75 * 0.5^2 * ln 2; query 0 is class 0 (1 positive, 1 negative), query 1 no object (class
    # 2 = C: 2 negatives); the sum over queries and classes is divided by num_boxes
    logits = torch.zeros(1, 2, 2)
    labels = torch.tensor([[0, 2]])
    total = (0.25 * 0.25 + 3 * 0.75 * 0.25) * math.log(2)
    assert sigmoid_focal_classification(logits, labels, 1).item() == pytest.approx(total)
    assert sigmoid_focal_classification(logits, labels, 2).item() == pytest.approx(total / 2)


def tiny_model(**kwargs) -> DeformableDETR:
    return MODELS.build(dict(
        type='DeformableDETR', backbone=dict(type='ResNet', depth=18, frozen_stages=1),
        transformer=dict(d_model=64, nhead=8, num_encoder_layers=1, num_decoder_layers=2,
                         dim_feedforward=64, dropout=0.0), num_queries=6, **kwargs))


def box_sample(flip=False, labels=(3, 100), boxes=((4., 4., 20., 30.), (0., 0., 64., 48.))):
    return Sample(img=torch.randn(3, 48, 64),
                  meta=ImageMeta('a', ori_shape=(96, 128), img_shape=(48, 64), flip=flip),
                  labels=torch.tensor(labels, dtype=torch.int64),
                  boxes=torch.tensor(boxes).reshape(-1, 4),
                  masks=torch.zeros(len(labels), 0, 0, dtype=torch.bool),
                  rels=torch.zeros(0, 3, dtype=torch.int64))


def test_reference_initialisation_layout_and_names():
    model = tiny_model()
    names = set(model.state_dict())
    assert {'backbone.0.body.layer2.0.conv1.weight', 'input_proj.0.0.weight', 'input_proj.0.1.bias',
            'input_proj.3.0.weight', 'input_proj.3.1.weight', 'query_embed.weight',
            'transformer.level_embed', 'transformer.reference_points.weight',
            'class_embed.0.weight', 'class_embed.1.bias', 'bbox_embed.1.layers.2.bias'} <= names
    assert model.query_embed.weight.shape == (6, 128)
    # C3, C4, C5 of ResNet-18 through 1x1 convs, a stride-64 level by a 3x3/2 conv on C5
    assert [p[0].in_channels for p in model.input_proj] == [128, 256, 512, 512]
    assert model.input_proj[3][0].kernel_size == (3, 3) and model.input_proj[3][0].stride == (2, 2)
    assert all(isinstance(p[1], torch.nn.GroupNorm) and p[1].num_groups == 32
               for p in model.input_proj)
    # one head shared by both decoder layers, focal prior bias, zero last box layer with w, h
    # starting at sigmoid(-2)
    assert model.class_embed[0] is model.class_embed[1]
    assert model.bbox_embed[0] is model.bbox_embed[1]
    assert model.class_embed[0].out_features == 133
    torch.testing.assert_close(model.class_embed[0].bias, torch.full((133,), -math.log(99)))
    last = model.bbox_embed[0].layers[2]
    assert (last.weight == 0).all() and last.bias.tolist() == [0.0, 0.0, -2.0, -2.0]
    with pytest.raises(ValueError, match='multiple of 32'):
        MODELS.build(dict(type='DeformableDETR', backbone=dict(type='ResNet', depth=18),
                          transformer=dict(d_model=48, nhead=4)))
    with pytest.raises(ValueError, match='must be 1 .C5. or at least 3'):
        MODELS.build(dict(type='DeformableDETR', backbone=dict(type='ResNet', depth=18),
                          transformer=dict(d_model=32, nhead=4, num_feature_levels=2)))


@pytest.mark.parametrize('levels, in_channels, shapes', [
    (1, [512], [(2, 2)]),                                      # C5 alone (single scale)
    (5, [128, 256, 512, 512, 64], [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]),  # 2 extra levels
])
def test_feature_levels_other_than_four(levels, in_channels, shapes):
    model = MODELS.build(dict(
        type='DeformableDETR', backbone=dict(type='ResNet', depth=18), num_queries=3,
        transformer=dict(d_model=64, nhead=8, num_encoder_layers=1, num_decoder_layers=1,
                         dim_feedforward=64, dropout=0.0, num_feature_levels=levels)))
    assert [p[0].in_channels for p in model.input_proj] == in_channels
    _, out = model.run_transformer(torch.randn(2, 3, 64, 64),
                                   torch.zeros(2, 64, 64, dtype=torch.bool))
    assert out.spatial_shapes.tolist() == [list(s) for s in shapes]


def test_one_step_gives_every_loss_and_gradients():
    model = tiny_model()
    losses = model(collate_samples([box_sample(), box_sample(labels=(), boxes=())]))
    assert set(losses) == {'loss_ce', 'loss_bbox', 'loss_giou', 'loss_ce_d0', 'loss_bbox_d0',
                           'loss_giou_d0'}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    # (at initialisation the zero last box layer and the zero offset/attention weights keep the
    # gradient from the earlier box layers and the level embeddings)
    for param in (model.class_embed[0].weight, model.bbox_embed[0].layers[2].weight,
                  model.query_embed.weight,
                  model.transformer.encoder.layers[0].self_attn.sampling_offsets.weight,
                  model.transformer.decoder.layers[1].self_attn.in_proj_weight,
                  model.input_proj[3][0].weight, model.backbone[0].body.layer2[0].conv1.weight):
        assert param.grad is not None and param.grad.abs().sum() > 0
    no_aux = tiny_model(aux_loss=False, loss_weights=dict(ce=1.0))
    assert set(no_aux(collate_samples([box_sample()]))) == {'loss_ce', 'loss_bbox', 'loss_giou'}
    with pytest.raises(ValueError, match="unknown loss_weights keys \\['mask'\\]"):
        tiny_model(loss_weights=dict(mask=1.0))


def test_predict_ranks_query_class_pairs_and_returns_original_boxes():
    """Class 7 is the most probable for every query; boxes are the reference points with size
    (0.5, 0.5) of the image, mapped to the original 128x96 image and mirrored when flipped."""
    model = tiny_model(test_cfg=dict(max_per_img=8)).eval()
    with torch.no_grad():
        model.class_embed[0].weight.zero_()
        model.class_embed[0].bias[7] = 2.0
        model.class_embed[0].bias[11] = 1.0
        model.bbox_embed[0].layers[2].bias.zero_()
    batch = collate_samples([box_sample(), box_sample(flip=True)])
    pred, flipped = model(batch, 'predict')
    assert pred.labels.tolist() == [7] * 6 + [11] * 2 and pred.masks is None
    np.testing.assert_allclose(pred.scores, [1 / (1 + math.exp(-2))] * 6 +
                               [1 / (1 + math.exp(-1))] * 2, rtol=1e-6)
    assert pred.pairs.shape == (0, 2) and pred.predicate_scores.shape == (0, 56)
    _, out = model.run_transformer(batch.imgs, batch.pad_mask)
    centres = out.init_reference[0].detach().numpy() * [128, 96]
    expected = np.concatenate([centres - [32, 24], centres + [32, 24]], 1)

    def by_x(boxes):  # the 6 queries tie on score: compare them in a fixed order
        return boxes[np.argsort(boxes[:, 0])]

    np.testing.assert_allclose(by_x(pred.boxes[:6]), by_x(expected), rtol=1e-5, atol=1e-3)
    unflipped = flipped.boxes[:6, [2, 1, 0, 3]] * [-1, 1, -1, 1] + [128, 0, 128, 0]
    np.testing.assert_allclose(by_x(unflipped), by_x(expected), rtol=1e-5, atol=1e-3)
    assert len(tiny_model()(batch, 'predict')[0].labels) == 100  # the default top-100


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp('synth4') / 'psg_synth'
    generate_synthetic_psg(root, num_train=0, num_test=4, seed=0, size=128)
    pipeline = [dict(type='LoadImage'), dict(type='LoadPanopticAnnotations', with_rel=True),
                dict(type='Normalize', **NORM), dict(type='Pad', size_divisor=1),
                dict(type='PackSample')]
    dataset = PSGDataset(str(root / 'psg.json'), str(root), split='test', pipeline=pipeline)
    return collate_samples([dataset[i] for i in range(len(dataset))])


def box_recall(model, batch, top: int = 20) -> tuple[float, float]:
    """Fraction of GT boxes found with IoU >= 0.5 and the right class among each image's
    ``top`` predictions, and the mean best IoU (inputs are at the original size)."""
    with torch.no_grad():
        predictions = model.eval()(batch, 'predict')
    best = []
    for pred, sample in zip(predictions, batch.samples):
        iou = box_iou(sample.boxes, torch.from_numpy(pred.boxes[:top]))
        same = sample.labels[:, None] == torch.from_numpy(pred.labels[:top])[None]
        best += (iou * same).max(1).values.tolist()
    return float(np.mean(np.array(best) >= 0.5)), float(np.mean(best))


def test_overfitting_four_scenes_finds_the_boxes(scenes):
    """The tiny transformer on a small CNN: 120 AdamW steps (lr 2e-3, cosine) on 4 synthetic
    scenes (18 objects) find 94-100 % of the boxes with the right class (seeds 0-2; 0 before)."""
    model = DeformableDETR(
        backbone=dict(type=SmallCNN, width=16), num_queries=20,
        transformer=dict(d_model=64, nhead=8, num_encoder_layers=2, num_decoder_layers=2,
                         dim_feedforward=128, dropout=0.0))
    assert box_recall(model, scenes)[0] < 0.1
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 120)
    for _ in range(120):
        losses = model(scenes)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    recall, mean_iou = box_recall(model, scenes)
    assert recall > 0.8 and mean_iou > 0.7, (recall, mean_iou)


@pytest.mark.parametrize('name', ['deformable_detr_r50_psg', 'deformable_detr_tiny_synth'])
def test_configs_resolve_with_the_reference_recipe(name):
    cfg = Config.fromfile(ROOT / 'configs' / 'deformable_detr' / f'{name}.py')
    assert cfg.model.type == 'DeformableDETR'
    if name == 'deformable_detr_r50_psg':
        t = cfg.model.transformer
        assert (t.d_model, t.nhead, t.num_encoder_layers, t.num_decoder_layers, t.dim_feedforward,
                t.dropout, t.num_feature_levels, t.enc_n_points, t.dec_n_points) == \
            (256, 8, 6, 6, 1024, 0.1, 4, 4, 4)
        assert cfg.model.num_queries == 300 and cfg.model.backbone.depth == 50
        assert (cfg.optimizer.lr, cfg.optimizer.weight_decay) == (2e-4, 1e-4)
        assert cfg.optimizer_config.grad_clip.max_norm == 0.1
        assert cfg.lr_config.step == [40] and cfg.runner.max_epochs == 50
        assert cfg.data.samples_per_gpu == 2
    else:
        assert cfg.model.backbone.depth == 18 and cfg.model.transformer.d_model == 64
        assert cfg.data.train.ann_file == 'data/psg_synth/psg.json'
    cfg.model.backbone.pretrained = None
    model = MODELS.build(cfg.model)
    groups = {g['name']: g for g in build_param_groups(model, cfg.optimizer.lr, 1e-4,
                                                       cfg.optimizer.paramwise_cfg)}
    lr = cfg.optimizer.lr
    if name == 'deformable_detr_r50_psg':
        assert groups['backbone']['lr'] == pytest.approx(lr * 0.1)
    else:  # the trained trunk is frozen
        assert 'backbone' not in groups and not any(
            p.requires_grad for p in model.backbone.parameters())
    offsets = {id(p) for n, p in model.named_parameters() if 'sampling_offsets' in n}
    assert len(offsets) == 2 * (cfg.model.transformer.num_encoder_layers +
                                cfg.model.transformer.num_decoder_layers)
    assert {id(p) for p in groups['*.sampling_offsets']['params']} == offsets
    assert groups['*.sampling_offsets']['lr'] == pytest.approx(lr * 0.1)
    assert [id(p) for p in groups['*.reference_points']['params']] == \
        [id(model.transformer.reference_points.weight), id(model.transformer.reference_points.bias)]


@pytest.mark.xdist_group('deformable_800x1333')  # 7-10 GB each: one at a time
def test_r50_config_train_and_test_step_on_a_full_size_image():
    cfg = Config.fromfile(ROOT / 'configs' / 'deformable_detr' / 'deformable_detr_r50_psg.py')
    cfg.model.backbone.pretrained = None
    model = MODELS.build(cfg.model)
    batch = collate_samples([coco_sized_scene()])
    start = time.perf_counter()
    losses = model(batch)
    sum(losses.values()).backward()
    assert len(losses) == 3 * 6 and all(torch.isfinite(v) for v in losses.values())
    assert model.transformer.encoder.layers[5].self_attn.value_proj.weight.grad.abs().sum() > 0
    model.eval()
    pred = model(batch, 'predict')[0]
    assert pred.boxes.shape == (100, 4) and (pred.labels < 133).all()
    assert time.perf_counter() - start < 300
