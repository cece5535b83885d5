"""Multi-scale deformable attention against a slow reference written out here: an explicit
bilinear-interpolation loop over batch, query, head, level and point (pixel centres at
``(i + 0.5) / size``, zero outside the map), the projections applied by hand."""
import math

import pytest
import torch

from openpsg.models.one_stage.ms_deform_attn import MSDeformAttn


def bilinear(value: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """Sample ``value (H, W, C)`` at normalised ``(x, y)``: pixel ``(i, j)`` has its centre at
    ``((j + 0.5) / W, (i + 0.5) / H)``; neighbours outside the map count as 0."""
    h, w, c = value.shape
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    out = torch.zeros(c, dtype=value.dtype)
    for yi, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
        for xi, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
            if 0 <= yi < h and 0 <= xi < w:
                out += wy * wx * value[yi, xi]
    return out


def slow_ms_deform_attn(attn: MSDeformAttn, query, reference_points, input_flatten, shapes,
                        padding_mask):
    """The module's output computed one sample at a time from its weights."""
    b, lq, d = query.shape
    heads, levels, points = attn.n_heads, attn.n_levels, attn.n_points
    hd = d // heads
    value = input_flatten @ attn.value_proj.weight.T + attn.value_proj.bias
    value = value.masked_fill(padding_mask[..., None], 0.0)
    offsets = (query @ attn.sampling_offsets.weight.T + attn.sampling_offsets.bias).view(
        b, lq, heads, levels, points, 2)
    logits = (query @ attn.attention_weights.weight.T + attn.attention_weights.bias).view(
        b, lq, heads, levels * points)
    weights = logits.softmax(-1).view(b, lq, heads, levels, points)
    starts = [0]
    for h, w in shapes:
        starts.append(starts[-1] + h * w)
    out = torch.zeros(b, lq, d, dtype=query.dtype)
    for n in range(b):
        for q in range(lq):
            for m in range(heads):
                acc = torch.zeros(hd, dtype=query.dtype)
                for lvl, (h, w) in enumerate(shapes):
                    level_value = value[n, starts[lvl]:starts[lvl + 1], m * hd:(m + 1) * hd]
                    level_value = level_value.reshape(h, w, hd)
                    ref = reference_points[n, q, lvl]
                    for p in range(points):
                        dx, dy = offsets[n, q, m, lvl, p].tolist()
                        if len(ref) == 2:
                            x, y = ref[0].item() + dx / w, ref[1].item() + dy / h
                        else:
                            cx, cy, bw, bh = ref.tolist()
                            x, y = cx + dx / points * bw * 0.5, cy + dy / points * bh * 0.5
                        acc += weights[n, q, m, lvl, p] * bilinear(level_value, x, y)
                out[n, q, m * hd:(m + 1) * hd] = acc
    return out @ attn.output_proj.weight.T + attn.output_proj.bias


SHAPES = [(3, 4), (2, 2), (1, 3)]


def random_case(ref_dim: int, seed: int):
    """A 3-level attention with random weights (offsets large enough to leave the maps) on two
    images, the second with padded tokens."""
    torch.manual_seed(seed)
    attn = MSDeformAttn(d_model=8, n_levels=3, n_heads=2, n_points=3).double()
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0, 1.0)
        attn.sampling_offsets.weight.mul_(0.5)
        attn.sampling_offsets.bias.mul_(2.0)  # many points fall outside the maps
    s = sum(h * w for h, w in SHAPES)
    query = torch.randn(2, 5, 8, dtype=torch.double)
    input_flatten = torch.randn(2, s, 8, dtype=torch.double)
    padding_mask = torch.zeros(2, s, dtype=torch.bool)
    padding_mask[1, [3, 7, 11, 12, 15, 16]] = True
    if ref_dim == 2:
        ref = torch.rand(2, 5, 3, 2, dtype=torch.double) * 1.2 - 0.1
    else:
        ref = torch.cat([torch.rand(2, 5, 3, 2, dtype=torch.double),
                         torch.rand(2, 5, 3, 2, dtype=torch.double) * 0.8], -1)
    return attn, query, ref, input_flatten, padding_mask


@pytest.mark.parametrize('ref_dim', [2, 4])
@pytest.mark.parametrize('seed', [0, 1])
def test_matches_the_slow_bilinear_loop(ref_dim, seed):
    attn, query, ref, inputs, padding = random_case(ref_dim, seed)
    shapes = torch.tensor(SHAPES)
    out = attn(query, ref, inputs, shapes, padding)
    assert out.shape == (2, 5, 8)
    expected = slow_ms_deform_attn(attn, query, ref, inputs, SHAPES, padding)
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)


