"""Official facebookresearch/detr checkpoints load into DETR / DETR4Seg without losing a tensor,
and the converter refuses one whose architecture the target config does not match.

The key names and shapes below are written out from the public DETR-R50 architecture (torchvision
ResNet-50 with frozen batch norm under ``backbone.0.body``, 6+6 post-norm transformer layers of
width 256, 100 queries, 3-layer box MLP; the panoptic model wraps it as ``detr.`` and adds the
attention map and mask head), so no download is needed.
"""
import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from checkpoint_shapes import conv, linear, norm, random_state, resnet_shapes
from openpsg.config import Config
from openpsg.models.conversion import (ConversionError, SourceCheckpoint, build_target_model,
                                       check_architecture, read_checkpoint)
from openpsg.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / 'tools' / 'convert_detr_checkpoint.py'
_spec = importlib.util.spec_from_file_location('convert_detr_checkpoint', TOOL)
convert = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(convert)


def attention(prefix: str, d: int) -> dict:
    """``nn.MultiheadAttention`` parameters."""
    return {f'{prefix}.in_proj_weight': (3 * d, d), f'{prefix}.in_proj_bias': (3 * d,),
            **linear(f'{prefix}.out_proj', d, d)}


def detr_shapes(num_logits: int, blocks: tuple[int, ...] = (3, 4, 6, 3),
                num_queries: int = 100) -> dict:
    """Key -> shape of a DETR detector (ResNet-50 by default; class head with ``num_logits``
    rows)."""
    shapes = resnet_shapes('backbone.0.body', blocks)
    d, ffn = 256, 2048
    for i in range(6):
        p = f'transformer.encoder.layers.{i}'
        shapes.update({**attention(f'{p}.self_attn', d), **linear(f'{p}.linear1', ffn, d),
                       **linear(f'{p}.linear2', d, ffn), **norm(f'{p}.norm1', d),
                       **norm(f'{p}.norm2', d)})
    for i in range(6):
        p = f'transformer.decoder.layers.{i}'
        shapes.update({**attention(f'{p}.self_attn', d), **attention(f'{p}.multihead_attn', d),
                       **linear(f'{p}.linear1', ffn, d), **linear(f'{p}.linear2', d, ffn)})
        for n in (1, 2, 3):
            shapes.update(norm(f'{p}.norm{n}', d))
    shapes.update({**norm('transformer.decoder.norm', d), **conv('input_proj', d, 2048, 1),
                   'query_embed.weight': (num_queries, d), **linear('class_embed', num_logits, d),
                   **linear('bbox_embed.layers.0', d, d), **linear('bbox_embed.layers.1', d, d),
                   **linear('bbox_embed.layers.2', 4, d)})
    return shapes


def detr_r50_panoptic_shapes() -> dict:
    """Key -> shape of DETR-R50 panoptic (250 COCO panoptic ids + no object)."""
    shapes = {f'detr.{k}': v for k, v in detr_shapes(251).items()}
    shapes.update({**linear('bbox_attention.q_linear', 256, 256),
                   **linear('bbox_attention.k_linear', 256, 256)})
    widths = [264, 128, 64, 32, 16]
    for i, (out, inp) in enumerate(zip(widths, [264] + widths[:-1]), start=1):
        shapes.update({**conv(f'mask_head.lay{i}', out, inp, 3), **norm(f'mask_head.gn{i}', out)})
    shapes.update({**conv('mask_head.out_lay', 1, 16, 3), **conv('mask_head.adapter1', 128, 1024, 1),
                   **conv('mask_head.adapter2', 64, 512, 1),
                   **conv('mask_head.adapter3', 32, 256, 1)})
    return shapes


def build_r50(model_type: str):
    cfg = Config.fromfile(ROOT / 'configs' / '_base_' / 'models' / 'detr4seg_r50.py').model.to_dict()
    cfg['type'] = model_type
    if model_type == 'DETR':  # the box detector has no mask branch settings
        for key in ('test_cfg', 'focal_alpha', 'focal_gamma', 'loss_weights'):
            cfg.pop(key)
    return MODELS.build(cfg)


@pytest.fixture(scope='module')
def detr4seg_r50():
    return build_r50('DETR4Seg')


@pytest.fixture(scope='module')
def panoptic_source():
    return random_state(detr_r50_panoptic_shapes())


