"""Centre heatmap targets: mass centres, CornerNet's Gaussian radius and max-merged peaks, against
numbers worked out by hand."""
import math

import pytest
import torch

from openpsg.models.segmenters.heatmaps import (draw_gaussian_, gaussian_kernel, gaussian_radius,
                                                mass_centres)


def test_mass_centre_is_the_mean_non_zero_pixel():
    masks = torch.zeros(2, 6, 8)
    masks[0, 1:3, 2:6] = 1.0          # rows 1-2, columns 2-5
    masks[1, 5, 7] = 0.2              # one soft pixel counts like a full one
    masks[1, 0, 0] = 1.0
    torch.testing.assert_close(mass_centres(masks), torch.tensor([[3.5, 1.5], [3.5, 2.5]]))
    with pytest.raises(ValueError, match=r'masks \[0\] are empty'):
        mass_centres(torch.zeros(1, 4, 4))


def test_cornernet_radius_by_hand():
    # 6 x 6 box, overlap 0.7: the three roots (b + sqrt(b^2 - 4ac)) / 2 are
    # a=1, b=12, c=36*0.3/1.7 -> 11.445; a=4, b=24, c=0.3*36 -> 22.040;
    # a=2.8, b=-16.8, c=-0.3*36 -> (-16.8 + sqrt(282.24 + 120.96)) / 2 = 1.640 (the smallest)
    r = gaussian_radius(torch.tensor([6.0]), torch.tensor([6.0]), 0.7)
    assert r.item() == pytest.approx((-16.8 + math.sqrt(403.2)) / 2, rel=1e-6)
    assert r.item() == pytest.approx(1.640, abs=1e-3)
    # 4 x 2 box: b3 = -8.4, b3^2 - 4 a3 c3 = 70.56 + 26.88 -> (-8.4 + sqrt(97.44)) / 2 = 0.736
    r = gaussian_radius(torch.tensor([4.0, 2.0]), torch.tensor([2.0, 4.0]), 0.7)
    torch.testing.assert_close(r, torch.full((2,), (-8.4 + math.sqrt(97.44)) / 2))


def test_gaussian_peak_is_max_merged_and_clipped():
    kernel = gaussian_kernel(1, 1.0)
    e1, e2 = math.exp(-0.5), math.exp(-1.0)
    torch.testing.assert_close(kernel, torch.tensor([[e2, e1, e2], [e1, 1.0, e1], [e2, e1, e2]]))
    heat = torch.zeros(4, 5)
    heat[0, 0] = 0.9
    draw_gaussian_(heat, (0, 1), 1, 1.0)          # x=0, y=1: the left column is cut off
    expected = torch.zeros(4, 5)
    expected[0:3, 0:2] = torch.tensor([[e1, e2], [1.0, e1], [e1, e2]])
    expected[0, 0] = 0.9                          # the larger value stays
    torch.testing.assert_close(heat, expected)
    draw_gaussian_(heat, (4, 3), 0, 1 / 3)        # radius 0: a single pixel
    assert heat[3, 4] == 1.0 and heat[2:, 3:].sum() == 1.0
