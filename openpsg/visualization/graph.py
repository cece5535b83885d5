"""Scene graphs drawn as graphs: one node per segment that takes part in a relation, one arrow per
(subject, object) pair labelled with its predicate(s) and score(s). Pillow only.

Inputs follow :mod:`openpsg.visualization.draw`: ``labels (N,)`` class ids of the image's
segments, ``rels (M, 3)`` rows ``(subject, object, predicate)`` indexing them, optional
``scores (M,)``. Nodes are named ``<class>#<index>`` and filled with the segment's colour (default:
its class colour, the colour :func:`~openpsg.visualization.draw.draw_panoptic` gives its mask), so
a node and its mask are recognisably the same segment.

The layout (:func:`scene_graph_layout`) is deterministic: each connected component gets a
force-directed placement started from a circle (:func:`force_layout`) with links long enough for
their labels, its nodes are pushed apart until no two overlap, and the components are packed in
rows. Edge labels go where, along or beside their arrow, they cover the fewest nodes and labels.
"""
from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .draw import check_relations, class_name, draw_arrow, fit_text, load_font
from .palette import class_colors

BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)
NODE_PAD = (8, 5)          # horizontal, vertical padding around a node's name
MARGIN = 12                # free border of the canvas
GRAVITY = 0.1              # pull towards the centre in force_layout
MAX_SIZE = (1800, 1400)    # default canvas at most this (W, H); larger drawings are shrunk into it
LABEL_STEPS = (0.5, 0.35, 0.65, 0.2, 0.8)  # where along an arrow its label may sit (then beside it)


@dataclass
class GraphEdge:
    """One arrow: ``subject -> object`` segment indices, ``text`` its label (one line per
    predicate), ``start``/``end`` xy where it leaves the subject's node and reaches the object's,
    and ``label_box`` xyxy where its label goes."""

    subject: int
    object: int
    text: str
    start: np.ndarray
    end: np.ndarray
    label_box: np.ndarray


@dataclass
class GraphLayout:
    """Where things go on the canvas: ``nodes (K,)`` segment indices (first-appearance order in
    ``rels``), ``boxes (K, 4)`` float xyxy node rectangles, ``edges`` one per (subject, object)
    pair, ``size`` the canvas ``(W, H)`` and ``top`` the height of the title strip."""

    nodes: np.ndarray
    boxes: np.ndarray
    edges: list[GraphEdge]
    size: tuple[int, int]
    top: int

    @property
    def centers(self) -> np.ndarray:
        """``(K, 2)`` xy centres of the node rectangles."""
        return (self.boxes[:, :2] + self.boxes[:, 2:]) / 2

    def box_of(self, segment: int) -> np.ndarray:
        """The rectangle of segment ``segment``'s node."""
        hit = np.flatnonzero(self.nodes == segment)
        if not len(hit):
            raise KeyError(f'segment {segment} is not a node of this graph')
        return self.boxes[hit[0]]


def force_layout(num_nodes: int, edges: np.ndarray, length: float = 1.0,
                 iterations: int = 300) -> np.ndarray:
    """Fruchterman-Reingold positions ``(num_nodes, 2)`` for the undirected ``edges (E, 2)``, with
    ``length`` about the distance two linked nodes settle at. Starts from a circle (no
    randomness), so the same graph always gets the same layout; a pull towards the centre, growing
    with the square of the distance, folds long chains. Meant for one connected component."""
    angle = 2 * np.pi * np.arange(num_nodes) / max(num_nodes, 1) - np.pi / 2
    radius = length * max(num_nodes, 2) / (2 * np.pi)
    pos = radius * np.stack([np.cos(angle), np.sin(angle)], 1)
    if num_nodes < 2:
        return np.zeros((num_nodes, 2))
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    edges = np.unique(np.sort(edges[edges[:, 0] != edges[:, 1]], 1), axis=0)
    for it in range(iterations):
        delta = pos[:, None] - pos[None]
        dist2 = np.maximum((delta ** 2).sum(-1), (1e-3 * length) ** 2)
        disp = (delta * (length ** 2 / dist2)[..., None]).sum(1)
        if len(edges):
            d = pos[edges[:, 1]] - pos[edges[:, 0]]
            pull = d * (np.hypot(d[:, 0], d[:, 1]) / length)[:, None]
            np.add.at(disp, edges[:, 0], pull)
            np.add.at(disp, edges[:, 1], -pull)
        disp -= GRAVITY * pos * (np.hypot(pos[:, 0], pos[:, 1]) / length)[:, None]
        norm = np.maximum(np.hypot(disp[:, 0], disp[:, 1]), 1e-9)
        step = length * (0.5 * (1 - it / iterations) + 0.01)
        pos = pos + disp / norm[:, None] * np.minimum(norm, step)[:, None]
    return pos - pos.mean(0)


