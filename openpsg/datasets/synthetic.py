"""Synthetic PSG: small drawn scenes in the exact PSG schema, for tests, demos and CPU training.

:func:`generate_synthetic_psg` writes ``OUT/images/<id>.jpg``, ``OUT/panoptic/<id>.png`` and
``OUT/psg.json`` (use ``data_root = OUT``); :func:`render_scene` draws one scene in memory.
Every image is drawn from its own random stream seeded by ``(seed, split, index)``, so a seed gives
the same bytes whatever the number of worker processes, and the test set depends only on
``seed`` and ``num_test``.

**Scenes.** One of four layouts, with 1-3 stuff regions and usually 1-5 things (a few percent of
the scenes have no thing at all, hence no relation):

* *field* - ``sky-other-merged`` above ``grass-merged`` or ``snow``, sometimes a ``tree-merged`` or
  ``mountain-merged`` band on the horizon; people, horses (some ridden), dogs, benches (some with
  a sitting person), a person kicking a ``sports ball`` or holding an ``umbrella``; birds and
  kites in the sky.
* *street* - sky above ``road`` (dashed lane), sometimes a ``building-other-merged`` skyline; cars,
  people, bicycles (some ridden), dogs; birds and airplanes.
* *beach* - sky, ``sea`` and ``sand``; boats in the sea, people and dogs on the sand, birds, kites.
* *indoor* - ``wall-other-merged`` above ``floor-wood``; dining tables with cups and a tv on top,
  chairs (some with a sitting person), people (some holding a cup), dogs (some lying), clocks on
  the wall.

Each class has its own shape, colour range and texture (a person is a rounded torso with legs,
arms and a head with one eye showing which way it faces; a car is a box with a cabin, windows and
wheels; grass has vertical streaks, the sea waves, the floor planks ...). Things nearer the bottom
of the image are larger and drawn later, so they occlude the ones behind them. The panoptic PNG
keeps the visible pixels only; a thing with fewer than ``max(6, 0.2% of the image)`` visible pixels
and a stuff region under 0.5% of the image are left unlabelled (panoptic id 0) while still drawn.

**Predicates.** A relation is written only when both segments are kept and its check on the
*visible* masks passes ("box" = tight box of the visible mask, ``x2``/``y2`` exclusive):

=================  ===========================================================================
predicate          drawing rule -> visible check
=================  ===========================================================================
standing on        person (standing, walking, kicking, holding), standing dog, horse with its
                   feet on ground stuff (grass, snow, sand, road, floor-wood) -> *rests on*: a
                   pixel in the lowest quarter of the subject's box lies directly above an
                   object pixel
walking on         person drawn in a stride (legs apart); always together with *standing on*
running on         dog drawn with stretched legs -> *rests on*
lying on           dog drawn lying flat (no legs) on the floor -> *rests on*
on                 cup or tv on a table top; table, chair, bench, riderless bicycle or ball on
                   ground stuff -> *rests on*
parked on          car with dark headlights on the road -> *rests on*
driving on         car with lit (yellow) headlights on the road -> *rests on*
in                 boat whose hull bottom is below the water line -> *rests on* (sea)
sitting on         person drawn seated on a chair or bench -> the boxes overlap
riding             person drawn astride a horse or on a bicycle saddle -> the boxes overlap
holding            person whose hand grips an umbrella handle or a cup -> the masks touch
kicking            person with one foot raised against a ball -> the masks touch
over               umbrella held above its holder -> subject's top is higher and the x-ranges
                   overlap
flying over        bird, kite or airplane drawn wholly in the sky, over the first ground band
                   below it (grass/snow, road, sea) -> subject's box ends above the object's
attached to        clock on the wall -> the masks touch
looking at         person facing a tv indoors (the tv lies on the side of the head where the eye
                   is drawn) -> both visible
in front of        any two things not composed together, where the later-drawn one hides at
                   least 10% (and 3 pixels) of the earlier one's drawn pixels and the visible
                   boxes overlap
beside             two things resting on ground stuff (via one of the predicates above) whose
                   box bottoms differ by at most ``max(2, 5% of H)`` and whose boxes are at most
                   10% of W apart (they may overlap); subject = the one further left
=================  ===========================================================================

Pairs can carry two predicates (*standing on* + *walking on*; *in front of* + *beside*). The
scene mix makes *beside*, *standing on*, *on* and *in front of* common and the interactions rare,
so the predicate frequencies are long-tailed as in PSG.
"""
from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..structures.labels import CLASSES, NUM_THING_CLASSES, PREDICATES, STUFF_CLASSES, THING_CLASSES
from ..structures.masks import id2rgb, masks_to_boxes

_CLASS = {name: i for i, name in enumerate(CLASSES)}
_PREDICATE = {name: i for i, name in enumerate(PREDICATES)}

GROUND_STUFF = ('grass-merged', 'snow', 'sand', 'road', 'floor-wood')
"""Stuff classes that things stand on."""

_GROUNDING = ('standing on', 'walking on', 'running on', 'lying on', 'on', 'parked on', 'driving on')
_P_EMPTY = 0.04
_JPEG_QUALITY = 90
_ASPECTS = ((1.0, 0.75), (0.75, 1.0), (1.0, 1.0))  # (width, height) as fractions of the longer side
_ASPECT_P = (0.6, 0.2, 0.2)


class Scene(NamedTuple):
    """One rendered image.

    ``image (H, W, 3)`` uint8 RGB; ``pan_ids (H, W)`` int64 panoptic ids (0 = unlabelled);
    ``segments``: ``{id, category_id, iscrowd, isthing, area}`` per segment (``area`` = pixels of
    ``id`` in ``pan_ids``); ``relations``: ``[subject, object, predicate]`` rows, indices into
    ``segments``, predicates 0-based.
    """

    image: np.ndarray
    pan_ids: np.ndarray
    segments: list[dict]
    relations: list[list[int]]


# ---------------------------------------------------------------------------------------------
# appearance


class _Look(NamedTuple):
    rgb: tuple[float, float, float]
    texture: str = 'flat'
    amp: float = 0.0
    noise: float = 4.0


