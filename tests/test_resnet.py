"""ResNet initialised from the backbone of a trained model's checkpoint (``pretrained_prefix``)."""
import pytest
import torch
import torchvision
from torchvision.ops.misc import FrozenBatchNorm2d

from openpsg.models.backbones import ResNet
from openpsg.models.backbones.resnet_fpn import build_resnet_fpn


@pytest.fixture
def checkpoint(tmp_path):
    """A detector-like checkpoint: a ResNet-18 trunk (no classifier) under ``backbone.body.``
    beside other weights, and the reference trunk."""
    torch.manual_seed(0)
    trunk = torchvision.models.resnet18(weights=None, norm_layer=FrozenBatchNorm2d)
    state = {f'backbone.body.{k}': v for k, v in trunk.state_dict().items()
             if not k.startswith('fc.')}
    state['backbone.fpn.inner.weight'] = torch.zeros(3)
    state['head.weight'] = torch.zeros(2)
    path = tmp_path / 'detector.pth'
    torch.save({'state_dict': state, 'meta': {'epoch': 4}}, path)
    return path, trunk


def test_backbone_weights_from_a_checkpoint_under_a_prefix(checkpoint):
    path, trunk = checkpoint
    net = ResNet(18, frozen_stages=-1, pretrained=str(path), pretrained_prefix='backbone.body.')
    torch.testing.assert_close(net.body.layer3[1].conv2.weight, trunk.layer3[1].conv2.weight)
    torch.testing.assert_close(net.body.conv1.weight, trunk.conv1.weight)
    assert not torch.equal(ResNet(18).body.conv1.weight, trunk.conv1.weight)


def test_a_prefix_that_matches_nothing_names_the_file_and_the_keys(checkpoint):
    path, _ = checkpoint
    with pytest.raises(ValueError, match=r"detector.pth: no weight under the prefix 'backbone.0.'"
                                         r".*backbone.body."):
        ResNet(18, pretrained=str(path), pretrained_prefix='backbone.0.')
    with pytest.raises(ValueError, match='not the weights of this ResNet'):
        ResNet(18, pretrained=str(path), pretrained_prefix='backbone.')
    with pytest.raises(ValueError, match='not the weights of this ResNet'):
        ResNet(34, pretrained=str(path), pretrained_prefix='backbone.body.')


def test_missing_weights_file_is_named():
    with pytest.raises(FileNotFoundError, match='nowhere.pth: backbone weights not found'):
        ResNet(depth=18, pretrained='/nowhere.pth')


def test_dilation_puts_c5_at_stride_16_with_the_same_weights():
    """DC5: the same state dict (names and shapes) loads strictly into the dilated trunk, C2..C4
    are unchanged and C5 keeps stride 16, as torchvision's dilated ResNet-50 computes it."""
    torch.manual_seed(0)
    plain, dc5 = ResNet(50, frozen_stages=-1), ResNet(50, frozen_stages=-1, dilation=True)
    state = plain.state_dict()
    assert {k: v.shape for k, v in dc5.state_dict().items()} == \
        {k: v.shape for k, v in state.items()}
    dc5.load_state_dict(state, strict=True)
    assert plain.strides == [4, 8, 16, 32] and dc5.strides == [4, 8, 16, 16]
    conv = dc5.body.layer4[0].conv2
    assert conv.stride == (1, 1) and conv.dilation == (1, 1)  # the first block keeps dilation 1
    assert dc5.body.layer4[1].conv2.dilation == (2, 2)
    assert dc5.body.layer4[0].downsample[0].stride == (1, 1)
    imgs = torch.randn(1, 3, 64, 96)
    pad = torch.zeros(1, 64, 96, dtype=torch.bool)
    with torch.no_grad():
        (c2, c3, c4, c5), masks = dc5(imgs, pad)
        plain_features, _ = plain(imgs, pad)
    assert c5.shape == (1, 2048, 4, 6) and masks[3].shape == (1, 4, 6)
    assert plain_features[3].shape == (1, 2048, 2, 3)
    torch.testing.assert_close(c4, plain_features[2])
    reference = torchvision.models.resnet50(weights=None, norm_layer=FrozenBatchNorm2d,
                                            replace_stride_with_dilation=[False, False, True])
    missing, unexpected = reference.load_state_dict(
        {k.removeprefix('body.'): v for k, v in state.items()}, strict=False)
    assert not unexpected and set(missing) == {'fc.weight', 'fc.bias'}
    with torch.no_grad():
        x = reference.maxpool(reference.relu(reference.bn1(reference.conv1(imgs))))
        expected = reference.layer4(reference.layer3(reference.layer2(reference.layer1(x))))
    torch.testing.assert_close(c5, expected)
    with pytest.raises(ValueError, match='dilation .DC5. needs bottleneck blocks'):
        ResNet(18, dilation=True)


@pytest.mark.parametrize('frozen_stages, trained', [
    (-1, {'conv1', 'layer1', 'layer2', 'layer3', 'layer4'}),
    (0, {'layer1', 'layer2', 'layer3', 'layer4'}),
    (1, {'layer2', 'layer3', 'layer4'}),
    (3, {'layer4'}),
    (4, set())])
def test_frozen_stages_means_the_same_in_every_backbone(frozen_stages, trained):
    """mmdet's convention in the DETR-family ResNet and in the segmenters' ResNet-FPN alike; the
    FPN itself always trains."""
    fpn = build_resnet_fpn(18, frozen_stages=frozen_stages, out_channels=16)
    for trunk in (ResNet(18, frozen_stages=frozen_stages).body, fpn.body):
        assert {n.split('.')[0] for n, p in trunk.named_parameters() if p.requires_grad} == trained
    assert all(p.requires_grad for p in fpn.fpn.parameters())


def test_frozen_stages_out_of_range_is_named():
    for build in (lambda k: ResNet(18, frozen_stages=k),
                  lambda k: build_resnet_fpn(18, frozen_stages=k)):
        with pytest.raises(ValueError, match=r'frozen_stages must be in -1\.\.4.*got 5'):
            build(5)
