"""Drawing functions on small hand-made arrays, and tools/browse_dataset.py end to end."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from drawing_checks import text_lines, tinted_share
from fixtures.psg_tiny.paint import write_psg_tiny
from PIL import Image

from openpsg.datasets import PSGDataset
from openpsg.datasets.synthetic import generate_synthetic_psg
from openpsg.structures import CLASSES, PREDICATES
from openpsg.visualization import (class_colors, compose_sample_figure, draw_boxes, draw_panoptic,
                                   draw_relations, draw_scene_graph, instance_colors, label_point,
                                   relation_lines, save_png, side_by_side, text_panel)
from openpsg.visualization.draw import MAX_DRAWING_SIDE, drawing_size
from openpsg.visualization.graph import MAX_SIZE

REPO = Path(__file__).resolve().parents[1]


def has_text(region: np.ndarray) -> bool:
    """Light (antialiased white) text pixels on black background pixels."""
    return bool((region.min(-1) >= 200).any() and (region.max(-1) == 0).any())


def grey(h: int, w: int, value: int = 100) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


def rect_mask(shape: tuple[int, int], y1: int, y2: int, x1: int, x2: int) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[y1:y2, x1:x2] = True
    return mask


# ----------------------------------------------------------------------------------- palette
def test_class_palette_is_distinct_and_readable() -> None:
    colors = class_colors(np.arange(133)).astype(np.float64)
    assert colors.shape == (133, 3)
    dist = np.sqrt(((colors[:, None] - colors[None]) ** 2).sum(-1))
    assert dist[~np.eye(133, dtype=bool)].min() >= 30
    luma = colors @ [0.299, 0.587, 0.114]
    assert luma.min() > 50 and luma.max() < 220
    same = class_colors([5, 5, 7])
    assert (same[0] == same[1]).all() and (same[0] != same[2]).any()
    assert len({tuple(c) for c in instance_colors(20)}) == 20


# ----------------------------------------------------------------------------------- panoptic
def test_label_point_rectangle_and_ring() -> None:
    # rows 10..29, cols 10..49: depth 10 on rows 19-20, cols 19-40; nearest to the centroid
    # (x 29.5, y 19.5) are x 29/30, y 19/20, first in row-major order -> (29, 19)
    assert label_point(rect_mask((40, 60), 10, 30, 10, 50)) == (29, 19)
    ring = rect_mask((20, 20), 0, 20, 0, 20) & ~rect_mask((20, 20), 5, 15, 5, 15)
    x, y = label_point(ring)
    assert ring[y, x]
    with pytest.raises(ValueError, match='empty'):
        label_point(np.zeros((4, 4), dtype=bool))


def test_draw_panoptic_tint_outline_and_name() -> None:
    image = grey(80, 120)
    mask = rect_mask((80, 120), 10, 70, 10, 110)
    out = draw_panoptic(image, mask[None], np.array([17]), CLASSES, alpha=0.5, font_size=10)
    assert out.shape == (80, 120, 3) and out.dtype == np.uint8
    color = class_colors([17])[0].astype(int)
    # interior: (1 - a) * 100 + a * colour, rounded half up
    assert out[12, 12].tolist() == [int(50 + c / 2 + 0.5) for c in color]
    assert out[10, 60].tolist() == color.tolist()          # outline
    assert out[5, 5].tolist() == [100, 100, 100]           # outside every mask
    assert (image == 100).all()                            # input untouched
    x, y = label_point(mask)
    assert has_text(out[y - 6:y + 7, x - 20:x + 21])       # white name on a black box
    assert not has_text(out[15:30, 15:40])


def test_draw_panoptic_rejects_mismatched_masks() -> None:
    with pytest.raises(ValueError, match='do not match'):
        draw_panoptic(grey(8, 8), np.zeros((1, 8, 9), bool), np.array([0]), CLASSES)


def test_draw_boxes_outlines_the_box() -> None:
    out = draw_boxes(grey(40, 40), np.array([[10, 20, 30, 35]]), np.array([0]), CLASSES)
    color = class_colors([0])[0].tolist()
    assert out[34, 20].tolist() == color and out[27, 29].tolist() == color  # bottom, right edge
    assert out[27, 20].tolist() == [100, 100, 100]                             # inside stays


# ----------------------------------------------------------------------------------- relations
def test_draw_relations_arrow_and_label() -> None:
    image = grey(60, 80)
    # box centres (10, 10) and (70, 50)
    boxes = np.array([[0, 0, 20, 20], [60, 40, 80, 60]], dtype=np.float32)
    out = draw_relations(image, boxes, np.array([0, 17]), np.array([[0, 1, 46], [1, 1, 0]]),
                         PREDICATES, font_size=10)
    assert out.shape == image.shape
    assert out[20, 25].tolist() != [100, 100, 100]         # on the line, a quarter of the way
    assert out[5, 75].tolist() == [100, 100, 100]          # far from the line and the labels
    assert has_text(out[24:37, 25:56])                     # 'riding' written around (40, 30)


def test_relation_lines() -> None:
    lines = relation_lines(np.array([0, 17, 125]), np.array([[0, 1, 46], [1, 2, 14], [0, 1, 56]]),
                           CLASSES, PREDICATES)
    assert lines == ['person#0 --riding--> horse#1', 'horse#1 --standing on--> grass-merged#2',
                     'person#0 --56--> horse#1']
    with pytest.raises(ValueError, match='outside 0..2'):
        relation_lines(np.array([0, 17, 125]), np.array([[0, 3, 1]]), CLASSES, PREDICATES)


def test_text_panel_truncates() -> None:
    # font 12 -> 16 px per line; (50 - 8) // 16 = 2 lines fit: the first line and '... 9 more'
    panel = text_panel([f'line {i}' for i in range(10)], height=50, font_size=12)
    assert panel.shape[0] == 50 and panel.shape[1] >= 136 and panel.dtype == np.uint8
    assert (panel[4:36] < 128).any()
    assert (panel[37:] == 255).all()


def test_side_by_side() -> None:
    out = side_by_side([grey(10, 5, 1), grey(20, 7, 2)], gap=4)
    assert out.shape == (20, 16, 3)
    assert (out[:10, :5] == 1).all() and (out[10:, :5] == 255).all()
    assert (out[:, 5:9] == 255).all() and (out[:, 9:] == 2).all()


# ----------------------------------------------------------------------------------- figure
def test_compose_sample_figure_writes_png(tmp_path: Path) -> None:
    masks = np.stack([rect_mask((32, 48), 4, 20, 4, 20), rect_mask((32, 48), 20, 32, 0, 48)])
    out_file = tmp_path / 'sub' / 'fig.png'
    fig = compose_sample_figure(grey(32, 48), np.array([0, 125]), np.array([[0, 1, 14]]), CLASSES,
                                PREDICATES, masks=masks, title='image 1', out_file=out_file,
                                min_size=96)
    # short side 32 < 96: enlarged x3 to 96 x 144, the relation panel on the right
    assert fig.shape[0] == 96 and fig.shape[1] > 144 + 4 and fig.dtype == np.uint8
    person, grass = class_colors([0, 125]).astype(int)
    assert fig[14, 14].tolist() == [(100 + c + 1) // 2 for c in person]   # inside mask 0 (x3)
    assert fig[90, 140].tolist() == [(100 + c + 1) // 2 for c in grass]   # inside mask 1
    assert fig[5, 100].tolist() == [100, 100, 100]                        # no mask there
    assert (fig[:, 144:148] == 255).all()                                 # the gap
    assert text_lines(fig[:, 148:], font_size=10) == 2  # 'image 1' and the relation (font 96 / 30)
    with Image.open(out_file) as im:
        assert im.format == 'PNG' and im.size == (fig.shape[1], 96)
        np.testing.assert_array_equal(np.asarray(im.convert('RGB')), fig)
    assert [p.name for p in out_file.parent.iterdir()] == ['fig.png']
    boxes_only = compose_sample_figure(grey(32, 48), np.array([0]), np.zeros((0, 3)), CLASSES,
                                       PREDICATES, boxes=np.array([[4, 4, 20, 20]]), min_size=0)
    assert boxes_only.shape[0] == 32


def test_drawing_size_is_capped_whatever_the_aspect_ratio() -> None:
    assert MAX_DRAWING_SIDE == 4096
    # enlarged by the smallest integer factor reaching min_size: ceil(384 / 20) = 20 ...
    assert drawing_size((20, 30), 384) == (400, 600)
    # ... as far as the cap allows: min(ceil(384 / 100), 4096 // 1000) = 4, min(4, 4096 // 2000) = 2
    assert drawing_size((100, 1000), 384) == (400, 4000)
    assert drawing_size((100, 2000), 384) == (200, 4000)
    assert drawing_size((2, 4000), 384) == (2, 4000) and drawing_size((4000, 2), 384) == (4000, 2)
    # longer than the cap: shrunk to it, 6000 * 4096 / 8000 = 3072; 1 * 0.4096 rounds up to 1 px
    assert drawing_size((8000, 6000)) == (4096, 3072)
    assert drawing_size((1, 10000), 384) == (1, 4096) and drawing_size((10000, 1)) == (4096, 1)


def test_figures_and_graphs_stay_bounded_with_huge_inputs() -> None:
    """Names and titles come from users' files and may be of any length; images of any shape."""
    names = ['a' * 100_000, 'b' * 50_000]
    predicates = ['c' * 1_000_000]
    masks = np.zeros((2, 2, 4000), dtype=bool)
    masks[0, :, :2000] = True
    masks[1, :, 2000:] = True
    figure = compose_sample_figure(grey(2, 4000), np.array([0, 1]), np.array([[0, 1, 0]]), names,
                                   predicates, masks=masks, title='t' * 1_000_000, min_size=384)
    assert figure.shape[0] == 2 and figure.shape[1] <= 4000 + 4 + MAX_DRAWING_SIDE
    tall = np.zeros((1, 6000, 20), dtype=bool)
    tall[0, 1000:5000, 5:15] = True
    figure = compose_sample_figure(grey(6000, 20), np.array([0]), np.zeros((0, 3)), CLASSES,
                                   PREDICATES, masks=tall)
    assert figure.shape[0] == 4096  # 20 x 4096 / 6000 = 13.65 -> 14 px wide, then the text panel
    # the mask is shrunk with the image: drawing row 1000 is image row 1465 (inside the mask),
    # drawing row 100 is image row 146 (outside)
    assert (figure[1000, 7] != 100).any() and (figure[100, 7] == 100).all()
    graph = draw_scene_graph(np.array([0, 1]), np.array([[0, 1, 0]]), names, predicates,
                             title='t' * 1_000_000)
    assert graph.shape[0] <= MAX_SIZE[1] and graph.shape[1] <= MAX_SIZE[0]
    assert text_panel(['x' * 1_000_000], 40).shape[1] <= MAX_DRAWING_SIDE


