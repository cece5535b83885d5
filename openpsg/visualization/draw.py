"""Drawing panoptic segmentations and scene graphs with Pillow.

Everything takes plain arrays, so the same functions draw ground truth and predictions:
``image (H, W, 3)`` uint8 RGB, ``masks (N, H, W)`` bool, ``labels (N,)`` class ids,
``boxes (N, 4)`` xyxy pixels, ``rels (M, 3)`` rows ``(subject, object, predicate)`` indexing the N
segments. Segments are named ``<class>#<index>`` in the figure and in the relation list. Every
function returns a new ``(H', W', 3)`` uint8 array and leaves its inputs untouched.

Drawings have a bounded size whatever the image: an image is drawn with its long side at most
:data:`MAX_DRAWING_SIDE` pixels (:func:`drawing_size`), text panels are at most that wide, and
every text drawn is cut to :data:`MAX_TEXT_CHARS` characters (names come from users' files).
"""
from __future__ import annotations

import os
from collections import Counter
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import distance_transform_edt

from ..datasets.transforms.geometric import resize_nearest
from ..fileio import atomic_write
from ..structures.masks import masks_to_boxes
from .palette import class_colors

TEXT_COLOR = (255, 255, 255)
TEXT_BACKGROUND = (0, 0, 0)
PANEL_BACKGROUND = (255, 255, 255)
PANEL_TEXT = (0, 0, 0)
#: Longest side in pixels of a drawn image (panoptic overlay, the picture of a sample figure).
MAX_DRAWING_SIDE = 4096
#: Longest text drawn, in characters; longer texts end in '...'.
MAX_TEXT_CHARS = 100


def fit_text(text: str) -> str:
    """``text`` cut to :data:`MAX_TEXT_CHARS` characters (ending in ``'...'`` when cut)."""
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS - 3] + '...'


