"""ResNet initialised from the backbone of a trained model's checkpoint (``pretrained_prefix``)."""
import pytest
import torch
import torchvision
from torchvision.ops.misc import FrozenBatchNorm2d

from openpsg.models.backbones import ResNet


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