def _components(num_nodes: int, edges: np.ndarray) -> list[np.ndarray]:
    """Connected components (node index arrays), ordered by their first node."""
    parent = list(range(num_nodes))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in edges:
        parent[root(int(i))] = root(int(j))
    roots = np.array([root(i) for i in range(num_nodes)])
    return [np.flatnonzero(roots == r) for r in dict.fromkeys(roots.tolist())]


def _text_size(font: ImageFont.ImageFont, text: str) -> tuple[int, int]:
    left, top, right, bottom = ImageDraw.Draw(Image.new('RGB', (1, 1))).multiline_textbbox(
        (0, 0), text, font=font)
    return right - left, bottom - top


def _separate(boxes: np.ndarray, gap: float, bounds: tuple[np.ndarray, np.ndarray] | None = None,
              rounds: int = 100) -> np.ndarray:
    """Push overlapping rectangles ``(K, 4)`` apart until they are ``gap`` apart (along the axis of
    least overlap, half each); with ``bounds = (lo, hi)`` (xy corners) keep them inside."""
    boxes = boxes.copy()
    for _ in range(rounds):
        moved = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                ox = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]) + gap
                oy = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]) + gap
                if ox <= 0 or oy <= 0:
                    continue
                moved = True
                axis = 0 if ox < oy else 1
                before = boxes[i, axis] + boxes[i, axis + 2] <= boxes[j, axis] + boxes[j, axis + 2]
                sign = 1.0 if before else -1.0
                shift = np.zeros(4)
                shift[[axis, axis + 2]] = sign * min(ox, oy) / 2
                boxes[i] -= shift
                boxes[j] += shift
        if bounds is not None:
            lo, hi = bounds
            boxes += np.tile(np.maximum(lo - boxes[:, :2], 0) - np.maximum(boxes[:, 2:] - hi, 0), 2)
        if not moved:
            break
    return boxes


def _pack(parts: list[np.ndarray], gap: float) -> list[np.ndarray]:
    """Place groups of boxes (one group per component) in rows, left to right, biggest first,
    each row at most about as wide as the whole is tall; returns the moved groups, top-left at 0."""
    extents = [np.concatenate([p[:, :2].min(0), p[:, 2:].max(0)]) for p in parts]
    sizes = np.array([[e[2] - e[0], e[3] - e[1]] for e in extents])
    row_width = max(sizes[:, 0].max(), np.sqrt((sizes + gap).prod(1).sum()) * 1.3)
    out: list[np.ndarray] = [np.zeros(0)] * len(parts)
    x = y = row_height = 0.0
    for i in sorted(range(len(parts)), key=lambda i: (-sizes[i, 1], i)):
        if x > 0 and x + sizes[i, 0] > row_width:
            x, y, row_height = 0.0, y + row_height + gap, 0.0
        out[i] = parts[i] - np.tile(extents[i][:2], 2) + np.array([x, y, x, y])
        x += sizes[i, 0] + gap
        row_height = max(row_height, sizes[i, 1])
    return out


def _exit_point(p0: np.ndarray, p1: np.ndarray, box: np.ndarray, gap: float) -> float:
    """Parameter ``t`` in [0, 1] where the segment ``p0 -> p1`` leaves ``box`` (grown by
    ``gap``), ``p0`` being inside it; 0 if ``p0`` is outside."""
    d = p1 - p0
    lo, hi = box[:2] - gap, box[2:] + gap
    if (p0 < lo).any() or (p0 > hi).any():
        return 0.0
    ts = [((hi[a] if d[a] > 0 else lo[a]) - p0[a]) / d[a] for a in (0, 1) if abs(d[a]) > 1e-9]
    return float(np.clip(min(ts), 0, 1)) if ts else 1.0


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return float(max(w, 0) * max(h, 0))


def format_score(score: float) -> str:
    """``'0.93'``; scores below 0.005 in scientific notation (``'3.1e-04'``) so they do not all
    read ``'0.00'``."""
    return f'{score:.2f}' if abs(score) >= 0.005 or score == 0 else f'{score:.1e}'


def _edge_texts(rels: np.ndarray, predicate_names: Sequence[str],
                scores: np.ndarray | None) -> dict[tuple[int, int], list[str]]:
    """``(subject, object) -> ['<predicate> <score>', ...]`` in row order; relations of a segment
    with itself are left out."""
    groups: dict[tuple[int, int], list[str]] = defaultdict(list)
    for r, (s, o, p) in enumerate(rels):
        if s != o:
            text = fit_text(class_name(predicate_names, int(p)))
            groups[(int(s), int(o))].append(text if scores is None
                                            else f'{text} {format_score(scores[r])}')
    return groups