def drawing_size(hw: tuple[int, int], min_size: int = 0) -> tuple[int, int]:
    """``(h, w)`` at which an image of size ``hw = (H, W)`` is drawn.

    An image whose long side exceeds :data:`MAX_DRAWING_SIDE` is shrunk to it (each side rounded,
    at least 1 px). Otherwise an image whose short side is below ``min_size`` is enlarged by the
    smallest integer factor that reaches ``min_size``, but never past :data:`MAX_DRAWING_SIDE`
    on its long side (so a 2x4000 image stays 2x4000).
    """
    h, w = int(hw[0]), int(hw[1])
    if h <= 0 or w <= 0:
        raise ValueError(f'cannot draw an empty image ({h}x{w})')
    long_side = max(h, w)
    if long_side > MAX_DRAWING_SIDE:
        factor = MAX_DRAWING_SIDE / long_side
        return max(1, round(h * factor)), max(1, round(w * factor))
    k = max(1, min(-(-min_size // min(h, w)), MAX_DRAWING_SIDE // long_side))
    return h * k, w * k


def resize_for_drawing(image: np.ndarray, masks: np.ndarray | None = None,
                       boxes: np.ndarray | None = None, min_size: int = 0
                       ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``image (H, W, 3)``, ``masks (N, H, W)`` and ``boxes (N, 4)`` (either may be ``None``)
    brought to :func:`drawing_size`: enlarged by pixel repetition, or shrunk (image bilinear,
    masks nearest); boxes scaled to match."""
    h, w = image.shape[:2]
    new_h, new_w = drawing_size((h, w), min_size)
    if (new_h, new_w) == (h, w):
        return image, masks, boxes
    if new_h > h:
        k = new_h // h
        image = image.repeat(k, 0).repeat(k, 1)
    else:
        image = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    if masks is not None:
        masks = resize_nearest(masks, (new_h, new_w))
    if boxes is not None:
        boxes = np.asarray(boxes, dtype=np.float32) * np.array(
            [new_w / w, new_h / h, new_w / w, new_h / h], dtype=np.float32)
    return image, masks, boxes


def load_font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed-size bitmap font
        return ImageFont.load_default()


def default_font_size(height: int, width: int) -> int:
    """A font size readable on an image of this size (13 px at 400 px, growing with the image)."""
    return max(10, round(min(height, width) / 30))


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f'expected an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}')
    return image


def class_name(names: Sequence[str], index: int) -> str:
    return names[index] if 0 <= index < len(names) else str(index)


def segment_names(labels: np.ndarray, class_names: Sequence[str]) -> list[str]:
    """``['person#0', 'grass-merged#1', ...]``: class name and position of each segment."""
    return [f'{class_name(class_names, int(label))}#{i}' for i, label in enumerate(labels)]


def label_point(mask: np.ndarray) -> tuple[int, int]:
    """``(x, y)`` of a pixel well inside ``mask (H, W)``: among the pixels farthest from the mask's
    border (image edges count as border), the one nearest the mask's centroid (first in row-major
    order on ties). The same mask always gives the same point."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError('label_point: the mask is empty')
    depth = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    ys, xs = np.nonzero(depth == depth.max())
    cy, cx = (c.mean() for c in np.nonzero(mask))
    best = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
    return int(xs[best]), int(ys[best])


def _outlines(masks: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` bool: mask pixels with a 4-neighbour outside the mask or the image."""
    padded = np.pad(masks, ((0, 0), (1, 1), (1, 1)))
    inner = padded[:, :-2, 1:-1] & padded[:, 2:, 1:-1] & padded[:, 1:-1, :-2] & padded[:, 1:-1, 2:]
    return masks & ~inner


def _text(draw: ImageDraw.ImageDraw, center: tuple[float, float], text: str,
          font: ImageFont.ImageFont, bounds: tuple[int, int]) -> None:
    """White text on a black box centred on ``center``, shifted to stay inside ``bounds (W, H)``."""
    text = fit_text(text)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 2, bottom - top + 2
    x = min(max(center[0] - w / 2, 0), max(bounds[0] - w, 0))
    y = min(max(center[1] - h / 2, 0), max(bounds[1] - h, 0))
    draw.rectangle([x, y, x + w - 1, y + h - 1], fill=TEXT_BACKGROUND)
    draw.text((x + 1 - left, y + 1 - top), text, fill=TEXT_COLOR, font=font)


def _colors(labels: np.ndarray, colors: np.ndarray | None, n: int) -> np.ndarray:
    colors = class_colors(labels) if colors is None else np.asarray(colors, dtype=np.uint8)
    if colors.shape != (n, 3):
        raise ValueError(f'colors must be ({n}, 3), got {colors.shape}')
    return colors


def draw_panoptic(image: np.ndarray, masks: np.ndarray, labels: np.ndarray,
                  class_names: Sequence[str], alpha: float = 0.5, colors: np.ndarray | None = None,
                  texts: Sequence[str] | None = None, font_size: int | None = None,
                  points: Sequence[tuple[int, int]] | None = None) -> np.ndarray:
    """Tint each mask with its colour, outline it, and write its name centred on ``points[i]``
    (default: :func:`label_point` of the mask; empty masks get no name).

    Inside mask ``i`` a pixel becomes ``(1 - alpha) * pixel + alpha * colors[i]`` (rounded, halves
    up; later masks over earlier ones); its outline pixels get ``colors[i]``. ``colors (N, 3)``
    defaults to the class colours of ``labels``; ``texts`` defaults to the class names.
    """
    image = _check_image(image)
    masks = np.asarray(masks, dtype=bool)
    labels = np.asarray(labels, dtype=np.int64)
    if masks.shape[1:] != image.shape[:2] or len(masks) != len(labels):
        raise ValueError(f'draw_panoptic: masks {masks.shape} do not match image {image.shape[:2]} '
                         f'and {len(labels)} labels')
    colors = _colors(labels, colors, len(labels))
    texts = [class_name(class_names, int(label)) for label in labels] if texts is None else list(texts)
    out = image.astype(np.float32)
    for mask, color in zip(masks, colors):
        out[mask] = out[mask] * (1 - alpha) + color.astype(np.float32) * alpha
    out = (out + 0.5).astype(np.uint8)
    for outline, color in zip(_outlines(masks), colors):
        out[outline] = color
    canvas = Image.fromarray(out)
    draw = ImageDraw.Draw(canvas)
    font = load_font(font_size or default_font_size(*image.shape[:2]))
    for i, (mask, text) in enumerate(zip(masks, texts)):
        if points is not None:
            _text(draw, points[i], text, font, canvas.size)
        elif mask.any():
            _text(draw, label_point(mask), text, font, canvas.size)
    return np.asarray(canvas)


def draw_boxes(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
               class_names: Sequence[str], colors: np.ndarray | None = None,
               texts: Sequence[str] | None = None, font_size: int | None = None) -> np.ndarray:
    """Draw each box ``(N, 4)`` xyxy as a rectangle in its colour, its name at the top-left corner
    (for box-only data, where there are no masks)."""
    image = _check_image(image)
    labels = np.asarray(labels, dtype=np.int64)
    colors = _colors(labels, colors, len(labels))
    texts = [class_name(class_names, int(label)) for label in labels] if texts is None else list(texts)
    canvas = Image.fromarray(image.copy())
    draw = ImageDraw.Draw(canvas)
    font = load_font(font_size or default_font_size(*image.shape[:2]))
    for (x1, y1, x2, y2), color, text in zip(np.asarray(boxes, dtype=np.float64), colors, texts):
        draw.rectangle([x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)],
                       outline=tuple(int(c) for c in color), width=2)
        _text(draw, (x1, y1), text, font, canvas.size)
    return np.asarray(canvas)


def draw_arrow(draw: ImageDraw.ImageDraw, start: np.ndarray, end: np.ndarray, color: tuple[int, ...],
           width: int, head: float) -> None:
    """A line with a triangular head, stopping ``head`` short of ``end`` (where the object's name is
    written), drawn in ``color`` over a black edge so it shows on any background."""
    direction = end - start
    length = float(np.hypot(*direction))
    if length <= 2 * head:
        return
    d = direction / length
    normal = np.array([-d[1], d[0]])
    tip = end - d * head
    base = tip - d * head
    head_points = [tuple(tip), tuple(base + normal * head / 2), tuple(base - normal * head / 2)]
    draw.line([tuple(start), tuple(base)], fill=TEXT_BACKGROUND, width=width + 2)
    draw.polygon(head_points, fill=color, outline=TEXT_BACKGROUND)
    draw.line([tuple(start), tuple(base)], fill=color, width=width)


def draw_relations(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rels: np.ndarray,
                   predicate_names: Sequence[str], colors: np.ndarray | None = None,
                   font_size: int | None = None, anchors: np.ndarray | None = None) -> np.ndarray:
    """Draw an arrow from the subject to the object for every row of ``rels``, in the subject's
    colour, with the predicate written at the arrow's middle (several predicates of one pair are
    stacked). Arrows join ``anchors (N, 2)`` xy points, by default the box centres."""
    image = _check_image(image)
    labels = np.asarray(labels, dtype=np.int64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    colors = _colors(labels, colors, len(labels))
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2 if anchors is None else \
        np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
    size = font_size or default_font_size(*image.shape[:2])
    font = load_font(size)
    canvas = Image.fromarray(image.copy())
    draw = ImageDraw.Draw(canvas)
    rels = check_relations(rels, len(labels))
    for s, o, _ in rels:
        draw_arrow(draw, centres[s], centres[o], tuple(int(c) for c in colors[s]),
               width=max(2, size // 6), head=size * 0.8)
    seen: Counter = Counter()
    for s, o, p in rels:
        pair = (min(s, o), max(s, o))
        middle = (centres[s] + centres[o]) / 2 + np.array([0, seen[pair] * (size + 3)])
        seen[pair] += 1
        _text(draw, tuple(middle), class_name(predicate_names, int(p)), font, canvas.size)
    return np.asarray(canvas)


def check_relations(rels: np.ndarray, num_segments: int) -> np.ndarray:
    rels = np.asarray(rels, dtype=np.int64).reshape(-1, 3)
    if len(rels) and (rels[:, :2].min() < 0 or rels[:, :2].max() >= num_segments):
        raise ValueError(f'rels index segments outside 0..{num_segments - 1}: '
                         f'{rels[:, :2].tolist()}')
    return rels


def relation_lines(labels: np.ndarray, rels: np.ndarray, class_names: Sequence[str],
                   predicate_names: Sequence[str]) -> list[str]:
    """One ``'person#0 --riding--> horse#1'`` line per row of ``rels``, in row order."""
    names = segment_names(np.asarray(labels), class_names)
    return [f'{names[s]} --{class_name(predicate_names, int(p))}--> {names[o]}'
            for s, o, p in check_relations(rels, len(names))]


def text_panel(lines: Sequence[str], height: int, width: int | None = None,
               font_size: int = 12) -> np.ndarray:
    """``(height, width, 3)`` uint8 white panel listing ``lines`` top to bottom in black.

    ``width`` defaults to the widest line plus margins, at most :data:`MAX_DRAWING_SIDE`. Lines
    that do not fit are replaced by a last line ``'... N more'``; long lines are cut
    (:func:`fit_text`).
    """
    font = load_font(font_size)
    measure = ImageDraw.Draw(Image.new('RGB', (1, 1)))
    step = font_size + 4
    fit = max(1, (height - 8) // step)
    shown = [fit_text(line) for line in lines]
    if len(shown) > fit:
        shown = [*shown[:fit - 1], f'... {len(shown) - fit + 1} more']
    if width is None:
        widths = [measure.textbbox((0, 0), line, font=font)[2] for line in shown]
        width = min(max([120, *widths]) + 16, MAX_DRAWING_SIDE)
    canvas = Image.new('RGB', (width, height), PANEL_BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(shown):
        draw.text((8, 4 + i * step), line, fill=PANEL_TEXT, font=font)
    return np.asarray(canvas)


def side_by_side(images: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Place ``(H_i, W_i, 3)`` uint8 images left to right on white, top-aligned, ``gap`` pixels
    apart."""
    height = max(img.shape[0] for img in images)
    width = sum(img.shape[1] for img in images) + gap * (len(images) - 1)
    out = np.full((height, width, 3), PANEL_BACKGROUND, dtype=np.uint8)
    x = 0
    for img in images:
        out[:img.shape[0], x:x + img.shape[1]] = img
        x += img.shape[1] + gap
    return out


def save_png(image: np.ndarray, path: str | os.PathLike) -> None:
    """Write ``image (H, W, 3)`` uint8 as a PNG, creating folders; the file appears complete or not
    at all (written to a temporary name, then renamed)."""
    with atomic_write(path, 'wb') as f:
        Image.fromarray(_check_image(image)).save(f, format='PNG')


def compose_sample_figure(image: np.ndarray, labels: np.ndarray, rels: np.ndarray,
                          class_names: Sequence[str], predicate_names: Sequence[str],
                          masks: np.ndarray | None = None, boxes: np.ndarray | None = None,
                          title: str | None = None, out_file: str | os.PathLike | None = None,
                          alpha: float = 0.5, min_size: int = 384) -> np.ndarray:
    """One figure for one image: segments (or boxes) with names and relation arrows on the left,
    the list of ``subject --predicate--> object`` lines (headed by ``title``) on the right. With
    masks, names sit at each mask's :func:`label_point` and the arrows join those points.

    Give ``masks (N, H, W)``, ``boxes (N, 4)`` or both (boxes default to the masks' tight boxes).
    The image is drawn at :func:`drawing_size` (enlarged by pixel repetition when its short side
    is below ``min_size``, shrunk when its long side exceeds :data:`MAX_DRAWING_SIDE`). Returns
    the figure; ``out_file`` also writes it as a PNG.
    """
    image = _check_image(image)
    labels = np.asarray(labels, dtype=np.int64)
    if masks is None and boxes is None:
        raise ValueError('compose_sample_figure needs masks or boxes')
    masks = None if masks is None else np.asarray(masks, dtype=bool)
    boxes = masks_to_boxes(masks) if boxes is None else np.asarray(boxes, dtype=np.float32)
    image, masks, boxes = resize_for_drawing(image, masks, boxes, min_size)
    size = default_font_size(*image.shape[:2])
    texts = segment_names(labels, class_names)
    anchors = (boxes[:, :2] + boxes[:, 2:]) / 2
    if masks is not None:
        for i, mask in enumerate(masks):
            if mask.any():
                anchors[i] = label_point(mask)
        left = draw_panoptic(image, masks, labels, class_names, alpha, texts=texts, font_size=size,
                             points=[tuple(p) for p in anchors])
    else:
        left = draw_boxes(image, boxes, labels, class_names, texts=texts, font_size=size)
    left = draw_relations(left, boxes, labels, rels, predicate_names, font_size=size,
                          anchors=anchors)
    lines = relation_lines(labels, rels, class_names, predicate_names) or ['(no relations)']
    if title:
        lines = [title, *lines]
    figure = side_by_side([left, text_panel(lines, left.shape[0], font_size=size)])
    if out_file is not None:
        save_png(figure, out_file)
    return figure
