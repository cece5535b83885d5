"""PSGTR and PSGFormer (and DETR4Seg) on Deformable DETR's transformer, switched by
``transformer['type']``: the tiny configs' losses, gradients and predictions, Deformable DETR's
parameter names, the single-level memory the mask branch reads, boxes relative to the reference
points, bad settings, the configs, and the R50 configs on a full-size image."""
import argparse
import importlib.util
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from one_stage_scenes import HORSE, PERSON, coco_sized_scene, sky_grass_scene

from openpsg.config import Config
from openpsg.engine.checkpoint import load_weights
from openpsg.engine.optim import build_param_groups
from openpsg.models.conversion import build_target_model
from openpsg.models.one_stage import DETR4Seg, DeformableDETR, PSGFormer, PSGTr
from openpsg.models.one_stage.deformable_mask_features import deformable_mask_features, level_map
from openpsg.models.one_stage.deformable_transformer import (DeformableMemory,
                                                             DeformableTransformerDecoder)
from openpsg.models.one_stage.detr_base import decode_boxes
from openpsg.registry import MODELS
from openpsg.structures import NUM_PREDICATES, collate_samples

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {PSGTr: 'psgtr/psgtr_deformable_tiny_synth.py',
           PSGFormer: 'psgformer/psgformer_deformable_tiny_synth.py'}
#: a smaller deformable transformer for the unit tests below
SMALL = dict(type='DeformableTransformer', d_model=32, nhead=8, num_encoder_layers=1,
             num_decoder_layers=2, dim_feedforward=64, dropout=0.0, num_feature_levels=4)
