"""Dense-head blocks: CoordConv channels, the modulated deformable convolution (against a plain
convolution of a shifted input) and conv stacks."""
import torch
import torch.nn.functional as F

from openpsg.models.layers import ConvStack, ModulatedDeformConv2d, with_coords


def test_coord_channels_run_from_minus_one_to_one_rows_first():
    x = torch.zeros(2, 1, 3, 5)
    out = with_coords(x)
    assert out.shape == (2, 3, 3, 5)
    assert out[1, 1, :, 0].tolist() == [-1.0, 0.0, 1.0]               # row coordinate
    assert out[0, 2, 0].tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]      # column coordinate
    assert (out[:, 1] == out[:, 1, :, :1]).all() and (out[:, 2] == out[:, 2, :1]).all()


def deform_with_fixed_offsets(dy: float, dx: float, mask_logit: float) -> ModulatedDeformConv2d:
    """A 4 -> 2 channel deformable conv whose offset branch outputs constant offsets and masks."""
    torch.manual_seed(0)
    conv = ModulatedDeformConv2d(4, 2)
    torch.nn.init.zeros_(conv.offset_mask.weight)
    with torch.no_grad():
        conv.offset_mask.bias.copy_(torch.tensor([dy, dx] * 9 + [mask_logit] * 9))
        conv.conv.bias.copy_(torch.tensor([0.5, -1.0]))
    return conv


def test_deformable_conv_with_zero_offsets_is_a_conv_scaled_by_its_mask():
    x = torch.randn(1, 4, 7, 9)
    conv = deform_with_fixed_offsets(0.0, 0.0, 0.0)  # sigmoid(0) = 0.5 on every tap
    plain = F.conv2d(x, conv.conv.weight, padding=1)
    expected = 0.5 * plain + conv.conv.bias[:, None, None]
    torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-5)


def test_deformable_conv_offsets_are_dy_dx_pairs():
    x = torch.randn(1, 4, 7, 9)
    conv = deform_with_fixed_offsets(0.0, 1.0, 30.0)  # every tap samples one pixel to the right
    shifted = F.pad(x[..., 1:], (0, 1))               # shifted[..., j] = x[..., j + 1]
    expected = F.conv2d(shifted, conv.conv.weight, conv.conv.bias, padding=1)
    # away from the borders, where padding enters differently
    torch.testing.assert_close(conv(x)[..., 1:-2], expected[..., 1:-2], rtol=1e-4, atol=1e-4)
    conv = deform_with_fixed_offsets(1.0, 0.0, 30.0)  # one pixel down
    shifted = F.pad(x[..., 1:, :], (0, 0, 0, 1))
    expected = F.conv2d(shifted, conv.conv.weight, conv.conv.bias, padding=1)
    torch.testing.assert_close(conv(x)[..., 1:-2, :], expected[..., 1:-2, :], rtol=1e-4,
                               atol=1e-4)


def test_conv_stack_layout():
    stack = ConvStack(8, 16, num_convs=3, num_groups=4, deform=True, coord=True)
    kinds = [type(m).__name__ for m in stack.layers]
    assert kinds == ['ModulatedDeformConv2d', 'GroupNorm', 'ReLU'] * 3
    assert stack.layers[0].offset_mask.in_channels == 10  # 8 + 2 coordinates
    assert stack.layers[0].conv.bias is None              # GroupNorm follows
    assert stack(torch.randn(2, 8, 5, 6)).shape == (2, 16, 5, 6)
    plain = ConvStack(8, 16, num_convs=2, num_groups=0)
    assert [type(m).__name__ for m in plain.layers] == ['Conv2d', 'ReLU'] * 2
    assert plain.layers[0].bias is not None and plain.layers[0].in_channels == 8