def _node_text(labels: np.ndarray, segment: int, class_names: Sequence[str]) -> str:
    """The name written in a node: ``<class>#<segment>`` (the class name cut by
    :func:`~openpsg.visualization.draw.fit_text`)."""
    return f'{fit_text(class_name(class_names, int(labels[segment])))}#{segment}'


def _node_boxes(half: np.ndarray, edges: np.ndarray, length: float, gap: float) -> np.ndarray:
    """Node rectangles ``(K, 4)`` with top-left corner of the drawing at 0: each component laid out
    by :func:`force_layout`, its overlaps removed, then the components packed in rows."""
    parts = []
    for nodes in _components(len(half), edges):
        index = -np.ones(len(half), np.int64)
        index[nodes] = np.arange(len(nodes))
        inner = edges[np.isin(edges[:, 0], nodes)]
        pos = force_layout(len(nodes), index[inner], length)
        parts.append(_separate(np.concatenate([pos - half[nodes], pos + half[nodes]], 1), gap))
    boxes = np.zeros((len(half), 4))
    for nodes, part in zip(_components(len(half), edges), _pack(parts, 2 * gap)):
        boxes[nodes] = part
    return boxes


def scene_graph_layout(labels: np.ndarray, rels: np.ndarray, class_names: Sequence[str],
                       predicate_names: Sequence[str], scores: np.ndarray | None = None,
                       size: tuple[int, int] | None = None, font_size: int = 14,
                       title: str | None = None) -> GraphLayout:
    """Nodes, arrows and label boxes of :func:`draw_scene_graph` (see the module doc)."""
    labels = np.asarray(labels, dtype=np.int64)
    rels = check_relations(rels, len(labels))
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(scores) != len(rels):
            raise ValueError(f'scores has {len(scores)} entries for {len(rels)} relations')
    nodes = np.array(list(dict.fromkeys(rels[:, :2].ravel().tolist())), dtype=np.int64)
    font = load_font(font_size)
    top = font_size + 14 if title else 0
    title_width = (min(_text_size(font, fit_text(title))[0] + 2 * MARGIN, MAX_SIZE[0])
                   if title else 0)
    if not len(nodes):
        size = tuple(size) if size is not None else (max(360, title_width), 240 + top)
        return GraphLayout(nodes, np.zeros((0, 4)), [], size, top)
    groups = _edge_texts(rels, predicate_names, scores)
    index = {int(s): i for i, s in enumerate(nodes)}
    edges = np.array([[index[s], index[o]] for s, o in groups], dtype=np.int64).reshape(-1, 2)
    half = np.array([_text_size(font, _node_text(labels, s, class_names)) for s in nodes],
                    dtype=np.float64) / 2 + NODE_PAD
    label_width = max([_text_size(font, '\n'.join(t))[0] for t in groups.values()] or [0])
    length = 2 * half[:, 0].mean() + min(label_width, 20 * font_size) + 2 * font_size
    boxes = _node_boxes(half, edges, length, gap=font_size)
    origin = np.array([MARGIN, top + MARGIN], dtype=np.float64)
    natural = boxes[:, 2:].max(0) + origin + MARGIN
    if size is None and (natural <= MAX_SIZE).all():
        size = (int(max(natural[0], title_width, 320)), int(max(natural[1], 200 + top)))
        boxes = boxes + np.tile(origin, 2)
    else:
        size = tuple(np.minimum(natural, MAX_SIZE).astype(int)) if size is None else (
            int(size[0]), int(size[1]))
        room = np.array(size, dtype=np.float64) - origin - MARGIN
        extent = np.maximum(natural - origin - MARGIN, 1)
        scale = min(1.0, *(room / extent))
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2 * scale + origin + (room - extent * scale) / 2
        boxes = _separate(np.concatenate([centers - half, centers + half], 1), font_size / 2,
                          (origin, np.array(size, dtype=np.float64) - MARGIN))
    layout = GraphLayout(nodes, boxes, [], size, top)
    placed: list[np.ndarray] = []
    for (s, o), texts in groups.items():
        c0, c1 = layout.box_of(s), layout.box_of(o)
        c0, c1 = (c0[:2] + c0[2:]) / 2, (c1[:2] + c1[2:]) / 2
        d = c1 - c0
        normal = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-9)
        p0, p1 = (c0, c1) if (o, s) not in groups else (c0 + normal * font_size * 0.45,
                                                         c1 + normal * font_size * 0.45)
        t0 = _exit_point(p0, p1, layout.box_of(s), 2)
        t1 = 1 - _exit_point(p1, p0, layout.box_of(o), 2)
        start, end = p0 + t0 * (p1 - p0), p0 + max(t1, t0) * (p1 - p0)
        text = '\n'.join(texts)
        w, h = _text_size(font, text)
        best, best_cost = None, np.inf
        along = end - start
        side = np.array([-along[1], along[0]]) / max(float(np.hypot(*along)), 1e-9)
        for t, shift in itertools.product(LABEL_STEPS, (0.0, 1.0, -1.0)):
            cx, cy = start + t * along + shift * side * (h / 2 + 6)
            box = np.array([cx - w / 2 - 3, cy - h / 2 - 3, cx + w / 2 + 3, cy + h / 2 + 3])
            box[[0, 2]] -= min(box[0], 0) + max(box[2] - size[0], 0)
            box[[1, 3]] -= min(box[1] - top, 0) + max(box[3] - size[1], 0)
            cost = 2 * sum(_overlap(box, b) for b in boxes) + sum(_overlap(box, b) for b in placed)
            if cost < best_cost:
                best, best_cost = box, cost
        placed.append(best)
        layout.edges.append(GraphEdge(s, o, text, start, end, best))
    return layout


