"""DETR building blocks: backbone, positional encoding, transformer, mask branch, set losses."""
import math

import numpy as np
import pytest
import torch
import torchvision

from openpsg.models.backbones import ResNet
from openpsg.models.losses import (dice_loss, giou_loss, l1_loss, no_object_cross_entropy,
                                   sigmoid_focal_loss)
from openpsg.models.one_stage import (MLP, MaskFeatures, MaskHeadSmallConv, MHAttentionMap,
                                      PositionEmbeddingSine, Transformer, predict_masks)
from openpsg.registry import MODELS
from openpsg.structures import ImageMeta, Sample, collate_samples


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_resnet18_shapes_masks_and_frozen_stages():
    net = ResNet(depth=18, frozen_stages=1)
    imgs = torch.randn(2, 3, 64, 96)
    pad = torch.zeros(2, 64, 96, dtype=torch.bool)
    pad[1, :, 64:] = True  # second image is 64x64, padded to 96 wide
    features, masks = net(imgs, pad)
    assert net.num_channels == [64, 128, 256, 512]
    assert [tuple(f.shape) for f in features] == [(2, 64, 16, 24), (2, 128, 8, 12),
                                                  (2, 256, 4, 6), (2, 512, 2, 3)]
    assert [tuple(m.shape) for m in masks] == [(2, 16, 24), (2, 8, 12), (2, 4, 6), (2, 2, 3)]
    assert not masks[0][0].any() and masks[0][1, :, 16:].all() and not masks[0][1, :, :16].any()
    assert masks[3][1].tolist() == [[False, False, True], [False, False, True]]
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    assert 'body.conv1.weight' in frozen and 'body.layer1.1.conv2.weight' in frozen
    assert 'body.layer2.0.conv1.weight' not in frozen
    assert not any('bn' in n for n, _ in net.named_parameters())  # batch norm is frozen (buffers)


def test_resnet_frozen_stages_convention():
    trainable = {k: {n.split('.')[1] for n, p in ResNet(18, frozen_stages=k).named_parameters()
                     if p.requires_grad} for k in (-1, 0, 4)}
    assert trainable[-1] == {'conv1', 'layer1', 'layer2', 'layer3', 'layer4'}
    assert trainable[0] == {'layer1', 'layer2', 'layer3', 'layer4'}
    assert trainable[4] == set()
    assert ResNet(50).num_channels == [256, 512, 1024, 2048]
    with pytest.raises(ValueError, match='depth'):
        ResNet(depth=42)


def test_resnet_loads_imagenet_weights_from_a_local_file(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / 'r18.pth')
    net = ResNet(18, pretrained=str(tmp_path / 'r18.pth'))
    torch.testing.assert_close(net.body.layer3[1].conv2.weight, reference.layer3[1].conv2.weight)
    torch.testing.assert_close(net.body.bn1.running_var, reference.bn1.running_var)
    assert MODELS.get('ResNet') is ResNet


def test_position_encoding_hand_computed_entries():
    # num_pos_feats = 4: dim_t = 10000 ** (2 * (k // 2) / 4) = [1, 1, 100, 100]
    enc = PositionEmbeddingSine(num_pos_feats=4)
    mask = torch.zeros(1, 2, 4, dtype=torch.bool)
    pos = enc(mask)
    assert pos.shape == (1, 8, 2, 4)
    y = 2 / 2 * 2 * math.pi  # row 1 of 2 valid rows
    x = 3 / 4 * 2 * math.pi  # column 2 of 4 valid columns
    expected = [math.sin(y), math.cos(y), math.sin(y / 100), math.cos(y / 100),
                math.sin(x), math.cos(x), math.sin(x / 100), math.cos(x / 100)]
    torch.testing.assert_close(pos[0, :, 1, 2], torch.tensor(expected), atol=1e-5, rtol=0)
    # with the last column padded, positions are normalised by the 3 valid columns
    mask[0, :, 3] = True
    x = 2 / 3 * 2 * math.pi  # column 1 of 3 valid columns
    torch.testing.assert_close(enc(mask)[0, 4, 0, 1], torch.tensor(math.sin(x)), atol=1e-5, rtol=0)


def _tiny_transformer() -> Transformer:
    return Transformer(d_model=32, nhead=4, num_encoder_layers=2, num_decoder_layers=3,
                       dim_feedforward=64, dropout=0.1).eval()