@pytest.fixture(scope='module')
def detection_source():
    return random_state(detr_shapes(92))  # 91 COCO ids + no object


# PSG index -> COCO panoptic id, checked on a few classes by name: person 1, toothbrush 90,
# banner 92, wall-other-merged 199, rug-merged 200.
SPOT_CHECKS = {0: 1, 79: 90, 80: 92, 131: 199, 132: 200}


def test_panoptic_checkpoint_loads_strictly_into_detr4seg(detr4seg_r50, panoptic_source):
    source = panoptic_source
    state, summary = convert.convert_state_dict(dict(source))
    assert '133 copied, 0 initialised' in summary
    model = detr4seg_r50
    model.load_state_dict(state, strict=True)  # no missing, no unexpected key, every shape fits
    own = model.state_dict()
    for key, value in source.items():
        name = key.removeprefix('detr.')
        if not name.startswith('class_embed'):
            assert torch.equal(own[name], value), name
    weight, bias = own['class_embed.weight'], own['class_embed.bias']
    assert weight.shape == (134, 256)
    for psg, coco in SPOT_CHECKS.items():
        assert torch.equal(weight[psg], source['detr.class_embed.weight'][coco])
        assert bias[psg] == source['detr.class_embed.bias'][coco]
    assert torch.equal(weight[133], source['detr.class_embed.weight'][250])  # no object


