"""Deformable DETR checkpoints -- official fundamentalvision/Deformable-DETR and HuggingFace / EGTR
-- convert to openpsg's DeformableDETR without losing a tensor; variants and architectures it
cannot hold are refused.

Key names and shapes are written out from the public sources (Deformable-DETR
``models/deformable_detr.py``, ``deformable_transformer.py``, ``ops/modules/ms_deform_attn.py``;
HuggingFace ``modeling_deformable_detr.py`` with a timm ResNet-50; EGTR's ``model/egtr.py`` and its
Lightning wrapper): R50, 4 levels, 6 + 6 layers of width 256, 8 heads, 4 points, FFN 1024, 300
queries. Nothing is downloaded.
"""
import argparse
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from checkpoint_shapes import conv, linear, norm, random_state, resnet_shapes
from openpsg.models.conversion import (ConversionError, SourceCheckpoint, build_target_model,
                                       check_architecture)

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / 'tools' / 'convert_deformable_detr_checkpoint.py'
_spec = importlib.util.spec_from_file_location('convert_deformable_detr_checkpoint', TOOL)
convert = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(convert)

R50_CONFIG = ROOT / 'configs' / 'deformable_detr' / 'deformable_detr_r50_psg.py'
TINY_CONFIG = ROOT / 'configs' / 'deformable_detr' / 'deformable_detr_tiny_synth.py'
D, LAYERS = 256, 6


def msda(prefix: str, levels: int = 4, heads: int = 8, points: int = 4) -> dict:
    return {**linear(f'{prefix}.sampling_offsets', heads * levels * points * 2, D),
            **linear(f'{prefix}.attention_weights', heads * levels * points, D),
            **linear(f'{prefix}.value_proj', D, D), **linear(f'{prefix}.output_proj', D, D)}


def heads(num_classes: int) -> dict:
    """One class and box head (layer 0); the checkpoints hold it once per decoder layer."""
    return {**linear('class_embed.0', num_classes, D), **linear('bbox_embed.0.layers.0', D, D),
            **linear('bbox_embed.0.layers.1', D, D), **linear('bbox_embed.0.layers.2', 4, D)}


def with_shared_heads(state: dict) -> dict:
    """Repeat the layer-0 heads for every decoder layer, the same tensors (as the reference's
    ``nn.ModuleList([head] * L)`` saves them)."""
    out = dict(state)
    for key in [k for k in state if k.startswith(('class_embed.0.', 'bbox_embed.0.'))]:
        for layer in range(1, LAYERS):
            out[key.replace('.0.', f'.{layer}.', 1)] = state[key]
    return out


def official_shapes(num_classes: int = 91, levels: int = 4, num_queries: int = 300) -> dict:
    """fundamentalvision/Deformable-DETR R50 (single-scale when ``levels == 1``: C5 only)."""
    shapes = resnet_shapes('backbone.0.body')
    channels = (2048,) if levels == 1 else (512, 1024, 2048)
    for i, c in enumerate(channels):
        shapes.update({**conv(f'input_proj.{i}.0', D, c, 1), **norm(f'input_proj.{i}.1', D)})
    for i in range(len(channels), levels):
        shapes.update({**conv(f'input_proj.{i}.0', D, 2048 if i == 3 else D, 3),
                       **norm(f'input_proj.{i}.1', D)})
    shapes.update({'query_embed.weight': (num_queries, 2 * D),
                   'transformer.level_embed': (levels, D),
                   **linear('transformer.reference_points', 2, D)})
    for i in range(LAYERS):
        p = f'transformer.encoder.layers.{i}'
        shapes.update({**msda(f'{p}.self_attn', levels), **norm(f'{p}.norm1', D),
                       **linear(f'{p}.linear1', 1024, D), **linear(f'{p}.linear2', D, 1024),
                       **norm(f'{p}.norm2', D)})
        p = f'transformer.decoder.layers.{i}'
        shapes.update({**msda(f'{p}.cross_attn', levels), **norm(f'{p}.norm1', D),
                       f'{p}.self_attn.in_proj_weight': (3 * D, D),
                       f'{p}.self_attn.in_proj_bias': (3 * D,),
                       **linear(f'{p}.self_attn.out_proj', D, D), **norm(f'{p}.norm2', D),
                       **linear(f'{p}.linear1', 1024, D), **linear(f'{p}.linear2', D, 1024),
                       **norm(f'{p}.norm3', D)})
    return {**shapes, **heads(num_classes)}