def test_transformer_shapes_and_detr_parameter_names():
    tr = _tiny_transformer()
    src, pos = torch.randn(2, 32, 3, 5), torch.randn(2, 32, 3, 5)
    hs, memory = tr(src, torch.zeros(2, 3, 5, dtype=torch.bool), torch.randn(7, 32), pos)
    assert hs.shape == (3, 2, 7, 32) and memory.shape == (2, 32, 3, 5)
    # every decoder layer's output goes through the final LayerNorm
    torch.testing.assert_close(hs.mean(-1), torch.zeros(3, 2, 7), atol=1e-5, rtol=0)
    names = set(tr.state_dict())
    assert {'encoder.layers.1.self_attn.in_proj_weight', 'encoder.layers.0.linear2.bias',
            'encoder.layers.0.norm2.weight', 'decoder.layers.2.multihead_attn.out_proj.weight',
            'decoder.layers.0.norm3.bias', 'decoder.norm.weight'} <= names
    assert not any(n.startswith('encoder.norm') for n in names)


def test_padding_does_not_change_the_valid_region():
    """An image padded into a larger batch gets the same encoder memory (on its valid pixels) and
    decoder outputs as the image alone."""
    tr, enc = _tiny_transformer(), PositionEmbeddingSine(16)
    queries = torch.randn(6, 32)
    alone = torch.randn(1, 32, 3, 4)
    alone_mask = torch.zeros(1, 3, 4, dtype=torch.bool)
    hs_alone, mem_alone = tr(alone, alone_mask, queries, enc(alone_mask))

    batch = torch.randn(2, 32, 5, 6) * 5  # padding holds garbage
    batch[0, :, :3, :4] = alone[0]
    mask = torch.zeros(2, 5, 6, dtype=torch.bool)
    mask[0, 3:] = True
    mask[0, :, 4:] = True
    hs, mem = tr(batch, mask, queries, enc(mask))
    torch.testing.assert_close(mem[0, :, :3, :4], mem_alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(hs[:, 0], hs_alone[:, 0], atol=1e-5, rtol=1e-5)


def test_mask_branch_shapes_and_query_independence():
    d, heads = 64, 8
    attention = MHAttentionMap(d, d, heads)
    head = MaskHeadSmallConv(d + heads, [256, 128, 64], d)
    src, memory = torch.randn(2, d, 2, 3), torch.randn(2, d, 2, 3)
    mask = torch.zeros(2, 2, 3, dtype=torch.bool)
    mask[1, :, 2] = True
    fpns = [torch.randn(2, 256, 4, 6), torch.randn(2, 128, 8, 12), torch.randn(2, 64, 16, 24)]
    queries = torch.randn(5, d)
    batch_idx = torch.tensor([0, 0, 1, 1, 1])
    maps = attention(queries, memory, mask, batch_idx)
    assert maps.shape == (5, heads, 2, 3)
    torch.testing.assert_close(maps.sum((1, 2, 3)), torch.ones(5))  # one softmax over heads x pixels
    assert (maps[2:, :, :, 2] == 0).all()  # no attention on padding
    features = MaskFeatures(memory, mask, src, fpns)
    logits = predict_masks(attention, head, queries, batch_idx, features)
    assert logits.shape == (5, 16, 24)
    subset = predict_masks(attention, head, queries[[1, 3]], batch_idx[[1, 3]], features)
    torch.testing.assert_close(subset, logits[[1, 3]], atol=1e-5, rtol=1e-5)
    assert {'q_linear.weight', 'q_linear.bias', 'k_linear.weight', 'k_linear.bias'} == set(
        attention.state_dict())
    assert {'lay5.weight', 'gn5.bias', 'out_lay.weight', 'adapter3.weight'} <= set(head.state_dict())


def test_mask_head_widths_for_small_models():
    head = MaskHeadSmallConv(64 + 8, [256, 128, 64], 64)  # d/16 = 4 < 8 groups -> width 8
    assert head.lay5.out_channels == 8 and head.lay2.out_channels == 32
    with pytest.raises(ValueError, match='divisible by num_groups'):
        MaskHeadSmallConv(64 + 4, [256, 128, 64], 64)


def test_mlp_layers():
    mlp = MLP(8, 16, 4, 3)
    assert [tuple(layer.weight.shape) for layer in mlp.layers] == [(16, 8), (16, 16), (4, 16)]
    assert mlp(torch.randn(2, 5, 8)).shape == (2, 5, 4)


def test_no_object_cross_entropy_hand_computed():
    # query 0: logits [0, 0, 0], target 0 -> CE = ln 3 (weight 1)
    # query 1: logits [0, 0, ln 2] (softmax 1/4, 1/4, 1/2), target 2 = no object -> CE = ln 2
    # with weight 0.1
    logits = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, math.log(2)]]])
    loss = no_object_cross_entropy(logits, torch.tensor([[0, 2]]), no_object_weight=0.1)
    assert loss.item() == pytest.approx((math.log(3) + 0.1 * math.log(2)) / 1.1, rel=1e-6)


