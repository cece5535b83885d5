"""Official facebookresearch/detr checkpoints load into DETR / DETR4Seg without losing a tensor.

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

from openpsg.config import Config
from openpsg.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / 'tools' / 'convert_detr_checkpoint.py'
_spec = importlib.util.spec_from_file_location('convert_detr_checkpoint', TOOL)
convert = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(convert)


def _bn(prefix: str, n: int) -> dict:
    return {f'{prefix}.{k}': (n,) for k in ('weight', 'bias', 'running_mean', 'running_var')}


def _linear(prefix: str, out: int, inp: int) -> dict:
    return {f'{prefix}.weight': (out, inp), f'{prefix}.bias': (out,)}


def _conv(prefix: str, out: int, inp: int, k: int, bias: bool = True) -> dict:
    shapes = {f'{prefix}.weight': (out, inp, k, k)}
    if bias:
        shapes[f'{prefix}.bias'] = (out,)
    return shapes


def _attention(prefix: str, d: int) -> dict:
    return {f'{prefix}.in_proj_weight': (3 * d, d), f'{prefix}.in_proj_bias': (3 * d,),
            **_linear(f'{prefix}.out_proj', d, d)}


def detr_r50_shapes(num_logits: int) -> dict:
    """Key -> shape of a DETR-R50 detector (class head with ``num_logits`` rows)."""
    shapes = {**_conv('backbone.0.body.conv1', 64, 3, 7, bias=False), **_bn('backbone.0.body.bn1', 64)}
    inplanes = 64
    for layer, (blocks, planes) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), start=1):
        for b in range(blocks):
            p = f'backbone.0.body.layer{layer}.{b}'
            shapes.update({**_conv(f'{p}.conv1', planes, inplanes, 1, bias=False),
                           **_bn(f'{p}.bn1', planes),
                           **_conv(f'{p}.conv2', planes, planes, 3, bias=False),
                           **_bn(f'{p}.bn2', planes),
                           **_conv(f'{p}.conv3', planes * 4, planes, 1, bias=False),
                           **_bn(f'{p}.bn3', planes * 4)})
            if b == 0:
                shapes.update({**_conv(f'{p}.downsample.0', planes * 4, inplanes, 1, bias=False),
                               **_bn(f'{p}.downsample.1', planes * 4)})
            inplanes = planes * 4
    d, ffn = 256, 2048
    for i in range(6):
        p = f'transformer.encoder.layers.{i}'
        shapes.update({**_attention(f'{p}.self_attn', d), **_linear(f'{p}.linear1', ffn, d),
                       **_linear(f'{p}.linear2', d, ffn), f'{p}.norm1.weight': (d,),
                       f'{p}.norm1.bias': (d,), f'{p}.norm2.weight': (d,), f'{p}.norm2.bias': (d,)})
    for i in range(6):
        p = f'transformer.decoder.layers.{i}'
        shapes.update({**_attention(f'{p}.self_attn', d), **_attention(f'{p}.multihead_attn', d),
                       **_linear(f'{p}.linear1', ffn, d), **_linear(f'{p}.linear2', d, ffn)})
        for n in (1, 2, 3):
            shapes.update({f'{p}.norm{n}.weight': (d,), f'{p}.norm{n}.bias': (d,)})
    shapes.update({'transformer.decoder.norm.weight': (d,), 'transformer.decoder.norm.bias': (d,),
                   **_conv('input_proj', d, 2048, 1), 'query_embed.weight': (100, d),
                   **_linear('class_embed', num_logits, d), **_linear('bbox_embed.layers.0', d, d),
                   **_linear('bbox_embed.layers.1', d, d), **_linear('bbox_embed.layers.2', 4, d)})
    return shapes


def detr_r50_panoptic_shapes() -> dict:
    """Key -> shape of DETR-R50 panoptic (250 COCO panoptic ids + no object)."""
    shapes = {f'detr.{k}': v for k, v in detr_r50_shapes(251).items()}
    shapes.update({**_linear('bbox_attention.q_linear', 256, 256),
                   **_linear('bbox_attention.k_linear', 256, 256)})
    widths = [264, 128, 64, 32, 16]
    for i, (out, inp) in enumerate(zip(widths, [264] + widths[:-1]), start=1):
        shapes.update({**_conv(f'mask_head.lay{i}', out, inp, 3), f'mask_head.gn{i}.weight': (out,),
                       f'mask_head.gn{i}.bias': (out,)})
    shapes.update({**_conv('mask_head.out_lay', 1, 16, 3), **_conv('mask_head.adapter1', 128, 1024, 1),
                   **_conv('mask_head.adapter2', 64, 512, 1),
                   **_conv('mask_head.adapter3', 32, 256, 1)})
    return shapes


def random_state(shapes: dict) -> dict:
    gen = torch.Generator().manual_seed(0)
    return {k: torch.randn(shape, generator=gen) for k, shape in shapes.items()}


def build_r50(model_type: str):
    cfg = Config.fromfile(ROOT / 'configs' / '_base_' / 'models' / 'detr4seg_r50.py').model.to_dict()
    cfg['type'] = model_type
    if model_type == 'DETR':  # the box detector has no mask branch settings
        for key in ('threshold', 'focal_alpha', 'focal_gamma', 'loss_weights'):
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
    return random_state(detr_r50_shapes(92))  # 91 COCO ids + no object


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


def test_cli_converts_a_checkpoint_file(tmp_path):
    """The command line on a small file shaped like DETR's (panoptic prefix, training args)."""
    source = random_state({'detr.class_embed.weight': (251, 8), 'detr.class_embed.bias': (251,),
                           'detr.input_proj.weight': (8, 16, 1, 1), 'detr.query_embed.weight': (5, 8),
                           'detr.transformer.encoder.layers.0.self_attn.in_proj_weight': (24, 8),
                           'mask_head.lay1.weight': (16, 16, 3, 3)})
    torch.save({'model': source, 'args': argparse.Namespace(lr=1e-4, masks=True)}, tmp_path / 'pan.pth')
    dst = tmp_path / 'out' / 'detr_pan_r50.pth'
    run = subprocess.run([sys.executable, str(TOOL), str(tmp_path / 'pan.pth'), str(dst)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    assert ckpt['meta']['source'] == 'pan.pth' and ckpt['meta']['classes'] == 'coco'
    assert set(ckpt['state_dict']) == {k.removeprefix('detr.') for k in source}
    assert torch.equal(ckpt['state_dict']['mask_head.lay1.weight'], source['mask_head.lay1.weight'])
    assert torch.equal(ckpt['state_dict']['query_embed.weight'], source['detr.query_embed.weight'])
    assert torch.equal(ckpt['state_dict']['class_embed.weight'][132],
                       source['detr.class_embed.weight'][200])
    assert list(dst.parent.iterdir()) == [dst]  # no temporary file left behind


def test_drop_classes_and_bad_inputs(tmp_path, capsys, detection_source):
    state, summary = convert.convert_state_dict(dict(detection_source), classes='drop')
    assert 'class_embed.weight' not in state and 'class_embed.bias' not in state
    assert summary == 'class_embed dropped'
    with pytest.raises(convert.ConversionError, match='not a DETR checkpoint, missing class_embed'):
        convert.convert_state_dict({'conv.weight': torch.zeros(1)}, source='x.pth')

    bad = tmp_path / 'resnet.pth'
    torch.save({'state_dict': {'conv1.weight': torch.zeros(1)}}, bad)
    dst = tmp_path / 'never.pth'
    assert convert.main([str(bad), str(dst)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and 'missing class_embed.weight' in err
    assert not dst.exists()
    with pytest.raises(convert.ConversionError, match='no such file'):
        convert.load_detr_state_dict(tmp_path / 'missing.pth')
    (tmp_path / 'garbage.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(convert.ConversionError, match='garbage.pth: cannot be read'):
        convert.load_detr_state_dict(tmp_path / 'garbage.pth')