def hf_shapes(num_labels: int = 91, num_queries: int = 300) -> dict:
    """HuggingFace DeformableDetrForObjectDetection (timm ResNet-50) names."""
    shapes = resnet_shapes('model.backbone.conv_encoder.model')
    for i, c in enumerate((512, 1024, 2048)):
        shapes.update({**conv(f'model.input_proj.{i}.0', D, c, 1),
                       **norm(f'model.input_proj.{i}.1', D)})
    shapes.update({**conv('model.input_proj.3.0', D, 2048, 3), **norm('model.input_proj.3.1', D),
                   'model.query_position_embeddings.weight': (num_queries, 2 * D),
                   'model.level_embed': (4, D), **linear('model.reference_points', 2, D)})
    for i in range(LAYERS):
        p = f'model.encoder.layers.{i}'
        shapes.update({**msda(f'{p}.self_attn'), **norm(f'{p}.self_attn_layer_norm', D),
                       **linear(f'{p}.fc1', 1024, D), **linear(f'{p}.fc2', D, 1024),
                       **norm(f'{p}.final_layer_norm', D)})
        p = f'model.decoder.layers.{i}'
        shapes.update({**{k: v for name in ('k_proj', 'v_proj', 'q_proj', 'out_proj')
                          for k, v in linear(f'{p}.self_attn.{name}', D, D).items()},
                       **norm(f'{p}.self_attn_layer_norm', D), **msda(f'{p}.encoder_attn'),
                       **norm(f'{p}.encoder_attn_layer_norm', D), **linear(f'{p}.fc1', 1024, D),
                       **linear(f'{p}.fc2', D, 1024), **norm(f'{p}.final_layer_norm', D)})
    return {**shapes, **heads(num_labels)}


def egtr_relation_head_shapes(num_labels: int = 151, num_predicates: int = 50) -> dict:
    """EGTR's relation head (``DetrForSceneGraphGeneration``)."""
    shapes = {}
    for i in range(LAYERS):
        shapes.update({**linear(f'proj_q.{i}', D, D), **linear(f'proj_k.{i}', D, D)})
    shapes.update({**linear('final_sub_proj', D, D), **linear('final_obj_proj', D, D),
                   **linear('rel_predictor_gate', 1, 2 * D)})
    for name, out in (('rel_predictor', num_predicates), ('connectivity_layer', 1)):
        shapes.update({**linear(f'{name}.layers.0', D, 2 * D), **linear(f'{name}.layers.1', D, D),
                       **linear(f'{name}.layers.2', out, D)})
    shapes.update({'triplet_dist': (num_labels + 1, num_labels + 1, num_predicates),
                   'rel_dist': (num_predicates,)})
    return shapes


@pytest.fixture(scope='module')
def r50():
    """The R50 config's model and config."""
    return build_target_model(R50_CONFIG)


@pytest.fixture(scope='module')
def official():
    return with_shared_heads(random_state(official_shapes()))


def test_official_checkpoint_loads_strictly_with_psg_classes(r50, official):
    model, cfg = r50
    source = SourceCheckpoint('r50_deformable_detr-checkpoint.pth', dict(official),
                              {'dilation': False, 'with_box_refine': False, 'two_stage': False})
    state, kind, summary = convert.convert(source)
    assert kind == 'official' and summary.endswith('(80 copied, 53 initialised)')
    check_architecture(state, source, model, cfg, 'deformable_detr_r50_psg.py')
    model.load_state_dict(state, strict=True)
    own = model.state_dict()
    for key, value in official.items():
        if not key.startswith('class_embed'):
            assert torch.equal(own[key], value), key
    weight, bias = own['class_embed.3.weight'], own['class_embed.3.bias']
    # PSG person (0) = COCO 1, toothbrush (79) = COCO 90; stuff classes start fresh
    assert torch.equal(weight[0], official['class_embed.0.weight'][1])
    assert torch.equal(weight[79], official['class_embed.0.weight'][90])
    assert bias[79] == official['class_embed.0.bias'][90]
    assert (weight[80:] == 0).all()
    torch.testing.assert_close(bias[80:], torch.full((53,), -math.log(99)))