def _luma(color: np.ndarray) -> float:
    return float(np.dot(color, [0.299, 0.587, 0.114]))


def draw_scene_graph(labels: np.ndarray, rels: np.ndarray, class_names: Sequence[str],
                     predicate_names: Sequence[str], scores: np.ndarray | None = None,
                     colors: np.ndarray | None = None, size: tuple[int, int] | None = None,
                     font_size: int = 14, title: str | None = None) -> np.ndarray:
    """Draw the relations ``rels (M, 3)`` of segments labelled ``labels (N,)`` as a graph;
    returns an ``(H, W, 3)`` uint8 image. ``size = (W, H)`` fixes the canvas (a larger drawing is
    shrunk into it); by default the canvas fits the drawing, up to :data:`MAX_SIZE`.

    Nodes are rectangles filled with ``colors[segment]`` (default: class colours) holding the
    segment's name; an arrow in the subject's colour goes from subject to object, with a label
    ``'<predicate> <score>'`` (one line per predicate of the pair; without ``scores`` just the
    predicate) framed in the subject's colour. Arrows in both directions between two nodes run
    side by side. Relations of a segment with itself are not drawn. Without relations the canvas
    says so. The geometry is :func:`scene_graph_layout`'s.
    """
    labels = np.asarray(labels, dtype=np.int64)
    colors = class_colors(labels) if colors is None else np.asarray(colors, dtype=np.uint8)
    if colors.shape != (len(labels), 3):
        raise ValueError(f'colors must be ({len(labels)}, 3), got {colors.shape}')
    layout = scene_graph_layout(labels, rels, class_names, predicate_names, scores, size,
                                font_size, title)
    font = load_font(font_size)
    canvas = Image.new('RGB', layout.size, BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((MARGIN, 6), fit_text(title), fill=INK, font=font)
    if not len(layout.nodes):
        message = '(no relations to draw)'
        w, h = _text_size(font, message)
        draw.text(((layout.size[0] - w) / 2, (layout.size[1] + layout.top - h) / 2), message,
                  fill=INK, font=font)
        return np.asarray(canvas)

    def rgb(segment: int) -> tuple[int, int, int]:
        return tuple(int(c) for c in colors[segment])

    head = font_size * 0.8
    for edge in layout.edges:
        d = edge.end - edge.start
        length = float(np.hypot(*d))
        if length > 0:
            draw_arrow(draw, edge.start, edge.end + d / length * head, rgb(edge.subject), width=2,
                   head=head)
    for segment, box in zip(layout.nodes, layout.boxes):
        draw.rounded_rectangle(box.tolist(), radius=4, fill=rgb(segment), outline=INK, width=1)
        text = _node_text(labels, segment, class_names)
        w, h = _text_size(font, text)
        left, top, _, _ = draw.textbbox((0, 0), text, font=font)
        cx, cy = (box[:2] + box[2:]) / 2
        draw.text((cx - w / 2 - left, cy - h / 2 - top), text, font=font,
                  fill=INK if _luma(colors[segment]) > 140 else BACKGROUND)
    for edge in layout.edges:
        box = edge.label_box
        draw.rectangle(box.tolist(), fill=BACKGROUND, outline=rgb(edge.subject))
        left, top, _, _ = draw.multiline_textbbox((0, 0), edge.text, font=font)
        draw.multiline_text((box[0] + 3 - left, box[1] + 3 - top), edge.text, fill=INK, font=font)
    return np.asarray(canvas)