def test_bfloat16_module_and_autocast_sample_where_float32_does():
    """Sampling locations are computed in float32 under bfloat16 autocast (a bfloat16 location
    near 0.5 is off by up to 1/512 of the map); a module cast to bfloat16 runs without autocast."""
    attn, query, ref, inputs, padding = random_case(2, 0)
    attn, query, ref, inputs = attn.float(), query.float(), ref.float(), inputs.float()
    shapes = torch.tensor(SHAPES)
    with torch.no_grad():
        expected = attn(query, ref, inputs, shapes, padding)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            autocast = attn(query, ref, inputs, shapes, padding)
        plain = attn.bfloat16()(query.bfloat16(), ref.bfloat16(), inputs.bfloat16(), shapes,
                                padding)
    assert autocast.dtype == torch.bfloat16 and plain.dtype == torch.bfloat16
    torch.testing.assert_close(autocast.float(), expected, rtol=0.05, atol=0.05)
    torch.testing.assert_close(plain.float(), expected, rtol=0.1, atol=0.1)


def test_padded_tokens_and_points_outside_the_maps_read_zero():
    attn, query, ref, inputs, padding = random_case(2, 0)
    shapes = torch.tensor(SHAPES)
    out = attn(query, ref, inputs, shapes, padding)
    changed = inputs.clone()
    changed[padding] = 1e6  # whatever the padding holds
    torch.testing.assert_close(attn(query, ref, changed, shapes, padding), out)
    # every location far outside every map: only the output projection's bias is left
    far = torch.full_like(ref, 5.0)
    torch.testing.assert_close(attn(query, far, inputs, shapes, padding),
                               attn.output_proj.bias.expand(2, 5, 8))


def test_one_point_on_a_pixel_centre_reads_that_pixel():
    """With zero offset weights, one point per head and level and a reference on a pixel centre,
    the output is the projected value of that pixel (hand-made identity projections)."""
    attn = MSDeformAttn(d_model=4, n_levels=1, n_heads=2, n_points=1)
    with torch.no_grad():
        attn.sampling_offsets.bias.zero_()
        attn.value_proj.weight.copy_(torch.eye(4))
        attn.output_proj.weight.copy_(torch.eye(4))
    inputs = torch.arange(2 * 3 * 4, dtype=torch.float32).view(1, 6, 4)  # a 2x3 map, 4 channels
    ref = torch.tensor([[[[(2 + 0.5) / 3, (1 + 0.5) / 2]]]])  # centre of row 1, column 2
    out = attn(torch.zeros(1, 1, 4), ref, inputs, torch.tensor([[2, 3]]))
    torch.testing.assert_close(out[0, 0], inputs[0, 1 * 3 + 2])


def test_initial_offsets_follow_the_reference_grid():
    attn = MSDeformAttn(d_model=16, n_levels=2, n_heads=8, n_points=3)
    bias = attn.sampling_offsets.bias.view(8, 2, 3, 2)
    # head 0 points right, head 1 diagonally (cos 45 / sin 45 scaled to 1), head 2 down,
    # head 4 left; point k is k times as far; all levels alike
    torch.testing.assert_close(bias[0, 0], torch.tensor([[1., 0.], [2., 0.], [3., 0.]]))
    torch.testing.assert_close(bias[1, 1, 1], torch.tensor([2., 2.]))
    torch.testing.assert_close(bias[2, 0, 2], torch.tensor([0., 3.]), atol=1e-6, rtol=0)
    torch.testing.assert_close(bias[4, 1, 0], torch.tensor([-1., 0.]), atol=1e-6, rtol=0)
    assert (attn.sampling_offsets.weight == 0).all() and (attn.attention_weights.weight == 0).all()
    assert set(attn.state_dict()) == {f'{n}.{p}' for n in ('sampling_offsets', 'attention_weights',
                                                          'value_proj', 'output_proj')
                                      for p in ('weight', 'bias')}


def test_bad_shapes_are_named():
    attn = MSDeformAttn(d_model=8, n_levels=2, n_heads=2, n_points=1)
    with pytest.raises(ValueError, match=r'spatial_shapes \[\[2, 2\], \[1, 1\]\] must list 2 levels'
                                         r' of 6 tokens'):
        attn(torch.zeros(1, 1, 8), torch.zeros(1, 1, 2, 2), torch.zeros(1, 6, 8),
             torch.tensor([[2, 2], [1, 1]]))
    with pytest.raises(ValueError, match='must end in 2'):
        attn(torch.zeros(1, 1, 8), torch.zeros(1, 1, 2, 3), torch.zeros(1, 5, 8),
             torch.tensor([[2, 2], [1, 1]]))
    with pytest.raises(ValueError, match='divisible'):
        MSDeformAttn(d_model=10, n_heads=4)