def test_egtr_lightning_checkpoint_converts_without_loss(r50, tmp_path):
    """An EGTR checkpoint (Lightning ``state_dict``, every HF name behind one more ``model.``,
    VG classes, 200 queries, relation head) for a config with the same classes and queries."""
    hf = with_shared_heads(random_state(hf_shapes(num_labels=151, num_queries=200), seed=1))
    relation = random_state(egtr_relation_head_shapes(), seed=2)
    lightning = {f'model.{k}': v for k, v in {**hf, **relation}.items()}
    source = SourceCheckpoint('egtr_vg.ckpt', lightning)
    state, kind, summary = convert.convert(source, classes='keep')
    assert kind == 'huggingface' and summary == 'class_embed kept'
    # every tensor is carried over: q/k/v stacked, 4 tensors fewer per decoder layer
    assert len(state) == len(hf) + len(relation) - 4 * LAYERS
    names = {  # HF / EGTR -> openpsg, from the two public sources
        'model.backbone.conv_encoder.model.layer3.5.conv2.weight':
            'backbone.0.body.layer3.5.conv2.weight',
        'model.backbone.conv_encoder.model.bn1.running_var': 'backbone.0.body.bn1.running_var',
        'model.input_proj.3.1.bias': 'input_proj.3.1.bias',
        'model.query_position_embeddings.weight': 'query_embed.weight',
        'model.level_embed': 'transformer.level_embed',
        'model.reference_points.weight': 'transformer.reference_points.weight',
        'model.encoder.layers.2.self_attn.sampling_offsets.bias':
            'transformer.encoder.layers.2.self_attn.sampling_offsets.bias',
        'model.encoder.layers.2.self_attn_layer_norm.bias': 'transformer.encoder.layers.2.norm1.bias',
        'model.encoder.layers.2.fc1.weight': 'transformer.encoder.layers.2.linear1.weight',
        'model.encoder.layers.0.fc2.bias': 'transformer.encoder.layers.0.linear2.bias',
        'model.encoder.layers.5.final_layer_norm.weight': 'transformer.encoder.layers.5.norm2.weight',
        'model.decoder.layers.4.encoder_attn.value_proj.weight':
            'transformer.decoder.layers.4.cross_attn.value_proj.weight',
        'model.decoder.layers.4.encoder_attn_layer_norm.weight':
            'transformer.decoder.layers.4.norm1.weight',
        'model.decoder.layers.4.self_attn_layer_norm.bias': 'transformer.decoder.layers.4.norm2.bias',
        'model.decoder.layers.4.final_layer_norm.bias': 'transformer.decoder.layers.4.norm3.bias',
        'model.decoder.layers.1.self_attn.out_proj.weight':
            'transformer.decoder.layers.1.self_attn.out_proj.weight',
        'model.decoder.layers.1.fc1.weight': 'transformer.decoder.layers.1.linear1.weight',
        'class_embed.5.weight': 'class_embed.5.weight', 'bbox_embed.2.layers.1.bias':
            'bbox_embed.2.layers.1.bias', 'proj_q.3.weight': 'proj_q.3.weight',
        'rel_predictor.layers.2.weight': 'rel_predictor.layers.2.weight',
        'triplet_dist': 'triplet_dist'}
    for hf_name, name in names.items():
        assert torch.equal(state[name], {**hf, **relation}[hf_name]), hf_name
    layer = 'model.decoder.layers.3.self_attn'
    weight = state['transformer.decoder.layers.3.self_attn.in_proj_weight']
    bias = state['transformer.decoder.layers.3.self_attn.in_proj_bias']
    for i, part in enumerate(('q_proj', 'k_proj', 'v_proj')):
        assert torch.equal(weight[i * D:(i + 1) * D], hf[f'{layer}.{part}.weight'])
        assert torch.equal(bias[i * D:(i + 1) * D], hf[f'{layer}.{part}.bias'])

    model, cfg = build_target_model(R50_CONFIG,
                                    {'model.num_classes': 151, 'model.num_queries': 200})
    check_architecture(state, source, model, cfg, 'R50 config, 151 classes, 200 queries')
    result = model.load_state_dict(state, strict=False)
    assert not result.missing_keys
    assert set(result.unexpected_keys) == set(relation)  # EGTR's relation head
    # the stacked projections compute HuggingFace's attention: softmax(q k^T / sqrt(32)) v, out_proj
    # (in float64: the random weights give large logits)
    attention = model.transformer.decoder.layers[3].self_attn.eval().double()
    x = torch.randn(2, 7, D, dtype=torch.float64)
    w = {k.removeprefix(f'{layer}.'): v.double() for k, v in hf.items() if k.startswith(layer)}
    q, k, v = (F.linear(x, w[f'{p}.weight'], w[f'{p}.bias']).view(2, 7, 8, 32).transpose(1, 2)
               for p in ('q_proj', 'k_proj', 'v_proj'))
    heads_out = ((q / math.sqrt(32)) @ k.transpose(-1, -2)).softmax(-1) @ v
    expected = F.linear(heads_out.transpose(1, 2).reshape(2, 7, D), w['out_proj.weight'],
                        w['out_proj.bias'])
    with torch.no_grad():
        torch.testing.assert_close(attention(x, x, x, need_weights=False)[0], expected)