def test_box_losses_hand_computed():
    boxes = torch.tensor([[0., 0., 2., 2.], [1., 1., 3., 3.]])
    targets = torch.tensor([[1., 1., 3., 3.], [1., 1., 3., 3.]])
    # GIoU((0,0,2,2), (1,1,3,3)) = 1/7 - 2/9; identical boxes: GIoU 1
    assert giou_loss(boxes, targets, 2).item() == pytest.approx((1 - (1 / 7 - 2 / 9) + 0) / 2, rel=1e-6)
    assert l1_loss(boxes, targets, 4).item() == pytest.approx(4 / 4)
    empty = torch.zeros(0, 4)
    assert giou_loss(empty, empty, 1).item() == 0 and l1_loss(empty, empty, 1).item() == 0


def test_mask_losses_hand_computed():
    # one mask of two pixels, both logits 0 (p = 0.5), targets [1, 0]:
    # focal per pixel = alpha_t * (1 - p_t)^2 * ln 2 with alpha_t 0.25 / 0.75, (1 - p_t)^2 = 1/4
    logits = torch.zeros(1, 2)
    targets = torch.tensor([[1.0, 0.0]])
    focal = sigmoid_focal_loss(logits, targets, num_masks=1)
    assert focal.item() == pytest.approx((0.25 * 0.25 + 0.75 * 0.25) * math.log(2) / 2, rel=1e-6)
    # dice: p = [0.5, 0.5], t = [1, 0] -> 1 - (2 * 0.5 + 1) / (1 + 1 + 1) = 1/3; second mask
    # p = [0.75, 0.75] (logit ln 3), t = [1, 1] -> 1 - (2 * 1.5 + 1) / (1.5 + 2 + 1) = 1/9
    logits = torch.tensor([[0.0, 0.0], [math.log(3), math.log(3)]])
    targets = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    loss = dice_loss(logits, targets, num_masks=4)
    assert loss.item() == pytest.approx((1 / 3 + 1 / 9) / 4, rel=1e-6)


def test_detr_box_model_losses_and_ranked_boxes_at_original_size():
    model = MODELS.build(dict(
        type='DETR', backbone=dict(type='ResNet', depth=18, frozen_stages=1),
        transformer=dict(d_model=32, nhead=4, num_encoder_layers=1, num_decoder_layers=2,
                         dim_feedforward=64, dropout=0.0), num_queries=6))
    meta = ImageMeta('a', ori_shape=(96, 128), img_shape=(48, 64))
    sample = Sample(img=torch.randn(3, 48, 64), meta=meta, labels=torch.tensor([3, 100]),
                    boxes=torch.tensor([[4., 4., 20., 30.], [0., 0., 64., 48.]]),
                    masks=torch.zeros(2, 0, 0, dtype=torch.bool),
                    rels=torch.zeros(0, 3, dtype=torch.int64))
    losses = model(collate_samples([sample]))
    assert set(losses) == {'loss_ce', 'loss_bbox', 'loss_giou', 'loss_ce_d0', 'loss_bbox_d0',
                           'loss_giou_d0'}
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    pred = model(collate_samples([sample]), 'predict')[0]
    assert pred.masks is None and pred.boxes.shape == (6, 4) and pred.labels.shape == (6,)
    assert (np.diff(pred.scores) <= 0).all() and (pred.labels < 133).all()
    assert pred.pairs.shape == (0, 2)
    # boxes come back in original pixels, mirrored when the input was flipped
    flipped = Sample(**{**sample.__dict__,
                        'meta': ImageMeta('a', ori_shape=(96, 128), img_shape=(48, 64), flip=True)})
    mirrored = model(collate_samples([flipped]), 'predict')[0].boxes
    np.testing.assert_allclose(mirrored[:, [2, 1, 0, 3]] * [-1, 1, -1, 1] + [128, 0, 128, 0],
                               pred.boxes, atol=1e-4)


def test_feature_level_picks_the_transformer_input_map():
    config = dict(type='DETR', backbone=dict(type='ResNet', depth=18, frozen_stages=1),
                  transformer=dict(d_model=32, nhead=4, num_encoder_layers=1, num_decoder_layers=1,
                                   dim_feedforward=64, dropout=0.0), num_queries=4)
    imgs, pad = torch.randn(1, 3, 64, 96), torch.zeros(1, 64, 96, dtype=torch.bool)
    c5 = MODELS.build(config).run_transformer(imgs, pad)
    c4 = MODELS.build({**config, 'feature_level': 2}).run_transformer(imgs, pad)
    assert c5.src.shape == (1, 32, 2, 3) and c5.memory.shape == (1, 32, 2, 3)  # stride 32
    assert c4.src.shape == (1, 32, 4, 6) and c4.mask.shape == (1, 4, 6)        # stride 16
    assert c4.features[2].shape[-2:] == (4, 6) and c4.hs.shape == (1, 1, 4, 32)
    assert MODELS.build({**config, 'feature_level': 2}).input_proj.in_channels == 256
    with pytest.raises(ValueError, match='feature_level'):
        MODELS.build({**config, 'feature_level': 4})