def test_detection_checkpoint_loads_strictly_into_detr(detr4seg_r50, detection_source):
    source = detection_source
    state, summary = convert.convert_state_dict(dict(source))
    assert '80 copied, 53 initialised' in summary
    model = build_r50('DETR')
    model.load_state_dict(state, strict=True)
    weight, bias = model.class_embed.weight, model.class_embed.bias
    assert torch.equal(weight[0], source['class_embed.weight'][1])
    assert torch.equal(weight[79], source['class_embed.weight'][90])
    assert torch.equal(weight[133], source['class_embed.weight'][91])
    assert (weight[80:133] == 0).all()
    thing_ids = list(convert.COCO_PANOPTIC_IDS[:80])
    assert torch.allclose(bias[80:133], source['class_embed.bias'][thing_ids].mean().expand(53))
    # the same file initialises DETR4Seg except for its mask branch
    result = detr4seg_r50.load_state_dict(state, strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(k.startswith(('bbox_attention.', 'mask_head.'))
                                       for k in result.missing_keys)


TINY_CONFIG = ROOT / 'configs' / 'detr4seg' / 'detr4seg_tiny_synth.py'


def test_cli_converts_a_checkpoint_file(tmp_path):
    """The command line on a small checkpoint laid out as DETR's panoptic ones (``detr.`` prefix,
    250 COCO ids + no object, training args), for the tiny DETR4Seg config it fits."""
    own = build_target_model(TINY_CONFIG)[0].state_dict()
    source = {(k if k.startswith(('bbox_attention.', 'mask_head.')) else f'detr.{k}'):
              torch.randn(v.shape) for k, v in own.items()}
    source['detr.class_embed.weight'] = torch.randn(251, 64)
    source['detr.class_embed.bias'] = torch.randn(251)
    torch.save({'model': source, 'args': argparse.Namespace(lr=1e-4, masks=True, dilation=False)},
               tmp_path / 'pan.pth')
    dst = tmp_path / 'out' / 'detr_pan.pth'
    run = subprocess.run([sys.executable, str(TOOL), str(tmp_path / 'pan.pth'), str(dst),
                          '--config', str(TINY_CONFIG)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert f'fits {TINY_CONFIG}' in run.stdout
    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    assert ckpt['meta']['source'] == 'pan.pth' and ckpt['meta']['classes'] == 'coco'
    assert ckpt['meta']['config'] == str(TINY_CONFIG)
    assert set(ckpt['state_dict']) == set(own)
    assert torch.equal(ckpt['state_dict']['mask_head.lay1.weight'], source['mask_head.lay1.weight'])
    assert torch.equal(ckpt['state_dict']['query_embed.weight'], source['detr.query_embed.weight'])
    assert torch.equal(ckpt['state_dict']['class_embed.weight'][132],
                       source['detr.class_embed.weight'][200])
    assert list(dst.parent.iterdir()) == [dst]  # no temporary file left behind


@pytest.mark.parametrize('config', ['detr4seg/detr4seg_r50_psg.py', 'psgtr/psgtr_r50_psg.py',
                                    'psgformer/psgformer_r50_psg.py'])
def test_the_r50_panoptic_checkpoint_fits_the_r50_configs(panoptic_source, config):
    state, _ = convert.convert_state_dict(dict(panoptic_source))
    model, cfg = build_target_model(ROOT / 'configs' / config)
    source = SourceCheckpoint('detr-r50-panoptic-00ce5173.pth', state)
    check_architecture(state, source, model, cfg, config)


def test_a_checkpoint_of_another_architecture_is_refused_naming_both(panoptic_source,
                                                                    detection_source):
    config = ROOT / 'configs' / 'detr4seg' / 'detr4seg_r50_psg.py'
    model, cfg = build_target_model(config)
    state, _ = convert.convert_state_dict(dict(panoptic_source))
    # DC5, from the file name (official DC5 files say so) or from the stored training arguments
    for source in (SourceCheckpoint('detr-r50-dc5-panoptic-da08f1b1.pth', state),
                   SourceCheckpoint('renamed.pth', state, {'dilation': True})):
        with pytest.raises(ConversionError, match=r'has a DC5 backbone \(C5 dilated, stride 16\) '
                                                  r'\(.*\), but detr4seg_r50_psg.py builds a '
                                                  r'backbone without dilation .*dilation=False'):
            check_architecture(state, source, model, cfg, 'detr4seg_r50_psg.py')
    # ... and the DC5 checkpoint fits a DC5 config
    dc5_model, dc5_cfg = build_target_model(config, {'model.backbone.dilation': True})
    check_architecture(state, SourceCheckpoint('detr-r50-dc5-panoptic-da08f1b1.pth', state),
                       dc5_model, dc5_cfg, 'detr4seg_r50_psg.py')
    with pytest.raises(ConversionError, match='has a backbone without dilation .*lacks "dc5"'):
        check_architecture(state, SourceCheckpoint('detr-r50-panoptic-00ce5173.pth', state),
                           dc5_model, dc5_cfg, 'dc5 config')
    # ResNet-101 into ResNet-50; 300 queries into 100
    r101, _ = convert.convert_state_dict(random_state(detr_shapes(92, blocks=(3, 4, 23, 3))))
    with pytest.raises(ConversionError, match=r'r101.pth does not fit the model of r50.py: not in '
                                              r'the model: backbone.0.body.layer3.10.bn1.bias'):
        check_architecture(r101, SourceCheckpoint('r101.pth', r101), model, cfg, 'r50.py')
    queries, _ = convert.convert_state_dict(random_state(detr_shapes(92, num_queries=300)))
    with pytest.raises(ConversionError, match=r'shapes differ .checkpoint vs model.: '
                                              r'query_embed.weight \(300, 256\) vs \(100, 256\)'):
        check_architecture(queries, SourceCheckpoint('q300.pth', queries), model, cfg, 'r50.py')


def test_drop_classes_and_bad_inputs(tmp_path, capsys, detection_source):
    state, summary = convert.convert_state_dict(dict(detection_source), classes='drop')
    assert 'class_embed.weight' not in state and 'class_embed.bias' not in state
    assert summary == 'class_embed dropped'
    with pytest.raises(ConversionError, match='not a DETR checkpoint, missing class_embed'):
        convert.convert_state_dict({'conv.weight': torch.zeros(1)}, source='x.pth')

    bad = tmp_path / 'resnet.pth'
    torch.save({'state_dict': {'conv1.weight': torch.zeros(1)}}, bad)
    dst = tmp_path / 'never.pth'
    assert convert.main([str(bad), str(dst), '--config', str(TINY_CONFIG)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and 'missing class_embed.weight' in err
    assert not dst.exists()
    with pytest.raises(ConversionError, match='no such file'):
        read_checkpoint(tmp_path / 'missing.pth')
    (tmp_path / 'garbage.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(ConversionError, match='garbage.pth: cannot be read'):
        read_checkpoint(tmp_path / 'garbage.pth')
    with pytest.raises(SystemExit):
        convert.parse_args([str(bad), str(dst)])  # --config is required
