"""Scene-graph drawing (openpsg.visualization.graph) on hand-made graphs."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from openpsg.structures import CLASSES, PREDICATES
from openpsg.visualization import class_colors
from openpsg.visualization.draw import load_font
from openpsg.visualization.graph import (GraphLayout, draw_scene_graph, force_layout,
                                         format_score, scene_graph_layout)

# person#0 riding horse#1, both standing on grass#2, horse#1 beside person#0 (reciprocal pair),
# dog#3 has no relation, bench#4 only in a self-relation (not drawn as an arrow).
LABELS = np.array([0, 17, 125, 16, 13])
RELS = np.array([[0, 1, 46], [0, 2, 14], [1, 2, 14], [1, 0, 2], [0, 1, 3], [4, 4, 2]])
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])


def layout(predicate_names=PREDICATES, **kwargs) -> GraphLayout:
    return scene_graph_layout(LABELS, RELS, CLASSES, predicate_names, SCORES, **kwargs)


def overlap(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1]))


def has_dark_text(region: np.ndarray) -> bool:
    return bool((region.max(-1) < 80).sum() >= 5)


def test_force_layout_is_deterministic_and_spreads_nodes() -> None:
    edges = np.array([[0, 1], [1, 2], [2, 0], [2, 3]])
    a, b = force_layout(4, edges, length=100.0), force_layout(4, edges, length=100.0)
    assert a.shape == (4, 2) and np.array_equal(a, b)
    dist = np.hypot(*(a[:, None] - a[None]).transpose(2, 0, 1))
    assert dist[~np.eye(4, dtype=bool)].min() > 30
    assert force_layout(0, np.zeros((0, 2))).shape == (0, 2)
    assert np.array_equal(force_layout(1, np.zeros((0, 2))), np.zeros((1, 2)))


def test_layout_nodes_boxes_and_edges() -> None:
    lay = layout(title='t')
    assert lay.nodes.tolist() == [0, 1, 2, 4]  # first appearance in rels; dog#3 is not a node
    w, h = lay.size
    assert (lay.boxes[:, :2] >= 0).all()
    assert (lay.boxes[:, 2] <= w).all() and (lay.boxes[:, 3] <= h).all()
    assert (lay.boxes[:, 1] >= lay.top).all()
    for i in range(len(lay.boxes)):
        for j in range(i + 1, len(lay.boxes)):
            assert not overlap(lay.boxes[i], lay.boxes[j])
    pairs = [(e.subject, e.object) for e in lay.edges]
    assert pairs == [(0, 1), (0, 2), (1, 2), (1, 0)]  # one arrow per pair, no self-arrow
    texts = {(e.subject, e.object): e.text for e in lay.edges}
    assert texts[(0, 1)] == 'riding 0.90\non 0.50'
    assert texts[(1, 0)] == 'beside 0.60'
    # the reciprocal arrows run side by side, not on top of each other
    fwd, back = lay.edges[0], lay.edges[3]
    assert np.hypot(*(fwd.start - back.end)) > 3
    # arrows start and end on the node borders, not inside the nodes
    for e in lay.edges:
        for point, seg in ((e.start, e.subject), (e.end, e.object)):
            x1, y1, x2, y2 = lay.box_of(seg)
            assert not (x1 + 1 < point[0] < x2 - 1 and y1 + 1 < point[1] < y2 - 1)
    assert layout(title='t').edges[0].label_box.tolist() == lay.edges[0].label_box.tolist()


def test_nodes_are_drawn_in_their_mask_colours() -> None:
    image = draw_scene_graph(LABELS, RELS, CLASSES, PREDICATES, scores=SCORES)
    lay = layout()
    assert image.shape == (lay.size[1], lay.size[0], 3) and image.dtype == np.uint8
    colors = class_colors(LABELS)
    for seg, (x1, y1, x2, y2) in zip(lay.nodes, lay.boxes):
        cy = int((y1 + y2) / 2)
        assert tuple(image[cy, int(x1) + 3]) == tuple(colors[seg]), f'node {seg}'
        assert tuple(image[cy, int(x2) - 3]) == tuple(colors[seg]), f'node {seg}'
    # each node's name is written in the middle of its node, in black or white (whichever reads
    # on the fill), as wide as Pillow measures the text
    font = load_font(14)
    for seg, box in zip(lay.nodes, lay.boxes):
        x1, y1, x2, y2 = box.round().astype(int)
        inner = image[y1 + 2:y2 - 1, x1 + 2:x2 - 1].astype(int)
        ink = (inner != colors[seg]).any(-1)  # text pixels, antialiased edges included
        ys, xs = np.nonzero(ink)
        name = f'{CLASSES[LABELS[seg]]}#{seg}'
        left, _, right, _ = ImageDraw.Draw(Image.new('RGB', (1, 1))).textbbox((0, 0), name,
                                                                               font=font)
        assert abs((xs.max() - xs.min() + 1) - (right - left)) <= 2, name
        assert abs((xs.min() + xs.max()) / 2 - (inner.shape[1] - 1) / 2) <= 2, name
        assert abs((ys.min() + ys.max()) / 2 - (inner.shape[0] - 1) / 2) <= 3, name
    custom = np.array([[10, 200, 30], [200, 10, 30], [30, 10, 200], [0, 0, 0], [90, 90, 90]],
                      np.uint8)
    image = draw_scene_graph(LABELS, RELS, CLASSES, PREDICATES, scores=SCORES, colors=custom)
    for seg, (x1, y1, x2, y2) in zip(lay.nodes, lay.boxes):
        assert tuple(image[int((y1 + y2) / 2), int(x1) + 3]) == tuple(custom[seg])


def test_edge_labels_are_written_in_their_boxes() -> None:
    image = draw_scene_graph(LABELS, RELS, CLASSES, PREDICATES, scores=SCORES)
    lay = layout()
    for edge in lay.edges:
        x1, y1, x2, y2 = edge.label_box.round().astype(int)
        inner = image[y1 + 2:y2 - 1, x1 + 2:x2 - 1]
        assert has_dark_text(inner), edge.text
        assert (inner.min(-1) == 255).mean() > 0.5  # white label background
    # the labels say what the predicate names say, and nothing else does: with every name
    # reversed (the same letters, so the same widths and layout) only the label boxes change
    reversed_names = [name[::-1] for name in PREDICATES]
    assert [e.label_box.tolist() for e in layout(predicate_names=reversed_names).edges] == \
        [e.label_box.tolist() for e in lay.edges]
    other = draw_scene_graph(LABELS, RELS, CLASSES, reversed_names, scores=SCORES)
    changed = (other != image).any(-1)
    in_labels = np.zeros_like(changed)
    for edge in lay.edges:
        x1, y1, x2, y2 = edge.label_box.round().astype(int)
        in_labels[y1:y2 + 1, x1:x2 + 1] = True
        assert changed[y1:y2 + 1, x1:x2 + 1].sum() > 50, edge.text
    assert not (changed & ~in_labels).any()


def test_fixed_size_title_and_empty_graph() -> None:
    image = draw_scene_graph(LABELS, RELS, CLASSES, PREDICATES, size=(300, 220), title='graph')
    assert image.shape == (220, 300, 3)
    assert has_dark_text(image[:20, :80])
    empty = draw_scene_graph(LABELS, np.zeros((0, 3)), CLASSES, PREDICATES, title='nothing')
    assert empty.ndim == 3 and has_dark_text(empty[empty.shape[0] // 3:])
    assert scene_graph_layout(LABELS, np.zeros((0, 3)), CLASSES, PREDICATES).edges == []


def test_scores_stay_readable_when_small() -> None:
    assert [format_score(s) for s in (0.934, 0.005, 0.0, 0.00031)] == [
        '0.93', '0.01', '0.00', '3.1e-04']


def test_bad_input_is_reported() -> None:
    with pytest.raises(ValueError, match='outside'):
        draw_scene_graph(LABELS, np.array([[0, 9, 1]]), CLASSES, PREDICATES)
    with pytest.raises(ValueError, match='scores'):
        draw_scene_graph(LABELS, RELS, CLASSES, PREDICATES, scores=SCORES[:2])
    with pytest.raises(ValueError, match='colors'):
        draw_scene_graph(LABELS, RELS, CLASSES, PREDICATES, colors=np.zeros((2, 3)))