def test_box_refinement_and_two_stage_are_refused(official):
    refined = dict(official)
    refined['class_embed.4.weight'] = refined['class_embed.4.weight'] + 1  # per-layer heads
    cases = [
        (SourceCheckpoint('a.pth', official, {'with_box_refine': True}), 'with_box_refine=True'),
        (SourceCheckpoint('b.pth', {**official, 'transformer.decoder.bbox_embed.0.layers.0.bias':
                                    torch.zeros(D)}), 'tensors transformer.decoder.bbox_embed.'),
        (SourceCheckpoint('c.pth', refined),
         r'per-layer heads that differ \(class_embed.\*.weight\)'),
        (SourceCheckpoint('d.ckpt', {'model.model.level_embed': torch.zeros(4, D),
                                     'model.model.enc_output.weight': torch.zeros(D, D)}),
         'tensors model.enc_output'),
    ]
    for source, reason in cases:
        message = (f'{source.path}: a Deformable DETR with iterative box refinement or two-stage '
                   f'proposals .*{reason}')
        with pytest.raises(ConversionError, match=message):
            convert.convert(source)


def test_other_architectures_and_heads_are_refused(r50, official):
    model, cfg = r50
    # DC5 (from the training arguments), single scale: the config holds neither
    single = with_shared_heads(random_state(official_shapes(levels=1)))
    source = SourceCheckpoint('r50_deformable_detr_single_scale_dc5-checkpoint.pth', single,
                              {'dilation': True})
    state, _, _ = convert.convert(source)
    with pytest.raises(ConversionError, match=r'single_scale_dc5-checkpoint.pth has a DC5 '
                                              r'backbone .*dilation=True.*but '
                                              r'deformable_detr_r50_psg.py builds'):
        check_architecture(state, source, model, cfg, 'deformable_detr_r50_psg.py')
    source.args = {}
    source.path = 'single_scale.pth'
    with pytest.raises(ConversionError, match=r'single_scale.pth does not fit the model of r50.py: '
                                              r'missing from the checkpoint: input_proj.1.0.bias.*'
                                              r'input_proj.0.0.weight \(256, 2048, 1, 1\) vs '
                                              r'\(256, 512, 1, 1\)'):
        check_architecture(state, source, model, cfg, 'r50.py')
    vg = with_shared_heads(random_state(official_shapes(num_classes=151)))
    with pytest.raises(ConversionError, match='class_embed.0.weight has 151 rows, not a COCO head '
                                              '.91 or 250 category ids.; use --classes keep'):
        convert.convert(SourceCheckpoint('vg.pth', vg))
    kept, _, _ = convert.convert(SourceCheckpoint('vg.pth', vg), classes='keep')
    with pytest.raises(ConversionError, match=r'shapes differ .*class_embed.0.bias \(151,\) vs '
                                              r'\(133,\)'):
        check_architecture(kept, SourceCheckpoint('vg.pth', kept), model, cfg, 'r50.py')
    dropped, _, summary = convert.convert(SourceCheckpoint('vg.pth', vg), classes='drop')
    assert summary == 'class_embed dropped'
    assert not any(k.startswith('class_embed') for k in dropped)
    with pytest.raises(ConversionError, match='not a Deformable DETR checkpoint'):
        convert.convert(SourceCheckpoint('detr.pth',
                                         {'transformer.decoder.norm.weight': torch.ones(2)}))
    partial = {'model.level_embed': torch.zeros(4, D),
               'model.decoder.layers.0.self_attn.q_proj.weight': torch.zeros(D, D)}
    with pytest.raises(ConversionError, match='in_proj_weight needs q_proj, k_proj and v_proj'):
        convert.convert(SourceCheckpoint('p.bin', partial), classes='keep')
    with pytest.raises(ConversionError, match='no openpsg counterpart: model.mystery'):
        convert.convert(SourceCheckpoint('m.bin', {'model.level_embed': torch.zeros(4, D),
                                                   'model.mystery': torch.zeros(1)}))