def _brightness(kind: str, ys: np.ndarray, xs: np.ndarray, canvas: _Canvas) -> np.ndarray | float:
    """Texture pattern (brightness offset in [-1, 1]) at pixel centres ``ys, xs``."""
    if kind == 'flat':
        return 0.0
    if kind == 'vgrad':
        return ys / canvas.h * 2 - 1
    if kind == 'streaks':
        return canvas.column_noise[xs.astype(np.int64)]
    if kind == 'waves':
        return np.sin(1.3 * ys + 1.5 * np.sin(0.3 * xs + canvas.phase[0]))
    if kind == 'planks':
        return ((ys // 3) % 2) * 2 - 1.0
    if kind == 'windows':
        return (((xs % 5) < 2.5) & ((ys % 6) < 3)) * 2 - 1.0
    if kind == 'spots':
        return (np.sin(1.3 * xs + canvas.phase[0]) * np.sin(1.1 * ys + canvas.phase[1]) > 0.4) * 1.0
    if kind == 'stripes':
        return ((xs // 2) % 2) * 2 - 1.0
    if kind == 'checker':
        return (((xs // 2) + (ys // 2)) % 2) * 2 - 1.0
    if kind == 'blobs':
        return np.sin(0.6 * xs + canvas.phase[0]) * np.sin(0.7 * ys + canvas.phase[1])
    raise KeyError(kind)


def _jitter(rng: np.random.Generator, rgb: Iterable[float], sd: float = 10.0) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(tuple(rgb), float) + rng.normal(0, sd, 3))


def _pick(rng: np.random.Generator, options: tuple) -> object:
    return options[int(rng.integers(len(options)))]


# ---------------------------------------------------------------------------------------------
# canvas, layers and shapes


@dataclass(eq=False)
class _Layer:
    """One segment to draw: ``parts`` are ``(mask (H, W) bool, look)`` painted in order."""

    category: int
    depth: float
    parts: list[tuple[np.ndarray, _Look]]
    facing: int = 0  # people: +1 looks right, -1 left
    mask: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.mask = np.logical_or.reduce([m for m, _ in self.parts])

    @property
    def isthing(self) -> bool:
        return self.category < NUM_THING_CLASSES


class _Intent(NamedTuple):
    subject: _Layer
    object: _Layer
    predicate: str
    check: str


@dataclass
class _Group:
    """Things placed together (e.g. a horse and its rider) and the relations they were drawn with."""

    layers: list[_Layer]
    intents: list[_Intent] = field(default_factory=list)
    spot: tuple[_Layer, float, float] | None = None  # (ground, x, y) where it stands

    def box(self) -> tuple[int, int, int, int] | None:
        return _box(np.logical_or.reduce([layer.mask for layer in self.layers]))

    def add(self, layer: _Layer, *intents: _Intent) -> None:
        """Place ``layer`` in the group with the relations it is drawn with."""
        self.layers.append(layer)
        self.intents.extend(intents)


class _Canvas:
    """Pixel-centre coordinate grids ``yy, xx (H, W)`` plus everything placed so far."""

    def __init__(self, rng: np.random.Generator, h: int, w: int) -> None:
        self.rng, self.h, self.w = rng, h, w
        self.u = min(h, w)
        self.yy, self.xx = (np.mgrid[0:h, 0:w].astype(np.float32) + 0.5)
        self.cols = self.xx[0]
        self.column_noise = rng.uniform(-1, 1, w).astype(np.float32)
        self.phase = rng.uniform(0, 2 * math.pi, 2)
        self.layers: list[_Layer] = []
        self.intents: list[_Intent] = []
        self.boxes: list[tuple[int, int, int, int]] = []
        self.spots: list[tuple[_Layer, float, float]] = []

    def stuff(self, name: str, mask: np.ndarray, look: _Look,
              *extra: tuple[np.ndarray, _Look]) -> _Layer:
        layer = _Layer(_CLASS[name], float(len(self.layers)), [(mask, look), *extra])
        self.layers.append(layer)
        return layer

    def commit(self, group: _Group) -> None:
        self.layers.extend(group.layers)
        self.intents.extend(group.intents)
        self.boxes.append(group.box())
        if group.spot is not None:
            self.spots.append(group.spot)

    # shapes: (H, W) bool masks from float pixel coordinates

    def ellipse(self, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        rx, ry = max(rx, 0.6), max(ry, 0.6)
        return ((self.xx - cx) / rx) ** 2 + ((self.yy - cy) / ry) ** 2 <= 1

    def rect(self, x1: float, y1: float, x2: float, y2: float) -> np.ndarray:
        return (self.xx >= x1) & (self.xx < x2) & (self.yy >= y1) & (self.yy < y2)

    def capsule(self, x0: float, y0: float, x1: float, y1: float, r: float) -> np.ndarray:
        """Pixels within ``r`` of the segment ``(x0, y0)-(x1, y1)`` (limbs, poles, handles)."""
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((self.xx - x0) * dx + (self.yy - y0) * dy) / max(dx * dx + dy * dy, 1e-6), 0, 1)
        r = max(r, 0.6)
        return (self.xx - x0 - t * dx) ** 2 + (self.yy - y0 - t * dy) ** 2 <= r * r

    def polygon(self, *points: tuple[float, float]) -> np.ndarray:
        """Inside of a convex polygon given by its corners in order."""
        pts = np.asarray(points, dtype=np.float32)
        nxt = np.roll(pts, -1, axis=0)
        sign = 1.0 if np.sum(pts[:, 0] * nxt[:, 1] - nxt[:, 0] * pts[:, 1]) >= 0 else -1.0
        inside = np.ones((self.h, self.w), dtype=bool)
        for (x0, y0), (x1, y1) in zip(pts, nxt):
            inside &= sign * ((x1 - x0) * (self.yy - y0) - (y1 - y0) * (self.xx - x0)) >= 0
        return inside

    def below(self, line: np.ndarray) -> np.ndarray:
        """Pixels below a per-column boundary ``line (W,)``."""
        return self.yy >= line[None, :]

    def wavy(self, y: float, amp: float, period: float) -> np.ndarray:
        return y + amp * np.sin(2 * math.pi * self.cols / period + self.rng.uniform(0, 2 * math.pi))

    def shade(self, look: _Look, mask: np.ndarray) -> np.ndarray:
        """Colours ``(n, 3)`` of the masked pixels for ``look`` (base colour + texture + noise)."""
        ys, xs = self.yy[mask], self.xx[mask]
        offset = look.amp * _brightness(look.texture, ys, xs, self)
        offset = offset + self.rng.normal(0, look.noise, ys.shape)
        return np.asarray(look.rgb, dtype=np.float32) + np.asarray(offset, np.float32)[:, None]


def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _inter_area(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _crowded(canvas: _Canvas, box: tuple[int, int, int, int], limit: float = 0.6) -> bool:
    area = (box[2] - box[0]) * (box[3] - box[1])
    for other in canvas.boxes:
        other_area = (other[2] - other[0]) * (other[3] - other[1])
        if _inter_area(box, other) > limit * min(area, other_area):
            return True
    return False


def _place(canvas: _Canvas, make: Callable[[], _Group | None], tries: int = 8) -> _Group | None:
    """Draw ``make()`` until it is visible and its box covers no earlier group's box (or is covered
    by it) for more than 60% of the smaller box; give up after ``tries``."""
    for _ in range(tries):
        group = make()
        box = group.box() if group is not None else None
        if box is not None and not _crowded(canvas, box):
            canvas.commit(group)
            return group
    return None


# ---------------------------------------------------------------------------------------------
# things


_SHIRTS = ((200, 40, 40), (40, 80, 200), (40, 150, 60), (230, 190, 40), (140, 60, 170), (240, 120, 30))
_TROUSERS = ((30, 40, 90), (40, 40, 40), (90, 70, 50))
_SKIN = ((235, 190, 160), (190, 140, 100), (120, 80, 55))
_CAR_PAINT = ((190, 30, 30), (30, 60, 160), (190, 190, 195), (235, 235, 235), (35, 35, 40))
_DOG_COAT = ((200, 160, 100), (235, 230, 220), (60, 45, 35))
_HORSE_COAT = ((130, 80, 40), (90, 55, 30), (170, 120, 70))
_BRIGHT = ((220, 30, 60), (250, 200, 30), (30, 150, 220), (60, 190, 90))
_DARK = (25, 25, 30)


@dataclass
class _Pose:
    """How a person is drawn: ``seat_y`` (in) is the top of its seat or mount; ``hand``/``foot``
    (out) are where its gripping hand and kicking foot end up."""

    kind: str  # stand, walk, kick, hold_up, hold, sit, ride
    seat_y: float = 0.0
    hand: tuple[float, float] = (0.0, 0.0)
    foot: tuple[float, float] = (0.0, 0.0)


def _person(c: _Canvas, cx: float, by: float, h: float, f: int, pose: _Pose, depth: float) -> _Layer:
    """A person of height ``h`` with feet at ``by`` facing ``f`` (+1 right, -1 left)."""
    rng = c.rng
    shirt = _Look(_jitter(rng, _pick(rng, _SHIRTS), 15), 'flat', 0, 6)
    trousers = _Look(_jitter(rng, _pick(rng, _TROUSERS)), 'flat', 0, 5)
    skin = _Look(_jitter(rng, _pick(rng, _SKIN), 6), 'flat', 0, 3)
    r = 0.11 * h
    leg_r, arm_r = max(0.05 * h, 0.7), max(0.04 * h, 0.6)
    half = 0.14 * h
    if pose.kind in ('sit', 'ride'):
        hip_y = pose.seat_y - 0.03 * h
        top = hip_y - 0.55 * h
    else:
        hip_y = by - 0.45 * h
        top = by - h
    head_y = top + r
    shoulder_y = top + 2.1 * r
    legs: list[np.ndarray] = []
    foot_y = by - leg_r
    if pose.kind == 'stand' or pose.kind.startswith('hold'):
        legs += [c.capsule(cx + s * 0.06 * h, hip_y, cx + s * 0.06 * h, foot_y, leg_r) for s in (-1, 1)]
    elif pose.kind == 'walk':
        legs += [c.capsule(cx, hip_y, cx + s * 0.16 * h, foot_y, leg_r) for s in (-1, 1)]
    elif pose.kind == 'kick':
        pose.foot = (cx + f * 0.24 * h, by - 0.16 * h)
        legs += [c.capsule(cx - f * 0.04 * h, hip_y, cx - f * 0.06 * h, foot_y, leg_r),
                 c.capsule(cx + f * 0.04 * h, hip_y, *pose.foot, leg_r)]
    elif pose.kind == 'sit':
        knee = (cx + f * 0.22 * h, hip_y)
        legs += [c.capsule(cx, hip_y, *knee, leg_r),
                 c.capsule(*knee, knee[0] + f * 0.02 * h, foot_y, leg_r)]
    elif pose.kind == 'ride':
        legs += [c.capsule(cx, hip_y, cx + f * 0.08 * h, hip_y + 0.3 * h, leg_r)]
    torso = ((np.abs(c.xx - cx) / half) ** 4 + (np.abs(c.yy - (shoulder_y + hip_y) / 2)
                                                   / ((hip_y - shoulder_y) / 2 + 0.06 * h)) ** 4) <= 1
    if pose.kind == 'hold_up':
        pose.hand = (cx + f * 0.2 * h, shoulder_y - 0.12 * h)
    elif pose.kind in ('hold', 'ride'):
        pose.hand = (cx + f * 0.26 * h, hip_y - 0.12 * h)
    else:
        pose.hand = (cx + f * 0.2 * h, hip_y + 0.02 * h)
    arms = c.capsule(cx + f * 0.8 * half, shoulder_y + 0.5 * r, *pose.hand, arm_r)
    arms |= c.capsule(cx - f * 0.8 * half, shoulder_y + 0.5 * r, cx - f * 0.2 * h, hip_y, arm_r)
    head = c.ellipse(cx, head_y, r, 1.1 * r)
    hair = head & (c.yy < head_y - 0.35 * r)
    eye = c.ellipse(cx + f * 0.5 * r, head_y - 0.05 * r, 0.28 * r, 0.28 * r)
    parts = [(np.logical_or.reduce(legs), trousers), (torso | arms, shirt), (head, skin),
             (hair, _Look(_jitter(rng, (50, 35, 25)), 'flat', 0, 3)), (eye, _Look(_DARK, 'flat', 0, 2))]
    return _Layer(_CLASS['person'], depth, parts, facing=f)


def _quadruped(c: _Canvas, name: str, cx: float, by: float, hh: float, f: int, gait: str,
               depth: float) -> _Layer:
    """Horse (``hh`` = height to the back, wide body, long neck) or dog (round head, ears, tail up)."""
    rng = c.rng
    horse = name == 'horse'
    coat = _Look(_jitter(rng, _pick(rng, _HORSE_COAT if horse else _DOG_COAT), 8),
                 'blobs' if horse else 'spots', 10 if horse else 25, 4)
    dark = _Look(_jitter(rng, (40, 28, 20), 5), 'flat', 0, 3)
    rx, ry = (0.5 * hh, 0.2 * hh) if horse else (0.6 * hh, 0.27 * hh)
    leg_r = max(0.05 * hh, 0.6) if horse else max(0.09 * hh, 0.6)
    body_y = by - (ry if gait == 'lie' else (0.65 if horse else 0.6) * hh)
    body = c.ellipse(cx, body_y, rx, ry)
    legs = np.zeros_like(body)
    if gait != 'lie':
        spread = 0.25 * hh if gait == 'run' else 0.0
        for s in (-1, 1):
            for dx in (0.15, 0.65):
                hip_x = cx + s * dx * rx
                legs |= c.capsule(hip_x, body_y, hip_x + s * spread, by - leg_r, leg_r)
    if horse:
        poll = (cx + f * (rx + 0.08 * hh), body_y - 0.6 * hh)
        neck = c.capsule(cx + f * 0.7 * rx, body_y - 0.4 * ry, *poll, 0.1 * hh)
        head = neck | c.capsule(*poll, cx + f * (rx + 0.3 * hh), body_y - 0.42 * hh, 0.07 * hh)
        mane_root = (cx + f * 0.55 * rx, body_y - ry)
        extra = c.capsule(*mane_root, poll[0] - f * 0.05 * hh, poll[1], 0.045 * hh)
        tail = c.capsule(cx - f * rx, body_y - 0.3 * ry, cx - f * (rx + 0.12 * hh), body_y + 0.35 * hh,
                         0.05 * hh)
        eye = c.ellipse(poll[0] + f * 0.08 * hh, poll[1] + 0.04 * hh, 0.05 * hh, 0.05 * hh)
    else:
        hx, hy = cx + f * (rx + 0.15 * hh), body_y - (0.1 if gait == 'lie' else 0.35) * hh
        head = c.ellipse(hx, hy, 0.24 * hh, 0.2 * hh) | c.ellipse(hx + f * 0.22 * hh, hy + 0.05 * hh,
                                                                   0.12 * hh, 0.08 * hh)
        extra = c.ellipse(hx - f * 0.1 * hh, hy - 0.1 * hh, 0.08 * hh, 0.2 * hh)  # ear
        tail = c.capsule(cx - f * 0.9 * rx, body_y - 0.2 * ry, cx - f * (rx + 0.15 * hh),
                         body_y - 0.45 * hh, max(0.05 * hh, 0.6))
        eye = c.ellipse(hx + f * 0.06 * hh, hy - 0.06 * hh, 0.06 * hh, 0.06 * hh)
    parts = [(legs | body | head, coat), (tail, dark if horse else coat), (extra, dark),
             (eye, _Look(_DARK, 'flat', 0, 2))]
    return _Layer(_CLASS[name], depth, parts)


def _car(c: _Canvas, cx: float, by: float, length: float, f: int, lit: bool, depth: float) -> _Layer:
    rng = c.rng
    hc = 0.42 * length
    paint = _Look(_jitter(rng, _pick(rng, _CAR_PAINT), 8), 'vgrad', 12, 3)
    x1, x2 = cx - length / 2, cx + length / 2
    body = c.rect(x1, by - 0.62 * hc, x2, by - 0.2 * hc)
    cabin = c.polygon((cx - 0.32 * length, by - 0.6 * hc), (cx - 0.18 * length, by - hc),
                      (cx + 0.16 * length, by - hc), (cx + 0.32 * length, by - 0.6 * hc))
    window = c.polygon((cx - 0.25 * length, by - 0.64 * hc), (cx - 0.15 * length, by - 0.92 * hc),
                       (cx + 0.13 * length, by - 0.92 * hc), (cx + 0.25 * length, by - 0.64 * hc))
    wheel_r = 0.2 * hc
    wheels = c.ellipse(cx - 0.3 * length, by - wheel_r, wheel_r, wheel_r)
    wheels |= c.ellipse(cx + 0.3 * length, by - wheel_r, wheel_r, wheel_r)
    front = x2 if f > 0 else x1
    light = c.rect(min(front, front - f * 0.07 * length), by - 0.55 * hc,
                   max(front, front - f * 0.07 * length), by - 0.42 * hc)
    light_look = _Look((255, 230, 60), 'flat', 0, 3) if lit else _Look((120, 120, 110), 'flat', 0, 3)
    parts = [(body | cabin, paint), (window, _Look((150, 200, 230), 'vgrad', 20, 3)),
             (wheels, _Look((20, 20, 20), 'flat', 0, 3)), (light, light_look)]
    return _Layer(_CLASS['car'], depth, parts)


def _bicycle(c: _Canvas, cx: float, by: float, rw: float, f: int, depth: float) -> tuple[_Layer, float]:
    """A bicycle with wheels of radius ``rw``; returns the layer and the saddle's y."""
    frame_look = _Look(_jitter(c.rng, _pick(c.rng, _BRIGHT), 10), 'flat', 0, 4)
    t = max(0.14 * rw, 0.6)
    back, front = (cx - f * 1.2 * rw, by - rw), (cx + f * 1.2 * rw, by - rw)
    saddle, pedal = (cx - f * 0.35 * rw, by - 2.1 * rw), (cx, by - rw)
    bar = (cx + f * 0.9 * rw, by - 2.3 * rw)
    wheels = np.zeros((c.h, c.w), dtype=bool)
    for wx, wy in (back, front):
        wheels |= c.ellipse(wx, wy, rw, rw) & ~c.ellipse(wx, wy, 0.68 * rw, 0.68 * rw)
    frame = (c.capsule(*back, *saddle, t) | c.capsule(*saddle, *pedal, t) | c.capsule(*pedal, *back, t)
             | c.capsule(*pedal, *bar, t) | c.capsule(*bar, *front, t)
             | c.capsule(saddle[0] - 0.25 * rw, saddle[1], saddle[0] + 0.25 * rw, saddle[1], t))
    return _Layer(_CLASS['bicycle'], depth, [(wheels, _Look((25, 25, 25), 'flat', 0, 3)),
                                             (frame, frame_look)]), saddle[1] - t


def _bench(c: _Canvas, cx: float, by: float, length: float, seat_y: float, depth: float) -> _Layer:
    wood = _Look(_jitter(c.rng, (140, 95, 50)), 'planks', 18, 4)
    t = max(0.03 * length, 0.7)
    seat = c.rect(cx - length / 2, seat_y, cx + length / 2, seat_y + 2 * t)
    back = c.rect(cx - length / 2, seat_y - 0.28 * length, cx + length / 2, seat_y - 0.1 * length)
    legs = np.zeros_like(seat)
    for s in (-1, 1):
        x = cx + s * 0.42 * length
        legs |= c.capsule(x, seat_y - 0.28 * length, x, by - t, t)
    iron = _Look((50, 50, 55), 'flat', 0, 3)
    return _Layer(_CLASS['bench'], depth, [(legs, iron), (seat | back, wood)])


def _chair(c: _Canvas, cx: float, by: float, width: float, seat_y: float, f: int,
           depth: float) -> _Layer:
    look = _Look(_jitter(c.rng, _pick(c.rng, ((150, 100, 55), (170, 40, 40))), 8), 'stripes', 10, 4)
    t = max(0.08 * width, 0.7)
    seat = c.rect(cx - width / 2, seat_y, cx + width / 2, seat_y + 2 * t)
    back_x = cx - f * width / 2
    back = c.capsule(back_x, seat_y, back_x, seat_y - 1.1 * width, 1.3 * t)
    legs = c.capsule(cx - width / 2 + t, seat_y, cx - width / 2 + t, by - t, t)
    legs |= c.capsule(cx + width / 2 - t, seat_y, cx + width / 2 - t, by - t, t)
    return _Layer(_CLASS['chair'], depth, [(seat | back | legs, look)])


def _table(c: _Canvas, cx: float, by: float, length: float, top_y: float, depth: float) -> _Layer:
    wood = _Look(_jitter(c.rng, (120, 75, 40)), 'planks', 14, 4)
    t = max(0.04 * length, 0.8)
    top = c.rect(cx - length / 2, top_y, cx + length / 2, top_y + 2 * t)
    legs = c.capsule(cx - 0.42 * length, top_y, cx - 0.42 * length, by - t, t)
    legs |= c.capsule(cx + 0.42 * length, top_y, cx + 0.42 * length, by - t, t)
    return _Layer(_CLASS['dining table'], depth, [(top | legs, wood)])


def _cup(c: _Canvas, cx: float, bottom: float, size: float, depth: float) -> _Layer:
    colour = _jitter(c.rng, _pick(c.rng, ((240, 240, 235), (220, 60, 50), (60, 120, 200))))
    body = c.rect(cx - 0.35 * size, bottom - size, cx + 0.35 * size, bottom)
    handle = c.ellipse(cx + 0.45 * size, bottom - 0.55 * size, 0.22 * size, 0.25 * size)
    handle &= ~c.ellipse(cx + 0.45 * size, bottom - 0.55 * size, 0.1 * size, 0.12 * size)
    coffee = c.rect(cx - 0.3 * size, bottom - size, cx + 0.3 * size, bottom - 0.85 * size)
    return _Layer(_CLASS['cup'], depth, [(body | handle, _Look(colour, 'flat', 0, 3)),
                                         (coffee, _Look((90, 55, 30), 'flat', 0, 3))])


def _tv(c: _Canvas, cx: float, bottom: float, width: float, depth: float) -> _Layer:
    hgt = 0.62 * width
    frame = c.rect(cx - width / 2, bottom - hgt - 0.12 * width, cx + width / 2, bottom - 0.12 * width)
    stand = c.rect(cx - 0.15 * width, bottom - 0.14 * width, cx + 0.15 * width, bottom)
    screen = c.rect(cx - 0.42 * width, bottom - hgt - 0.05 * width,
                    cx + 0.42 * width, bottom - 0.19 * width)
    glow = _Look(_jitter(c.rng, (70, 130, 190), 15), 'vgrad', 25, 4)
    black = _Look((30, 30, 35), 'flat', 0, 2)
    return _Layer(_CLASS['tv'], depth, [(frame | stand, black), (screen, glow)])


def _clock(c: _Canvas, cx: float, cy: float, r: float, depth: float) -> _Layer:
    rim = c.ellipse(cx, cy, r, r)
    face = c.ellipse(cx, cy, 0.78 * r, 0.78 * r)
    angle = c.rng.uniform(0, 2 * math.pi)
    hands = c.capsule(cx, cy, cx, cy - 0.6 * r, 0.1 * r)
    hands |= c.capsule(cx, cy, cx + 0.45 * r * math.cos(angle), cy + 0.45 * r * math.sin(angle), 0.1 * r)
    return _Layer(_CLASS['clock'], depth, [(rim, _Look(_jitter(c.rng, (60, 40, 30)), 'flat', 0, 3)),
                                           (face, _Look((245, 245, 240), 'flat', 0, 2)),
                                           (hands & face, _Look(_DARK, 'flat', 0, 2))])


def _umbrella(c: _Canvas, hand: tuple[float, float], top: float, radius: float, depth: float) -> _Layer:
    cx = hand[0]
    canopy = c.ellipse(cx, top + radius * 0.7, radius, radius * 0.7) & (c.yy < top + radius * 0.7)
    handle = c.capsule(cx, top + 0.5 * radius, *hand, max(0.06 * radius, 0.6))
    color = _jitter(c.rng, _pick(c.rng, _BRIGHT), 10)
    return _Layer(_CLASS['umbrella'], depth, [(handle, _Look(_DARK, 'flat', 0, 2)),
                                              (canopy, _Look(color, 'stripes', 30, 4))])


def _ball(c: _Canvas, cx: float, cy: float, r: float, depth: float) -> _Layer:
    look = _Look((235, 235, 235), 'checker', 90, 3)
    return _Layer(_CLASS['sports ball'], depth, [(c.ellipse(cx, cy, r, r), look)])


def _bird(c: _Canvas, cx: float, cy: float, span: float) -> _Layer:
    body = c.ellipse(cx, cy, 0.2 * span, 0.09 * span)
    wings = np.zeros_like(body)
    for s in (-1, 1):
        wings |= c.polygon((cx + s * 0.05 * span, cy), (cx + s * 0.5 * span, cy - 0.3 * span),
                           (cx + s * 0.25 * span, cy - 0.05 * span))
    colour = _jitter(c.rng, _pick(c.rng, ((40, 40, 45), (110, 90, 70), (245, 245, 245))), 6)
    look = _Look(colour, 'flat', 0, 3)
    return _Layer(_CLASS['bird'], 5.0, [(body | wings, look)])


def _kite(c: _Canvas, cx: float, cy: float, w: float) -> _Layer:
    h = 1.4 * w
    diamond = c.polygon((cx, cy - h / 2), (cx + w / 2, cy - 0.1 * h), (cx, cy + h / 2),
                        (cx - w / 2, cy - 0.1 * h))
    tail = c.capsule(cx, cy + h / 2, cx - 0.2 * w, cy + 0.8 * h, 0.06 * w)
    tail |= c.capsule(cx - 0.2 * w, cy + 0.8 * h, cx + 0.1 * w, cy + 1.05 * h, 0.06 * w)
    a, b = _jitter(c.rng, _pick(c.rng, _BRIGHT)), _jitter(c.rng, _pick(c.rng, _BRIGHT))
    return _Layer(_CLASS['kite'], 5.0, [(diamond | tail, _Look(a, 'flat', 0, 4)),
                                        (diamond & (c.xx > cx), _Look(b, 'flat', 0, 4))])


def _airplane(c: _Canvas, cx: float, cy: float, length: float, f: int) -> _Layer:
    fuselage = c.ellipse(cx, cy, 0.5 * length, 0.07 * length)
    wing = c.polygon((cx + f * 0.1 * length, cy), (cx - f * 0.12 * length, cy + 0.22 * length),
                     (cx - f * 0.2 * length, cy + 0.22 * length), (cx - f * 0.05 * length, cy))
    fin = c.polygon((cx - f * 0.32 * length, cy), (cx - f * 0.5 * length, cy - 0.2 * length),
                    (cx - f * 0.48 * length, cy))
    white = _Look(_jitter(c.rng, (225, 225, 230), 6), 'flat', 0, 3)
    return _Layer(_CLASS['airplane'], 5.0, [(fuselage | wing, white),
                                            (fin, _Look(_jitter(c.rng, (30, 70, 170)), 'flat', 0, 3))])


def _boat(c: _Canvas, cx: float, water: float, length: float, depth: float) -> _Layer:
    deck, keel = water - 0.14 * length, water + 0.06 * length
    hull = c.polygon((cx - length / 2, deck), (cx + length / 2, deck), (cx + 0.35 * length, keel),
                     (cx - 0.35 * length, keel))
    mast_top = water - 0.7 * length
    mast = c.capsule(cx, deck, cx, mast_top, max(0.02 * length, 0.6))
    boom = water - 0.2 * length
    sail = c.polygon((cx + 0.04 * length, mast_top + 0.04 * length), (cx + 0.04 * length, boom),
                     (cx + 0.38 * length, boom))
    paint = _jitter(c.rng, _pick(c.rng, ((150, 80, 40), (240, 240, 240), (180, 40, 40))))
    return _Layer(_CLASS['boat'], depth, [(hull | mast, _Look(paint, 'planks', 12, 4)),
                                          (sail, _Look((250, 250, 245), 'flat', 0, 3))])


# ---------------------------------------------------------------------------------------------
# scenes


@dataclass
class _Ground:
    """A stuff layer things stand on, with the y range where feet may go and a size unit."""

    layer: _Layer
    top: float
    bottom: float
    person_h: float  # person height at the back of the range, in pixels

    def scale(self, by: float) -> float:
        return 0.8 + 0.4 * (by - self.top) / max(self.bottom - self.top, 1.0)


@dataclass
class _Setting:
    ground: _Ground
    sky: tuple[_Layer, float] | None = None  # (the band a flyer flies over, lowest y of clear sky)
    sea: _Ground | None = None
    wall: tuple[_Layer, float] | None = None  # (wall, lowest y of the wall)
    actors: dict[str, float] = field(default_factory=dict)  # actor name -> weight


def _sky(c: _Canvas) -> _Layer:
    blue = _jitter(c.rng, (110, 160, 225), 12)
    return c.stuff('sky-other-merged', np.ones((c.h, c.w), dtype=bool), _Look(blue, 'vgrad', 25, 2))


def _horizon_band(c: _Canvas, horizon: float, kind: str) -> float:
    """Tree line, mountains or buildings standing on the horizon; returns the band's highest y."""
    rng = c.rng
    if kind == 'tree':
        crowns = np.abs(np.sin(c.cols / rng.uniform(3, 6) + rng.uniform(0, 6)))
        top = horizon - c.h * (rng.uniform(0.08, 0.14) + 0.05 * crowns)
        c.stuff('tree-merged', c.below(top), _Look(_jitter(rng, (40, 100, 45)), 'blobs', 25, 8))
    elif kind == 'mountain':
        peaks = rng.uniform(0, c.w, 3)
        heights = c.h * rng.uniform(0.1, 0.25, 3)
        slopes = heights[:, None] - 0.9 * np.abs(c.cols[None] - peaks[:, None])
        top = np.minimum(horizon - slopes.max(0).clip(0), horizon - 2)
        c.stuff('mountain-merged', c.below(top), _Look(_jitter(rng, (120, 115, 140)), 'vgrad', 25, 4))
    else:
        edges = np.sort(rng.uniform(0, c.w, 4))
        heights = c.h * rng.uniform(0.1, 0.3, 5)
        top = horizon - heights[np.searchsorted(edges, c.cols)]
        c.stuff('building-other-merged', c.below(top),
                _Look(_jitter(rng, _pick(rng, ((150, 150, 155), (160, 90, 70)))), 'windows', 25, 4))
    return float(np.min(top))


def _field(c: _Canvas) -> _Setting:
    rng = c.rng
    horizon = c.h * rng.uniform(0.38, 0.52)
    _sky(c)
    clear = horizon - 0.03 * c.h
    band = _pick(rng, ('none', 'none', 'tree', 'mountain'))
    if band != 'none':
        clear = _horizon_band(c, horizon, band)
    line = c.wavy(horizon, 0.02 * c.h, rng.uniform(0.6, 1.5) * c.w)
    name = 'grass-merged' if rng.random() < 0.75 else 'snow'
    look = (_Look(_jitter(rng, (70, 150, 60)), 'streaks', 25, 6) if name == 'grass-merged'
            else _Look(_jitter(rng, (235, 240, 250), 5), 'streaks', 8, 3))
    ground = c.stuff(name, c.below(line), look)
    return _Setting(_Ground(ground, float(line.max()) + 1, c.h - 2, 0.36 * c.u), (ground, clear - 1),
                    actors={'person': 4, 'walker': 2, 'horse': 1.3, 'dog': 1.5, 'bench': 0.8,
                            'kicker': 0.6, 'umbrella': 0.3, 'bird': 1.2, 'kite': 0.6})


def _street(c: _Canvas) -> _Setting:
    rng = c.rng
    horizon = c.h * rng.uniform(0.4, 0.52)
    _sky(c)
    clear = horizon - 1
    if rng.random() < 0.6:
        clear = _horizon_band(c, horizon, 'building')
    road_mask = c.yy >= horizon
    lane_y = (horizon + c.h) / 2
    dashes = c.rect(0, lane_y - 0.6, c.w, lane_y + 0.6) & ((c.xx + rng.uniform(0, 10)) % 10 < 5)
    road = c.stuff('road', road_mask, _Look(_jitter(rng, (85, 85, 90), 6), 'streaks', 6, 6),
                   (dashes, _Look((240, 240, 230), 'flat', 0, 3)))
    return _Setting(_Ground(road, horizon + 1, c.h - 2, 0.36 * c.u), (road, clear - 1),
                    actors={'car': 3.5, 'person': 3, 'walker': 1.5, 'bicycle': 1, 'dog': 0.4,
                            'umbrella': 0.35, 'bird': 0.6, 'airplane': 0.5})


def _beach(c: _Canvas) -> _Setting:
    rng = c.rng
    horizon = c.h * rng.uniform(0.32, 0.45)
    _sky(c)
    sea = c.stuff('sea', c.yy >= horizon, _Look(_jitter(rng, (40, 90, 170)), 'waves', 18, 4))
    shore = c.wavy(c.h * rng.uniform(0.65, 0.75), 0.02 * c.h, rng.uniform(0.5, 1.0) * c.w)
    sand = c.stuff('sand', c.below(shore), _Look(_jitter(rng, (220, 195, 140)), 'flat', 0, 10))
    return _Setting(_Ground(sand, float(shore.max()) + 1, c.h - 2, 0.4 * c.u), (sea, horizon - 2),
                    sea=_Ground(sea, horizon + 1, float(shore.min()) - 2, 0.36 * c.u),
                    actors={'boat': 2.5, 'person': 3, 'walker': 1.2, 'dog': 0.8, 'umbrella': 0.25,
                            'bird': 1.2, 'kite': 0.6})


def _indoor(c: _Canvas) -> _Setting:
    rng = c.rng
    floor_y = c.h * rng.uniform(0.5, 0.62)
    paint = _jitter(rng, _pick(rng, ((225, 215, 190), (190, 210, 200), (230, 200, 200))), 8)
    wall = c.stuff('wall-other-merged', np.ones((c.h, c.w), dtype=bool), _Look(paint, 'flat', 0, 3))
    floor = c.stuff('floor-wood', c.yy >= floor_y, _Look(_jitter(rng, (160, 110, 65)), 'planks', 15, 5))
    return _Setting(_Ground(floor, floor_y + 1, c.h - 2, 0.5 * c.u), wall=(wall, floor_y - 1),
                    actors={'table': 2.5, 'chair': 1.5, 'person': 2.5, 'walker': 0.6, 'holder': 0.35,
                            'dog': 0.8, 'clock': 0.9})


_SETTINGS: dict[str, Callable[[_Canvas], _Setting]] = {
    'field': _field, 'street': _street, 'beach': _beach, 'indoor': _indoor}
_SETTING_P = (0.35, 0.25, 0.15, 0.25)


# ---------------------------------------------------------------------------------------------
# actors: each returns a group at a random position (or None when the scene has no room for it)


def _feet(c: _Canvas, g: _Ground) -> tuple[float, float, int]:
    """Where to stand (x, y of the feet) and which way to face.

    Anywhere on ``g``; or, once something stands there, often in a row with it (same ground line,
    a little to the side) or partly in front of / behind it (another ground line, close in x).
    """
    rng = c.rng
    f = 1 if rng.random() < 0.5 else -1
    spots = [(x, y) for layer, x, y in c.spots if layer is g.layer]
    mode = rng.random()
    if spots and mode < 0.6:
        x, y = spots[int(rng.integers(len(spots)))]
        side = 1 if rng.random() < 0.5 else -1
        if mode < 0.35:
            cx, by = x + side * rng.uniform(0.12, 0.3) * c.w, y + rng.normal(0, 0.015 * c.h)
        else:
            cx, by = x + side * rng.uniform(0.03, 0.12) * c.w, y + side * rng.uniform(0.06, 0.2) * c.h
        return float(np.clip(cx, 0.05 * c.w, 0.95 * c.w)), float(np.clip(by, g.top, g.bottom)), f
    return float(rng.uniform(0.08, 0.92) * c.w), float(rng.uniform(g.top, g.bottom)), f


def _sized_spot(c: _Canvas, g: _Ground, scale: float = 1.0, low: float = 0.9, high: float = 1.1
               ) -> tuple[float, float, int, float]:
    """:func:`_feet` on ``g`` and the height of what stands there: ``scale`` times a person's height
    at that depth, times a random factor in ``[low, high)``."""
    cx, by, f = _feet(c, g)
    return cx, by, f, scale * g.person_h * g.scale(by) * c.rng.uniform(low, high)


def _on_ground(layer: _Layer, g: _Ground, cx: float, by: float, predicate: str = 'on') -> _Group:
    """A group of ``layer`` standing on the ground ``g`` with its feet at ``(cx, by)``."""
    return _Group([layer], [_Intent(layer, g.layer, predicate, 'rests_on')], (g.layer, cx, by))


def _maybe_mount(c: _Canvas, group: _Group, carrier: _Layer, chance: float, cx: float, by: float,
                 h: float, f: int, pose: _Pose, predicate: str) -> None:
    """With probability ``chance``, add a person of height ``h`` (feet at ``(cx, by)``, facing
    ``f``, drawn in ``pose``) in front of ``carrier``, which the person is ``predicate``."""
    if c.rng.random() < chance:
        person = _person(c, cx, by, h, f, pose, 10.05 + by)
        group.add(person, _Intent(person, carrier, predicate, 'overlap'))


def _standing(c: _Canvas, s: _Setting, kind: str) -> _Group:
    g = s.ground
    cx, by, f, h = _sized_spot(c, g)
    pose = _Pose(kind)
    person = _person(c, cx, by, h, f, pose, 10 + by)
    intents = [_Intent(person, g.layer, 'standing on', 'rests_on')]
    if kind == 'walk':
        intents.append(_Intent(person, g.layer, 'walking on', 'rests_on'))
    group = _Group([person], intents, (g.layer, cx, by))
    if kind == 'kick':
        r = 0.09 * h
        ball = _ball(c, pose.foot[0] + f * r * 0.9, by - r, r, 10.05 + by)
        group.add(ball, _Intent(person, ball, 'kicking', 'touches'),
                  _Intent(ball, g.layer, 'on', 'rests_on'))
    elif kind == 'hold_up':
        umbrella = _umbrella(c, pose.hand, by - 1.25 * h, 0.32 * h, 10.05 + by)
        group.add(umbrella, _Intent(person, umbrella, 'holding', 'touches'),
                  _Intent(umbrella, person, 'over', 'over'))
    elif kind == 'hold':
        size = 0.13 * h
        cup = _cup(c, pose.hand[0] + f * 0.1 * size, pose.hand[1] + 0.6 * size, size, 10.05 + by)
        group.add(cup, _Intent(person, cup, 'holding', 'touches'))
    return group


def _horse(c: _Canvas, s: _Setting) -> _Group:
    g = s.ground
    cx, by, f, hh = _sized_spot(c, g, 0.85)
    horse = _quadruped(c, 'horse', cx, by, hh, f, 'stand', 10 + by)
    group = _on_ground(horse, g, cx, by, 'standing on')
    back = by - 0.65 * hh - 0.2 * hh
    _maybe_mount(c, group, horse, 0.35, cx + f * 0.1 * hh, by, 0.9 * hh, f,
                 _Pose('ride', seat_y=back), 'riding')
    return group


def _dog(c: _Canvas, s: _Setting) -> _Group:
    g = s.ground
    cx, by, f, hh = _sized_spot(c, g, 0.38, 0.85, 1.15)
    gait = _pick(c.rng, ('stand', 'stand', 'run', 'lie') if s.wall else ('stand', 'stand', 'run'))
    dog = _quadruped(c, 'dog', cx, by, hh, f, gait, 10 + by)
    predicate = {'stand': 'standing on', 'run': 'running on', 'lie': 'lying on'}[gait]
    return _on_ground(dog, g, cx, by, predicate)


def _seat(c: _Canvas, s: _Setting, kind: str) -> _Group:
    """A bench (outdoors) or chair (indoors), sometimes with a person sitting on it."""
    g = s.ground
    cx, by, f, h = _sized_spot(c, g)
    seat_y = by - 0.3 * h
    seat = (_bench(c, cx, by, 0.75 * h, seat_y, 10 + by) if kind == 'bench'
            else _chair(c, cx, by, 0.3 * h, seat_y, f, 10 + by))
    group = _on_ground(seat, g, cx, by)
    _maybe_mount(c, group, seat, 0.45, cx - f * 0.05 * h, by, h, f, _Pose('sit', seat_y=seat_y),
                 'sitting on')
    return group


def _table_set(c: _Canvas, s: _Setting) -> _Group:
    g = s.ground
    cx, by, _ = _feet(c, g)
    h = g.person_h * g.scale(by)
    length = h * c.rng.uniform(0.7, 1.0)
    top_y = by - 0.42 * h
    table = _table(c, cx, by, length, top_y, 10 + by)
    group = _on_ground(table, g, cx, by)
    n = int(c.rng.choice(3, p=(0.25, 0.45, 0.3)))
    slots = c.rng.permutation(3)[:n]
    for k, slot in enumerate(slots):
        x = cx + (slot - 1) * 0.3 * length
        if k == 0 and c.rng.random() < 0.5:
            item = _tv(c, x, top_y, 0.3 * h, 10.05 + by)
        else:
            item = _cup(c, x, top_y, 0.12 * h, 10.05 + by + 0.01 * k)
        group.add(item, _Intent(item, table, 'on', 'rests_on'))
    return group


def _bike(c: _Canvas, s: _Setting) -> _Group:
    g = s.ground
    cx, by, f, h = _sized_spot(c, g)
    bike, saddle_y = _bicycle(c, cx, by, 0.17 * h, f, 10 + by)
    group = _on_ground(bike, g, cx, by)
    _maybe_mount(c, group, bike, 0.6, cx - f * 0.06 * h, by, h, f, _Pose('ride', seat_y=saddle_y),
                 'riding')
    return group


def _vehicle(c: _Canvas, s: _Setting) -> _Group:
    g = s.ground
    cx, by, f, length = _sized_spot(c, g, 1.2)
    lit = bool(c.rng.random() < 0.4)
    car = _car(c, cx, by, length, f, lit, 10 + by)
    return _on_ground(car, g, cx, by, 'driving on' if lit else 'parked on')


def _flyer(c: _Canvas, s: _Setting, kind: str) -> _Group | None:
    """A bird, kite or airplane wholly in the clear sky (above any skyline), flying over the ground."""
    band, clear = s.sky
    if clear < 0.2 * c.h:
        return None
    cx = float(c.rng.uniform(0.1, 0.9) * c.w)
    cy = float(c.rng.uniform(0.08 * c.h, clear - 0.06 * c.h))
    if kind == 'bird':
        layer = _bird(c, cx, cy, c.u * c.rng.uniform(0.12, 0.18))
    elif kind == 'kite':
        layer = _kite(c, cx, cy - 0.05 * c.h, c.u * c.rng.uniform(0.07, 0.1))
    else:
        layer = _airplane(c, cx, cy, c.u * c.rng.uniform(0.3, 0.45), 1 if c.rng.random() < 0.5 else -1)
    box = _box(layer.mask)
    if box is None or box[3] > clear:
        return None
    return _Group([layer], [_Intent(layer, band, 'flying over', 'above')])


def _sail(c: _Canvas, s: _Setting) -> _Group | None:
    sea = s.sea
    water = float(c.rng.uniform(sea.top, sea.bottom))
    length = sea.person_h * sea.scale(water) * c.rng.uniform(0.7, 1.0)
    water = min(water, sea.bottom - 0.06 * length)  # the keel stays in the sea
    boat = _boat(c, float(c.rng.uniform(0.1, 0.9) * c.w), water, length, 8 + water / c.h)
    return _Group([boat], [_Intent(boat, sea.layer, 'in', 'rests_on')])


def _wall_clock(c: _Canvas, s: _Setting) -> _Group | None:
    wall, bottom = s.wall
    r = c.u * c.rng.uniform(0.05, 0.08)
    if bottom - 3 * r < 0.1 * c.h:
        return None
    cx, cy = c.rng.uniform(0.1, 0.9) * c.w, c.rng.uniform(0.1 * c.h + r, bottom - 2 * r)
    clock = _clock(c, float(cx), float(cy), r, 4.0)
    return _Group([clock], [_Intent(clock, wall, 'attached to', 'touches')])


_ACTORS: dict[str, Callable[[_Canvas, _Setting], _Group | None]] = {
    'person': lambda c, s: _standing(c, s, 'stand'),
    'walker': lambda c, s: _standing(c, s, 'walk'),
    'kicker': lambda c, s: _standing(c, s, 'kick'),
    'umbrella': lambda c, s: _standing(c, s, 'hold_up'),
    'holder': lambda c, s: _standing(c, s, 'hold'),
    'horse': _horse,
    'dog': _dog,
    'bench': lambda c, s: _seat(c, s, 'bench'),
    'chair': lambda c, s: _seat(c, s, 'chair'),
    'table': _table_set,
    'bicycle': _bike,
    'car': _vehicle,
    'bird': lambda c, s: _flyer(c, s, 'bird'),
    'kite': lambda c, s: _flyer(c, s, 'kite'),
    'airplane': lambda c, s: _flyer(c, s, 'airplane'),
    'boat': _sail,
    'clock': _wall_clock,
}


def _populate(c: _Canvas, s: _Setting) -> None:
    """Place actors drawn by the setting's weights until about 1-5 things stand in the scene."""
    names = list(s.actors)
    weights = np.asarray([s.actors[n] for n in names], dtype=float)
    target = int(c.rng.integers(1, 6))
    placed = 0
    for _ in range(2 * target):
        if placed >= target:
            break
        name = names[int(c.rng.choice(len(names), p=weights / weights.sum()))]
        group = _place(c, lambda: _ACTORS[name](c, s))
        placed += len(group.layers) if group is not None else 0
    if s.wall is not None:
        _add_gazes(c)


def _add_gazes(c: _Canvas) -> None:
    """Indoors, a person facing a tv (the tv is on the side its eye is drawn) looks at it."""
    tvs = [layer for layer in c.layers if layer.category == _CLASS['tv']]
    people = [layer for layer in c.layers if layer.category == _CLASS['person']]
    for person in people:
        for tv in tvs:
            if np.sign(c.xx[tv.mask].mean() - c.xx[person.mask].mean()) == person.facing:
                c.intents.append(_Intent(person, tv, 'looking at', 'visible'))


# ---------------------------------------------------------------------------------------------
# from layers to a panoptic image and relations


def _rests_on(s: np.ndarray, o: np.ndarray, box: tuple[int, ...]) -> bool:
    rows = np.nonzero((s[:-1] & o[1:]).any(1))[0]
    return rows.size > 0 and rows.max() >= box[3] - max(1, math.ceil((box[3] - box[1]) / 4))


def _touches(a: np.ndarray, b: np.ndarray) -> bool:
    return bool((a[:, :-1] & b[:, 1:]).any() or (a[:, 1:] & b[:, :-1]).any()
                or (a[:-1] & b[1:]).any() or (a[1:] & b[:-1]).any())


def _check(kind: str, s: np.ndarray, o: np.ndarray, bs: tuple[int, ...], bo: tuple[int, ...]) -> bool:
    if kind == 'rests_on':
        return _rests_on(s, o, bs)
    if kind == 'touches':
        return _touches(s, o)
    if kind == 'overlap':
        return _inter_area(bs, bo) > 0
    if kind == 'above':
        return bs[3] <= bo[1]
    if kind == 'over':
        return bs[1] < bo[1] and bs[0] < bo[2] and bo[0] < bs[2]
    if kind == 'visible':
        return True
    raise KeyError(kind)


def _relations(c: _Canvas, order: list[_Layer], owner: np.ndarray, kept: dict[int, int]
               ) -> list[list[int]]:
    """Relation rows ``[s, o, p]`` over kept segments (``kept``: paint index -> segment index)."""
    index = {id(layer): i for i, layer in enumerate(order)}
    visible = {i: owner == i for i in kept}
    boxes = {i: _box(v) for i, v in visible.items()}
    rows: list[list[int]] = []
    composed: set[frozenset[int]] = set()
    grounded: set[int] = set()
    for intent in c.intents:
        s, o = index[id(intent.subject)], index[id(intent.object)]
        if order[s].isthing and order[o].isthing:
            composed.add(frozenset((s, o)))
        if s in kept and o in kept and _check(intent.check, visible[s], visible[o], boxes[s], boxes[o]):
            rows.append([kept[s], kept[o], _PREDICATE[intent.predicate]])
            if intent.predicate in _GROUNDING and CLASSES[order[o].category] in GROUND_STUFF:
                grounded.add(s)
    things = [i for i in kept if order[i].isthing]
    for back in things:
        drawn = order[back].mask.sum()
        for front in things:
            if front <= back or frozenset((back, front)) in composed:
                continue
            hidden = int((order[back].mask & visible[front]).sum())
            if hidden >= max(3, 0.1 * drawn) and _inter_area(boxes[back], boxes[front]) > 0:
                rows.append([kept[front], kept[back], _PREDICATE['in front of']])
    ground_things = sorted(grounded)
    for k, a in enumerate(ground_things):
        for b in ground_things[k + 1:]:
            ba, bb = boxes[a], boxes[b]
            gap = max(bb[0] - ba[2], ba[0] - bb[2])
            if (frozenset((a, b)) not in composed and abs(ba[3] - bb[3]) <= max(2, 0.05 * c.h)
                    and gap <= 0.1 * c.w):
                left, right = (a, b) if ba[0] + ba[2] <= bb[0] + bb[2] else (b, a)
                rows.append([kept[left], kept[right], _PREDICATE['beside']])
    unique: list[list[int]] = []
    for row in rows:
        if row not in unique:
            unique.append(row)
    return unique


def _canvas_size(rng: np.random.Generator, size: int) -> tuple[int, int]:
    fw, fh = _ASPECTS[int(rng.choice(len(_ASPECTS), p=_ASPECT_P))]
    return int(round(size * fh)), int(round(size * fw))


def render_scene(rng: np.random.Generator, size: int) -> Scene:
    """Draw one random scene whose longer side is ``size`` pixels (see the module docstring)."""
    h, w = _canvas_size(rng, size)
    c = _Canvas(rng, h, w)
    names = list(_SETTINGS)
    setting = _SETTINGS[names[int(rng.choice(len(names), p=_SETTING_P))]](c)
    if rng.random() >= _P_EMPTY:
        _populate(c, setting)
    order = sorted(c.layers, key=lambda layer: layer.depth)
    rgb = np.zeros((h, w, 3), dtype=np.float32)
    owner = np.zeros((h, w), dtype=np.int64)
    for i, layer in enumerate(order):
        for mask, look in layer.parts:
            if mask.any():
                rgb[mask] = c.shade(look, mask)
        owner[layer.mask] = i
    image = np.clip(rgb + rng.normal(0, 2.0, rgb.shape), 0, 255).round().astype(np.uint8)
    areas = np.bincount(owner.ravel(), minlength=len(order))
    min_thing, min_stuff = max(6, 0.002 * h * w), 0.005 * h * w
    kept: dict[int, int] = {}
    segments: list[dict] = []
    lut = np.zeros(len(order), dtype=np.int64)
    for i, layer in enumerate(order):
        if areas[i] >= (min_thing if layer.isthing else min_stuff):
            kept[i] = len(segments)
            lut[i] = layer.category * 1000 + len(segments) + 1
            segments.append({'id': int(lut[i]), 'category_id': layer.category, 'iscrowd': 0,
                             'isthing': int(layer.isthing), 'area': int(areas[i])})
    return Scene(image, lut[owner], segments, _relations(c, order, owner, kept))


# ---------------------------------------------------------------------------------------------
# writing a dataset


class _Job(NamedTuple):
    root: str
    image_id: str
    seed: int
    split: int  # 0 train, 1 test
    index: int
    size: int


def _make_image(job: _Job) -> dict:
    """Render one image, write its JPEG and PNG under ``job.root`` and return its ``psg.json`` entry."""
    scene = render_scene(np.random.default_rng([job.seed, job.split, job.index]), job.size)
    file_name, pan_name = f'images/{job.image_id}.jpg', f'panoptic/{job.image_id}.png'
    Image.fromarray(scene.image).save(os.path.join(job.root, file_name), quality=_JPEG_QUALITY)
    Image.fromarray(id2rgb(scene.pan_ids)).save(os.path.join(job.root, pan_name))
    ids = np.asarray([s['id'] for s in scene.segments], dtype=np.int64)
    boxes = masks_to_boxes(scene.pan_ids[None] == ids[:, None, None])
    h, w = scene.pan_ids.shape
    return {
        'file_name': file_name, 'height': int(h), 'width': int(w), 'image_id': job.image_id,
        'coco_image_id': job.image_id, 'pan_seg_file_name': pan_name,
        'segments_info': scene.segments,
        'annotations': [{'bbox': [float(v) for v in box], 'bbox_mode': 0,
                         'category_id': s['category_id']} for box, s in zip(boxes, scene.segments)],
        'relations': scene.relations,
    }


def _run(jobs: list[_Job], workers: int, progress: bool) -> Iterator[dict]:
    bar = tqdm(total=len(jobs), desc='synthetic PSG', unit='img', disable=not progress)
    with bar:
        if workers <= 1:
            for job in jobs:
                yield _make_image(job)
                bar.update()
            return
        pool = ProcessPoolExecutor(max_workers=workers)
        try:
            for record in pool.map(_make_image, jobs, chunksize=8):
                yield record
                bar.update()
        finally:  # on error or Ctrl-C: drop queued images, wait for those being written
            pool.shutdown(wait=True, cancel_futures=True)


def _check_target(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f'{out} exists and is not a directory')
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f'{out} exists and is not empty; '
                              'pass overwrite=True (--overwrite) to replace it')


def _move_into_place(tmp: Path, out: Path, overwrite: bool) -> None:
    _check_target(out, overwrite)
    if out.is_dir() and any(out.iterdir()):
        old = out.parent / f'.{out.name}.old-{secrets.token_hex(4)}'
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)


def _by_count(counts: np.ndarray, names: tuple[str, ...]) -> dict[str, int]:
    """Name -> count for the nonzero counts, most frequent first."""
    return {names[k]: int(counts[k]) for k in np.argsort(-counts, kind='stable') if counts[k]}


def _summary(records: list[dict], test_ids: set[str]) -> dict:
    counts = np.zeros(len(PREDICATES), dtype=np.int64)
    classes = np.zeros(len(CLASSES), dtype=np.int64)
    for record in records:
        for _, _, p in record['relations']:
            counts[p] += 1
        for s in record['segments_info']:
            classes[s['category_id']] += 1
    no_rels = [r['image_id'] for r in records if not r['relations']]
    return {
        'num_images': len(records),
        'num_segments': int(classes.sum()),
        'num_relations': int(counts.sum()),
        'images_without_relations': len(no_rels),
        'test_images_without_relations': sum(i in test_ids for i in no_rels),
        'predicate_counts': _by_count(counts, PREDICATES),
        'class_counts': _by_count(classes, CLASSES),
    }


def generate_synthetic_psg(out_dir: str | os.PathLike, num_train: int, num_test: int, seed: int = 0,
                           size: int = 128, workers: int = 1, overwrite: bool = False,
                           progress: bool = False) -> dict:
    """Write a synthetic PSG dataset (``images/``, ``panoptic/``, ``psg.json``) to ``out_dir``.

    Train image ``j`` has id ``str(100000 + j)``, test image ``j`` has id
    ``str(100000 + num_train + j)`` and is listed in ``test_image_ids``. ``size`` is the longer
    image side (landscape 4:3, portrait 3:4 or square). The dataset is built in a hidden temporary
    folder next to ``out_dir`` and renamed into place at the end, so an interrupted run leaves
    nothing behind; an existing non-empty ``out_dir`` is replaced only with ``overwrite=True``.
    ``workers > 1`` renders in that many processes (same output).

    Returns summary statistics: ``out_dir``, ``num_train``, ``num_test``, ``num_images``,
    ``num_segments``, ``num_relations``, ``images_without_relations``,
    ``test_images_without_relations``, ``predicate_counts`` and ``class_counts`` (name -> count,
    most frequent first) and ``seconds``.
    """
    if num_train < 0 or num_test < 0 or num_train + num_test == 0:
        raise ValueError(f'need num_train >= 0, num_test >= 0 and at least one image, '
                         f'got num_train={num_train}, num_test={num_test}')
    if size < 32:
        raise ValueError(f'size must be at least 32 pixels, got {size}')
    if workers < 1:
        raise ValueError(f'workers must be at least 1, got {workers}')
    if seed < 0:
        raise ValueError(f'seed must be a non-negative integer, got {seed}')
    start = time.perf_counter()
    out = Path(out_dir).absolute()
    _check_target(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f'.{out.name}.tmp-{secrets.token_hex(4)}'
    tmp.mkdir()
    try:
        (tmp / 'images').mkdir()
        (tmp / 'panoptic').mkdir()
        jobs = [_Job(str(tmp), str(100000 + k), seed, 0, k, size) for k in range(num_train)]
        jobs += [_Job(str(tmp), str(100000 + num_train + j), seed, 1, j, size) for j in range(num_test)]
        records = list(_run(jobs, workers, progress))
        test_ids = [job.image_id for job in jobs if job.split == 1]
        psg = {'data': records, 'thing_classes': list(THING_CLASSES),
               'stuff_classes': list(STUFF_CLASSES), 'predicate_classes': list(PREDICATES),
               'test_image_ids': test_ids}
        with open(tmp / 'psg.json', 'w', encoding='utf-8') as fh:
            json.dump(psg, fh, separators=(',', ':'))
        _move_into_place(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    stats = {'out_dir': str(out), 'num_train': num_train, 'num_test': num_test}
    stats.update(_summary(records, set(test_ids)))
    stats['seconds'] = time.perf_counter() - start
    return stats