BACKBONE = dict(type='ResNet', depth=18, frozen_stages=1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tiny_model(config: str):
    """The model of a tiny config, with an untrained ResNet-18 (no files needed)."""
    cfg = Config.fromfile(ROOT / 'configs' / config)
    cfg.model.backbone.pretrained = None
    return MODELS.build(cfg.model)


def two_scenes():
    return collate_samples([sky_grass_scene('a', 120, 160, (50, 110, 20, 70), PERSON)[0],
                            sky_grass_scene('b', 96, 128, (40, 90, 60, 110), HORSE)[0]])


@pytest.mark.parametrize('model_type', [PSGTr, PSGFormer])
def test_tiny_config_switches_the_transformer_and_trains(model_type):
    model = tiny_model(CONFIGS[model_type])
    detr = tiny_model(CONFIGS[model_type].replace('_deformable', ''))
    assert model.deformable and not detr.deformable
    assert type(model.transformer).__name__ == 'DeformableTransformer'
    assert model.transformer.num_feature_levels == 4 and model.mask_level == 1  # C4
    batch = two_scenes()
    losses = model(batch)
    assert set(losses) == set(detr(batch))  # the same terms on either transformer
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    names = ['transformer.reference_points.weight',
             'transformer.encoder.layers.0.self_attn.sampling_offsets.weight',
             'transformer.decoder.layers.1.cross_attn.value_proj.weight',
             'input_proj.0.0.weight', 'input_proj.3.0.weight', 'query_embed.weight']
    if model_type is PSGTr:
        names += ['sub_mask_head.lay1.weight', 'obj_bbox_attention.k_linear.weight',
                  'sub_bbox_embed.layers.2.weight']
    else:
        names += ['mask_head.lay1.weight', 'bbox_attention.k_linear.weight',
                  'rel_decoder.layers.1.cross_attn.sampling_offsets.weight',
                  'rel_query_embed.weight', 'sub_pointer.layers.0.weight']
    for name in names:
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert model.get_parameter('backbone.0.body.layer4.0.conv1.weight').grad is None  # frozen

    preds = model.eval()(batch, mode='predict')
    for pred, shape in zip(preds, [(120, 160), (96, 128)]):
        n, r = pred.num_segments, len(pred.pairs)
        assert pred.pan_id_map.shape == shape and pred.masks.shape == (n, *shape)
        assert pred.predicate_scores.shape == (r, NUM_PREDICATES)
        assert (np.diff(pred.triplet_scores) <= 0).all()


@pytest.mark.parametrize('model_type', [PSGTr, PSGFormer])
def test_shared_parts_have_deformable_detr_names_and_shapes(model_type):
    """Backbone, input projections, queries and transformer are named and shaped as Deformable
    DETR's, so a converted Deformable DETR checkpoint (same query count) initialises them."""
    kwargs = dict(backbone=BACKBONE, num_queries=7)
    own = model_type(transformer=SMALL, **kwargs).state_dict()
    detr = DeformableDETR(transformer={k: v for k, v in SMALL.items() if k != 'type'},
                          **kwargs).state_dict()
    shared = {k: v.shape for k, v in detr.items() if not k.startswith(('class_embed',
                                                                         'bbox_embed'))}
    assert {k: v.shape for k, v in own.items() if k.split('.')[0] in
            ('backbone', 'input_proj', 'query_embed', 'transformer')} == shared
    assert own['query_embed.weight'].shape == (7, 64)  # position + target, 2d wide


def test_a_converted_deformable_detr_checkpoint_initialises_the_shared_parts(tmp_path):
    """tools/convert_deformable_detr_checkpoint.py for the tiny PSGTR config, from an official-style
    checkpoint of the tiny Deformable DETR (same transformer and query count): everything but
    PSGTR's heads loads; Deformable DETR's class and box heads are left over."""
    source, _ = build_target_model(ROOT / 'configs' / 'deformable_detr' /
                                   'deformable_detr_tiny_synth.py')
    with torch.no_grad():
        for param in source.parameters():  # the heads, shared by the decoder layers, stay shared
            param.normal_()
    state = {k: v.clone() for k, v in source.state_dict().items()}
    args = argparse.Namespace(dilation=False, with_box_refine=False, two_stage=False)
    torch.save({'model': state, 'args': args}, tmp_path / 'official.pth')
    config = ROOT / 'configs' / CONFIGS[PSGTr]
    dst = tmp_path / 'psgtr_init.pth'
    tool_file = ROOT / 'tools' / 'convert_deformable_detr_checkpoint.py'
    spec = importlib.util.spec_from_file_location('convert_deformable_detr_checkpoint', tool_file)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main([str(tmp_path / 'official.pth'), str(dst), '--config', str(config),
                      '--classes', 'drop']) == 0
    model, _ = build_target_model(config)
    report = load_weights(model, dst)
    assert not report.mismatched
    assert {k.split('.')[0] for k in report.unexpected} == {'bbox_embed'}  # classes dropped
    assert {k.split('.')[0] for k in report.missing} == {
        'sub_class_embed', 'obj_class_embed', 'rel_class_embed', 'sub_bbox_embed',
        'obj_bbox_embed', 'sub_bbox_attention', 'sub_mask_head', 'obj_bbox_attention',
        'obj_mask_head'}
    for key in ('transformer.level_embed', 'query_embed.weight', 'input_proj.3.1.bias',
                'transformer.decoder.layers.1.cross_attn.sampling_offsets.weight',
                'backbone.0.body.layer3.1.conv2.weight'):
        assert torch.equal(model.state_dict()[key], state[key]), key


def test_psgformer_relation_decoder_is_a_second_deformable_decoder():
    model = PSGFormer(backbone=BACKBONE, transformer=SMALL, num_queries=6, num_rel_queries=5)
    rel, obj = model.rel_decoder, model.transformer.decoder
    assert isinstance(rel, DeformableTransformerDecoder) and len(rel.layers) == len(obj.layers)
    assert model.rel_query_embed.weight.shape == (5, 64)
    assert ({k: v.shape for k, v in rel.state_dict().items()}
            == {k: v.shape for k, v in obj.state_dict().items()})
    # initialised as the reference initialises a decoder: offsets along the heads' directions
    for name in ('cross_attn.sampling_offsets.bias', 'cross_attn.attention_weights.weight'):
        torch.testing.assert_close(rel.layers[0].get_parameter(name),
                                   obj.layers[0].get_parameter(name))
    assert not torch.equal(rel.layers[0].linear1.weight, obj.layers[0].linear1.weight)


def test_level_map_and_mask_features_by_hand():
    shapes = torch.tensor([[2, 3], [1, 2]])
    tokens = torch.arange(2 * 8 * 2, dtype=torch.float32).view(2, 8, 2)  # (B, S, C)
    padding = torch.zeros(2, 8, dtype=torch.bool)
    padding[1, [2, 5]] = True  # image 1: last column of level 0
    memory = DeformableMemory(tokens, shapes, torch.tensor([0, 6]), torch.ones(2, 2, 2), padding)
    level0 = level_map(tokens, memory, 0)
    assert level0.shape == (2, 2, 2, 3)
    # token t of level 0 is pixel (t // 3, t % 3), channel c its value tokens[b, t, c]
    assert level0[1, 1, 1, 2].item() == tokens[1, 5, 1].item()
    assert level0[0, 0, 0, 1].item() == tokens[0, 1, 0].item()
    torch.testing.assert_close(level_map(tokens, memory, 1)[:, :, 0],
                               tokens[:, 6:].transpose(1, 2))
    features = [torch.randn(2, c, 4, 4) for c in (8, 16, 32, 64)]
    src = torch.randn(2, 2, 2, 3)
    mf = deformable_mask_features(features, src, memory, 0)
    assert mf.src is src and torch.equal(mf.memory, level0)
    assert mf.mask.tolist() == [[[False] * 3] * 2, [[False, False, True]] * 2]
    assert [f is g for f, g in zip(mf.fpns, (features[2], features[1], features[0]))] == [True] * 3


def test_mask_branch_reads_the_feature_level_of_the_memory():
    """The transformer outputs hold the C4 level (``feature_level=2``) of the encoder memory, its
    padding and its projected input, for a batch with padding."""
    model = PSGTr(backbone=BACKBONE, transformer=SMALL, num_queries=4, feature_level=2).eval()
    batch = collate_samples([sky_grass_scene('a', 64, 96, (20, 50, 10, 40), PERSON)[0],
                             sky_grass_scene('b', 64, 64, (20, 50, 10, 40), HORSE)[0]])
    with torch.no_grad():
        out = model.run_transformer(batch.imgs, batch.pad_mask)
        encoded = model.encode(batch.imgs, batch.pad_mask)
    memory = encoded.memory
    h, w = memory.spatial_shapes[1].tolist()
    assert (h, w) == (4, 6) and out.memory.shape == (2, 32, 4, 6)  # C4: stride 16
    start = memory.level_start_index[1]
    torch.testing.assert_close(out.memory.flatten(2).transpose(1, 2),
                               memory.memory[:, start:start + h * w])
    assert out.mask[0].sum() == 0 and out.mask[1, :, 4:].all() and not out.mask[1, :, :4].any()
    torch.testing.assert_close(out.src, model.input_proj[1](out.features[2]))
    assert out.references.shape == (2, 2, 4, 2)  # (L, B, Q, 2): every layer reads the initial one


def test_boxes_are_decoded_relative_to_the_reference_points():
    deltas = torch.tensor([[0.0, 0.0, -2.0, -2.0], [1.0, -0.5, 0.3, 0.1]])
    torch.testing.assert_close(decode_boxes(deltas, None), deltas.sigmoid())
    references = torch.tensor([[0.25, 0.6], [0.5, 0.9]])
    boxes = decode_boxes(deltas, references)
    torch.testing.assert_close(boxes[0], torch.tensor([0.25, 0.6, 1 / (1 + math.e ** 2),
                                                       1 / (1 + math.e ** 2)]))
    logit = math.log(0.9 / 0.1)
    torch.testing.assert_close(boxes[1, 1], torch.tensor(1 / (1 + math.exp(-(logit - 0.5)))))
    # a fresh model's boxes sit on its queries' reference points, sigmoid(-2) wide and high
    model = PSGTr(backbone=BACKBONE, transformer=SMALL, num_queries=5).eval()
    batch = collate_samples([sky_grass_scene('a', 96, 96, (20, 50, 10, 40), PERSON)[0]])
    with torch.no_grad():
        out, heads = model.forward_heads(batch)
    for boxes in (heads.sub_boxes, heads.obj_boxes):
        torch.testing.assert_close(boxes[..., :2], out.references)
        torch.testing.assert_close(boxes[..., 2:], torch.full_like(boxes[..., 2:],
                                                                   1 / (1 + math.e ** 2)))


def test_detr4seg_runs_on_the_deformable_transformer_too():
    model = DETR4Seg(backbone=BACKBONE, transformer=SMALL, num_queries=5, feature_level=2)
    batch = two_scenes()
    losses = model(batch)
    assert len(losses) == 5 + 3 and all(torch.isfinite(v) for v in losses.values())
    preds = model.eval()(batch, mode='predict')
    assert [p.pan_id_map.shape for p in preds] == [(120, 160), (96, 128)]


def test_bad_transformer_settings_are_named():
    with pytest.raises(ValueError, match=r"PSGTr: transformer type must be one of "
                                         r"\['DeformableTransformer', 'Transformer'\], "
                                         r"got 'Deform'"):
        PSGTr(backbone=BACKBONE, transformer={**SMALL, 'type': 'Deform'})
    with pytest.raises(ValueError, match=r'feature_level 0 \(C2\) is not a map the deformable '
                                         r'transformer reads \(C3, C4, C5\)'):
        PSGFormer(backbone=BACKBONE, transformer=SMALL, feature_level=0)
    with pytest.raises(ValueError, match=r'feature_level 2 \(C4\) .* reads \(C5\)'):
        PSGTr(backbone=BACKBONE, transformer={**SMALL, 'num_feature_levels': 1}, feature_level=2)
    with pytest.raises(ValueError, match='multiple of 32'):
        PSGTr(backbone=BACKBONE, transformer={**SMALL, 'd_model': 48})


@pytest.mark.parametrize('name', ['psgtr/psgtr_deformable_r50_psg',
                                  'psgtr/psgtr_deformable_tiny_synth',
                                  'psgformer/psgformer_deformable_r50_psg',
                                  'psgformer/psgformer_deformable_tiny_synth'])
def test_configs_differ_from_the_detr_ones_by_the_transformer(name):
    cfg = Config.fromfile(ROOT / 'configs' / f'{name}.py')
    detr = Config.fromfile(ROOT / 'configs' / f'{name.replace("_deformable", "")}.py')
    tiny = name.endswith('tiny_synth')
    expected = dict(type='DeformableTransformer', d_model=64 if tiny else 256, nhead=8,
                    num_encoder_layers=2 if tiny else 6, num_decoder_layers=2 if tiny else 6,
                    dim_feedforward=256 if tiny else 1024, dropout=0.0 if tiny else 0.1,
                    num_feature_levels=4, enc_n_points=4, dec_n_points=4)
    assert cfg.model.transformer.to_dict() == expected
    differ = {k for k in cfg.model if cfg.model[k] != detr.model[k]}
    assert differ == ({'transformer'} if tiny else {'transformer', 'backbone'})
    keys = cfg.optimizer.paramwise_cfg.custom_keys
    assert keys['*.reference_points'].lr_mult == keys['*.sampling_offsets'].lr_mult == 0.1
    assert cfg.runner.max_epochs == detr.runner.max_epochs and cfg.lr_config == detr.lr_config
    assert cfg.evaluation.metric == ['sgdet', 'PQ'] and cfg.work_dir.endswith(Path(name).name)
    if tiny:
        assert cfg.optimizer.lr == detr.optimizer.lr and cfg.data == detr.data
        return
    assert cfg.model.backbone.pretrained is True and cfg.load_from is None
    assert cfg.optimizer.lr == 2e-4 and set(keys) == {'backbone', '*.reference_points',
                                                      '*.sampling_offsets'}
    assert cfg.optimizer_config.grad_clip.max_norm == 0.1


def test_sampling_offsets_of_both_decoders_learn_slower():
    cfg = Config.fromfile(ROOT / 'configs' / 'psgformer' / 'psgformer_deformable_r50_psg.py')
    model = PSGFormer(backbone=BACKBONE, transformer=SMALL, num_queries=4, num_rel_queries=4)
    groups = {g['name']: g for g in build_param_groups(model, cfg.optimizer.lr,
                                                       cfg.optimizer.weight_decay,
                                                       cfg.optimizer.paramwise_cfg)}
    offsets = {id(p) for n, p in model.named_parameters() if 'sampling_offsets' in n}
    assert len(offsets) == 2 * (1 + 2 + 2)  # encoder, object and relation decoders
    assert {id(p) for p in groups['*.sampling_offsets']['params']} == offsets
    assert groups['*.sampling_offsets']['lr'] == pytest.approx(2e-5)
    assert groups['default']['lr'] == pytest.approx(2e-4)


@pytest.mark.xdist_group('deformable_800x1333')  # 7-10 GB each: one at a time
def test_r50_configs_train_and_test_step_on_a_full_size_image():
    """One training step and one test step of both R50 deformable configs at 800x1333: about
    2 minutes of CPU time and 9.4 GB peak memory in all (7 minutes wall on a shared 2-core
    machine)."""
    batch = collate_samples([coco_sized_scene()])
    for name, num_losses in (('psgtr/psgtr_deformable_r50_psg', 9 + 7 * 5),
                             ('psgformer/psgformer_deformable_r50_psg', 8 + 4 * 5)):
        cfg = Config.fromfile(ROOT / 'configs' / f'{name}.py')
        cfg.model.backbone.pretrained = None
        model = MODELS.build(cfg.model)
        start = time.process_time()  # CPU time: robust to other jobs on the machine
        losses = model(batch)
        sum(losses.values()).backward()
        assert len(losses) == num_losses and all(torch.isfinite(v) for v in losses.values())
        assert model.transformer.encoder.layers[5].self_attn.value_proj.weight.grad.abs().sum() > 0
        model.eval()
        with torch.no_grad():
            pred = model(batch, 'predict')[0]
        assert pred.pan_id_map.shape == (800, 1333)
        assert time.process_time() - start < 300, name
        del model, losses