def test_cli_converts_an_official_file_for_the_tiny_config(tmp_path, capsys):
    """The command line (in this process) on a small official-style checkpoint (``model`` +
    ``args``) of the tiny config's shapes with a COCO class head."""
    model, _ = build_target_model(TINY_CONFIG)
    state = {k: torch.randn(v.shape) for k, v in model.state_dict().items()}
    head = torch.randn(91, 64), torch.arange(91.0)
    for layer in (0, 1):
        state[f'class_embed.{layer}.weight'], state[f'class_embed.{layer}.bias'] = head
        for key in [k for k in state if k.startswith('bbox_embed.0.')]:
            state[key.replace('.0.', f'.{layer}.', 1)] = state[key]
    args = argparse.Namespace(dilation=False, with_box_refine=False, two_stage=False)
    torch.save({'model': state, 'args': args}, tmp_path / 'tiny-checkpoint.pth')
    dst = tmp_path / 'out' / 'tiny.pth'
    assert convert.main([str(tmp_path / 'tiny-checkpoint.pth'), str(dst), '--config',
                         str(TINY_CONFIG)]) == 0, capsys.readouterr().err
    assert 'from an official checkpoint; class_embed mapped to 133 PSG classes' in \
        capsys.readouterr().out
    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    assert ckpt['meta']['format'] == 'official' and ckpt['meta']['source'] == 'tiny-checkpoint.pth'
    model.load_state_dict(ckpt['state_dict'], strict=True)
    assert model.class_embed[1].bias[79].item() == 90.0  # toothbrush = COCO 90
    assert torch.equal(model.transformer.level_embed, state['transformer.level_embed'])
    assert list(dst.parent.iterdir()) == [dst]  # no temporary file left behind
    with pytest.raises(SystemExit):
        convert.parse_args([str(tmp_path / 'tiny-checkpoint.pth'), str(dst)])  # --config required


def test_a_huggingface_config_json_supplies_the_training_arguments(tmp_path, capsys):
    folder = tmp_path / 'hf'
    folder.mkdir()
    torch.save({'model.level_embed': torch.zeros(4, 64)}, folder / 'pytorch_model.bin')
    dst = tmp_path / 'never.pth'
    argv = [str(folder / 'pytorch_model.bin'), str(dst), '--config', str(TINY_CONFIG)]
    (folder / 'config.json').write_text(json.dumps({'dilation': True, 'num_feature_levels': 4}))
    assert convert.main(argv) == 1
    err = capsys.readouterr().err
    assert 'pytorch_model.bin has a DC5 backbone' in err and str(TINY_CONFIG) in err
    (folder / 'config.json').write_text(json.dumps({'dilation': False}))
    assert convert.main(argv) == 1
    assert 'does not fit the model of' in capsys.readouterr().err
    assert not dst.exists()
