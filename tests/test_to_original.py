"""Mapping predictions back to the original image (openpsg.structures.to_original) on one
hand-made image: a 4x6 original, resized x2 to 8x12, mirrored and padded to 12x16. Every expected
value below is worked out by hand in the comments."""
import numpy as np
import pytest
import torch
from torchvision.ops import box_convert

from openpsg.structures import (ImageMeta, boxes_to_original, logits_to_original,
                                nearest_to_original, normalized_boxes_to_original,
                                openpsg_logits_to_original, sample_logits_at_original)

META = ImageMeta('hand', ori_shape=(4, 6), img_shape=(8, 12), pad_shape=(12, 16),
                 scale_factor=(2.0, 2.0), flip=True)
#: the original id map (-1 void); its input version below is mirrored, doubled and padded with 9
ORIGINAL = np.array([[0, 0, 0, 1, 1, 1],
                     [0, 0, 0, 1, 1, 1],
                     [2, 2, -1, -1, 1, 1],
                     [2, 2, -1, -1, 1, 1]], np.int32)


def input_id_map() -> torch.Tensor:
    padded = np.full((12, 16), 9, np.int32)
    padded[:8, :12] = ORIGINAL[:, ::-1].repeat(2, 0).repeat(2, 1)
    return torch.from_numpy(padded)


def test_boxes_mirror_in_the_input_width_then_divide_by_the_scale():
    # x in [0, 4) of the mirrored 12-wide input is [8, 12) unmirrored; / 2 -> [4, 6)
    boxes = torch.tensor([[0.0, 2.0, 4.0, 6.0], [6.0, 0.0, 12.0, 8.0]])
    assert boxes_to_original(boxes, META).tolist() == [[4, 1, 6, 3], [0, 0, 3, 4]]
    # the first box normalised by img_shape: cx 2/12, cy 4/8, w 4/12, h 4/8
    normalised = box_convert(boxes[:1] / torch.tensor([12.0, 8.0, 12.0, 8.0]), 'xyxy', 'cxcywh')
    torch.testing.assert_close(normalized_boxes_to_original(normalised, META),
                               torch.tensor([[4.0, 1.0, 6.0, 3.0]]))


def test_id_maps_and_masks_crop_unmirror_and_take_the_nearest_pixel():
    ids = input_id_map()
    # 8 -> 4 rows (6 columns alike): nearest takes input row floor(2 * i) = the block's first
    out = nearest_to_original(ids, META)
    assert out.dtype == torch.int32 and out.numpy().tolist() == ORIGINAL.tolist()
    masks = ids[None] == torch.arange(3, dtype=torch.int32)[:, None, None]
    out = nearest_to_original(masks, META)
    assert out.dtype == torch.bool
    np.testing.assert_array_equal(out.numpy(), ORIGINAL[None] == np.arange(3)[:, None, None])
    # 3 -> 5 rows: nearest takes input rows floor(i * 3 / 5) = 0, 0, 1, 1, 2
    odd = ImageMeta('odd', ori_shape=(5, 2), img_shape=(3, 2), pad_shape=(4, 2))
    column = torch.tensor([[1, 1], [2, 2], [3, 3], [7, 7]], dtype=torch.int32)
    assert nearest_to_original(column, odd)[:, 0].tolist() == [1, 1, 2, 2, 3]
    with pytest.raises(ValueError, match="image_id=x: field 'ori_shape' is \\(0, 0\\)"):
        nearest_to_original(column, ImageMeta('x', img_shape=(3, 2)))


# stride-4 logits of the padded 12x16 batch image: 3x4 cells, the image covers 2x3 of them. Cell
# (r, c) holds 4 r + 100 c: linear, so bilinear sampling anywhere returns the ramp at that point
# (clamped at the border), and a row and a column part can be worked out separately.
LOGITS = (4.0 * torch.arange(3.0)[:, None] + 100.0 * torch.arange(4.0)[None])[None]
# The centre of original pixel i is input coordinate 2 i + 1, i.e. cell coordinate
# (2 i + 1) / 4 - 0.5 = -0.25, 0.25, 0.75, 1.25 (rows), ..., 2.25 (columns); clamped at 0: rows
# 4 * (0, .25, .75, 1.25) = 0, 1, 3, 5, columns 100 * (0, .25, ..., 2.25) = 0, 25, 75, 125, 175,
# 225, then mirrored.
BILINEAR = np.array([0, 1, 3, 5])[:, None] + np.array([225, 175, 125, 75, 25, 0])[None]


def test_bilinear_logits_in_two_steps_and_in_one():
    # two steps: x4 to input pixels (row y at cell (y + .5) / 4 - .5: 0, 0, .5, 1.5, ..., 5.5),
    # then 8 -> 4 rows averaging input rows 2i and 2i + 1: 0, 1, 3, 5 (columns alike)
    np.testing.assert_allclose(logits_to_original(LOGITS, META)[0].numpy(), BILINEAR)
    # one step: RoIAlign samples the same cell coordinates directly
    np.testing.assert_allclose(sample_logits_at_original(LOGITS, META)[0].numpy(), BILINEAR,
                               atol=1e-5)
    assert sample_logits_at_original(LOGITS[:0], META).shape == (0, 4, 6)
    assert logits_to_original(LOGITS[:0], META).shape == (0, 4, 6)


def test_openpsg_nearest_resize_of_the_cells_covering_the_image():
    # the 2x3 covering cells (values 0 100 200 / 4 104 204) nearest-resized to
    # round((8, 12) / 2) = (4, 6): rows floor(i * 2 / 4) = 0 0 1 1, columns floor(j * 3 / 6) =
    # 0 0 1 1 2 2, then mirrored
    expected = [[200, 200, 100, 100, 0, 0]] * 2 + [[204, 204, 104, 104, 4, 4]] * 2
    assert openpsg_logits_to_original(LOGITS, META)[0].tolist() == expected
    assert openpsg_logits_to_original(LOGITS[:0], META).shape == (0, 4, 6)
    wrong = ImageMeta('w', ori_shape=(4, 6), img_shape=(8, 12), scale_factor=(1.0, 1.0))
    with pytest.raises(ValueError, match=r"image_id=w: round\(img_shape / scale_factor\) = "
                                         r"\(8, 12\) .* is not the field 'ori_shape' \(4, 6\)"):
        openpsg_logits_to_original(LOGITS, wrong)