def test_save_png_leaves_nothing_on_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='uint8'):
        save_png(np.zeros((4, 4, 3), dtype=np.float32), tmp_path / 'bad.png')
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------- CLI
def load_browse():
    spec = importlib.util.spec_from_file_location('browse_dataset',
                                                  REPO / 'tools' / 'browse_dataset.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_browse_dataset_cli_on_synthetic_data(tmp_path: Path) -> None:
    data = tmp_path / 'synth'
    generate_synthetic_psg(data, num_train=6, num_test=1, seed=0, workers=1)
    out = tmp_path / 'out'
    result = subprocess.run(
        [sys.executable, 'tools/browse_dataset.py', 'configs/_base_/datasets/psg_synth_onestage.py',
         '--out', str(out), '--num', '3', '--shuffle', '--seed', '1', '--cfg-options',
         f'data.train.data_root={data}', f'data.train.ann_file={data / "psg.json"}'],
        capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    written = sorted(out.iterdir())
    assert f'wrote {len(written)} image(s)' in result.stdout and len(written) >= 1
    train_ids = PSGDataset(str(data / 'psg.json'), str(data), split='train').image_ids
    for path in written:
        assert path.stem in train_ids
        with Image.open(path) as im:
            assert im.format == 'PNG' and im.size[1] >= 384


def test_browse_dataset_image_size(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ann_file, root = write_psg_tiny(tmp_path / 'data')
    out = tmp_path / 'out'
    code = load_browse().main([
        str(REPO / 'configs/_base_/datasets/psg_synth.py'), '--out', str(out), '--split', 'test',
        '--cfg-options', f'data.test.data_root={root}', f'data.test.ann_file={ann_file}'])
    assert code == 0 and 'wrote 1 image(s)' in capsys.readouterr().out
    # test image 1002 is 20 x 30; Resize (213, 128): factor 128 / 20 = 6.4 -> 128 x 192;
    # drawn enlarged x3 (short side >= 384), relation list on the right
    with Image.open(out / '1002.png') as im:
        assert im.format == 'PNG' and im.size[1] == 384 and im.size[0] > 3 * 192
        figure = np.asarray(im.convert('RGB'))
    # its segments (x1, y1, x2, y2) -> class, at 6.4 x 3 = 19.2 drawing px per image px, each
    # tinted in its class colour (dog, person, grass-merged) well inside its rectangle
    scale = 19.2
    for (x1, y1, x2, y2), label in [((3, 5, 12, 15), 2), ((15, 2, 27, 18), 0),
                                    ((0, 18, 30, 20), 3)]:
        region = figure[int(y1 * scale) + 4:int(y2 * scale) - 4,
                        int(x1 * scale) + 4:int(x2 * scale) - 4]
        assert tinted_share(region, class_colors([label])[0]) > 0.9, label
    # title and the 3 relations of the test image (one exact duplicate removed); font 384 / 30
    assert text_lines(figure[:, 576 + 4:], font_size=13) == 1 + 3


def test_browse_dataset_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / 'missing.json'
    code = load_browse().main([str(REPO / 'configs/_base_/datasets/psg_synth.py'),
                               '--out', str(tmp_path / 'out'),
                               '--cfg-options', f'data.train.ann_file={missing}'])
    err = capsys.readouterr().err
    assert code == 1 and str(missing) in err and 'not found' in err
    assert not (tmp_path / 'out').exists()
