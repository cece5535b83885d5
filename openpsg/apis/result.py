"""The named result of running a model on one image: a :class:`~openpsg.structures.Prediction`
together with the class and predicate names that make it readable.

    result = inference_image(model, 'photo.jpg')
    for t in result.top_triplets(5):
        print(t)                       # person#0 --riding--> horse#2 (0.91)
    json.dump(result.to_json(), f)     # SceneGraphResult.from_json(...) reads it back

Segment ``i`` is named ``<class>#<i>`` everywhere (JSON, drawings, :class:`Triplet`), ``i`` being
its index in ``prediction.labels``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..structures import Prediction
from ..visualization.draw import (class_name, draw_boxes, draw_panoptic, resize_for_drawing,
                                  segment_names)
from ..visualization.graph import draw_scene_graph, format_score

JSON_FORMAT = 'openpsg-scene-graph'
JSON_VERSION = 1


class Triplet(NamedTuple):
    """One relation of a result: segment indices, their class names, the predicate and the score.

    ``score`` is the row's ranking score (``prediction.triplet_scores``; the best predicate
    probability when the model gives none).
    """

    subject: int
    object: int
    subject_name: str
    object_name: str
    predicate: str
    predicate_id: int
    score: float

    def __str__(self) -> str:
        return (f'{self.subject_name}#{self.subject} --{self.predicate}--> '
                f'{self.object_name}#{self.object} ({format_score(self.score)})')


@dataclass(eq=False)
class SceneGraphResult:
    """A prediction with names. ``image_size`` is the original ``(height, width)`` the masks and
    boxes live at. Two results are equal when their :meth:`to_json` outputs are."""

    prediction: Prediction
    class_names: tuple[str, ...]
    predicate_names: tuple[str, ...]
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        self.class_names = tuple(self.class_names)
        self.predicate_names = tuple(self.predicate_names)
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SceneGraphResult):
            return NotImplemented
        return self.to_json() == other.to_json()

    @property
    def image_id(self) -> str:
        return self.prediction.image_id

    @property
    def num_segments(self) -> int:
        return self.prediction.num_segments

    def segment_names(self) -> list[str]:
        """``['person#0', 'grass-merged#1', ...]``, one per segment."""
        return segment_names(self.prediction.labels, self.class_names)

    # ------------------------------------------------------------------------------ triplets
    def _ranked_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``pairs (R, 2)``, argmax ``predicates (R,)``, ``scores (R,)`` and the ranking
        ``order``."""
        pred = self.prediction
        pairs = np.asarray(pred.pairs, dtype=np.int64).reshape(-1, 2)
        if len(pairs) == 0:
            empty = np.zeros(0, np.int64)
            return pairs, empty, np.zeros(0, np.float32), empty
        predicate_scores = np.asarray(pred.predicate_scores, dtype=np.float32)
        predicate_scores = predicate_scores.reshape(len(pairs), -1)
        scores = (predicate_scores.max(1) if pred.triplet_scores is None
                  else np.asarray(pred.triplet_scores, dtype=np.float32).reshape(len(pairs)))
        order = np.argsort(-scores, kind='stable')
        return pairs, predicate_scores.argmax(1), scores, order

    def top_triplets(self, k: int | None = 20, score_thr: float = 0.0,
                     unique_pairs: bool = True) -> list[Triplet]:
        """The ``k`` best relations (``None``: all) scoring at least ``score_thr``, best first.

        Each relation row contributes its argmax predicate, ranked by ``triplet_scores``
        (ties keep row order). With ``unique_pairs`` a (subject, object) pair appears at most once,
        from its best row; otherwise a pair may appear once per distinct predicate (an exactly
        repeated triplet is still listed once).
        """
        if k is not None and k < 0:
            raise ValueError(f'top_triplets: k must be >= 0 or None, got {k}')
        pairs, predicates, scores, order = self._ranked_rows()
        labels = np.asarray(self.prediction.labels)
        out: list[Triplet] = []
        seen: set[tuple[int, ...]] = set()
        for r in order:
            if (k is not None and len(out) >= k) or scores[r] < score_thr:
                break
            s, o, p = int(pairs[r, 0]), int(pairs[r, 1]), int(predicates[r])
            key = (s, o) if unique_pairs else (s, o, p)
            if key in seen:
                continue
            seen.add(key)
            out.append(Triplet(s, o, class_name(self.class_names, int(labels[s])),
                               class_name(self.class_names, int(labels[o])),
                               class_name(self.predicate_names, p), p, float(scores[r])))
        return out

    # ------------------------------------------------------------------------------ json
    def to_json(self, topk: int | None = None, score_thr: float = 0.0) -> dict[str, Any]:
        """A JSON-ready dict (``json.dumps`` works on it).

        Keys: ``format``, ``version``, ``image_id``, ``height``, ``width``; ``segments`` (one dict
        per segment: ``id``, ``label``, ``name``, ``score``, ``box`` xyxy, ``mask`` RLE or
        ``None``); ``triplets`` (:meth:`top_triplets` with ``topk``/``score_thr``, best first:
        ``subject``, ``object``, ``subject_name``, ``object_name``, ``predicate``,
        ``predicate_id``, ``score``); ``relations`` (the model's raw rows: ``pairs``,
        ``predicate_scores``, ``triplet_scores``, ``no_relation_scores``); ``panoptic`` (``None``,
        or the model's own panoptic map as ``shape``, ``rles``, ``labels``); ``class_names``,
        ``predicate_names``. :meth:`from_json` reads everything back but
        ``triplets``, which are derived.
        """
        d = self.prediction.to_dict()
        names = self.segment_names()
        masks = d['masks'] or [None] * len(names)
        segments = [{'id': i, 'label': int(label), 'name': names[i], 'score': score, 'box': box,
                     'mask': mask}
                    for i, (label, score, box, mask) in enumerate(zip(d['labels'], d['scores'],
                                                                       d['boxes'], masks))]
        panoptic = None
        if d['pan_id_map'] is not None and not self._panoptic_is_segments():
            panoptic = {**d['pan_id_map'], 'labels': d['pan_labels']}
        return {
            'format': JSON_FORMAT, 'version': JSON_VERSION,
            'image_id': self.image_id, 'height': self.image_size[0], 'width': self.image_size[1],
            'segments': segments,
            'triplets': [t._asdict() for t in self.top_triplets(topk, score_thr)],
            'relations': {'pairs': d['pairs'], 'predicate_scores': d['predicate_scores'],
                          'triplet_scores': d['triplet_scores'],
                          'no_relation_scores': d['no_relation_scores'],
                          'num_predicates': d['num_predicates']},
            'panoptic': panoptic,
            'class_names': list(self.class_names), 'predicate_names': list(self.predicate_names),
        }

    def _panoptic_is_segments(self) -> bool:
        pred = self.prediction
        if pred.masks is None or (pred.pan_labels is not None
                                  and not np.array_equal(pred.pan_labels, pred.labels)):
            return False
        return np.array_equal(pred.pan_id_map, pred.segment_id_map(self.image_size))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> 'SceneGraphResult':
        """Inverse of :meth:`to_json` (masks stay RLE)."""
        if not isinstance(data, dict) or data.get('format') != JSON_FORMAT:
            raise ValueError(f'not an openpsg scene-graph JSON (expected a dict with '
                             f'format={JSON_FORMAT!r}, as written by SceneGraphResult.to_json)')
        if data.get('version') != JSON_VERSION:
            raise ValueError(f'scene-graph JSON version {data.get("version")!r} is not supported '
                             f'(this openpsg reads version {JSON_VERSION})')
        segments = data['segments']
        masks = [s['mask'] for s in segments]
        if segments and any(m is None for m in masks):
            masks = None
        rel = data['relations']
        panoptic = data.get('panoptic')
        prediction = Prediction.from_dict({
            'image_id': data['image_id'],
            'labels': [s['label'] for s in segments], 'scores': [s['score'] for s in segments],
            'boxes': [s['box'] for s in segments], 'masks': masks,
            'pairs': rel['pairs'], 'predicate_scores': rel['predicate_scores'],
            'triplet_scores': rel['triplet_scores'],
            'no_relation_scores': rel['no_relation_scores'],
            'num_predicates': rel['num_predicates'],
            'pan_id_map': None if panoptic is None else {'shape': panoptic['shape'],
                                                         'rles': panoptic['rles']},
            'pan_labels': None if panoptic is None else panoptic['labels']})
        return cls(prediction, tuple(data['class_names']), tuple(data['predicate_names']),
                   (int(data['height']), int(data['width'])))

    # ------------------------------------------------------------------------------ drawing
    def draw_panoptic(self, image: np.ndarray, alpha: float = 0.5, min_size: int = 0) -> np.ndarray:
        """``image (H, W, 3)`` uint8 with every segment tinted in its class colour (the colour of
        its node in :meth:`draw_graph`) and named ``<class>#<i>``; boxes for box-only models.
        The drawing has :func:`~openpsg.visualization.draw.drawing_size`: an image whose short
        side is below ``min_size`` is enlarged by an integer factor (pixel repetition), so that
        the names stay readable on small images, and the long side is at most
        :data:`~openpsg.visualization.draw.MAX_DRAWING_SIDE` pixels."""
        image = np.asarray(image)
        if tuple(image.shape[:2]) != self.image_size:
            raise ValueError(f'draw_panoptic: image is {image.shape[:2]} but the result is for an '
                             f'image of {self.image_size} (height, width)')
        pred = self.prediction
        labels = np.asarray(pred.labels, dtype=np.int64)
        if pred.masks is None:  # a box-only model
            boxes = np.asarray(pred.boxes, dtype=np.float32).reshape(-1, 4)
            image, _, boxes = resize_for_drawing(image, boxes=boxes, min_size=min_size)
            return draw_boxes(image, boxes, labels, self.class_names, texts=self.segment_names())
        image, masks, _ = resize_for_drawing(image, pred.dense_masks(self.image_size),
                                             min_size=min_size)
        return draw_panoptic(image, masks, labels, self.class_names, alpha,
                             texts=self.segment_names())

    def draw_graph(self, k: int | None = 20, score_thr: float = 0.0, unique_pairs: bool = True,
                   size: tuple[int, int] | None = None, title: str | None = None) -> np.ndarray:
        """The :meth:`top_triplets` drawn as a graph (see
        :func:`openpsg.visualization.graph.draw_scene_graph`); nodes in their masks' colours."""
        triplets = self.top_triplets(k, score_thr, unique_pairs)
        rels = np.array([[t.subject, t.object, t.predicate_id] for t in triplets],
                        dtype=np.int64).reshape(-1, 3)
        scores = np.array([t.score for t in triplets], dtype=np.float32)
        return draw_scene_graph(self.prediction.labels, rels, self.class_names,
                                self.predicate_names, scores=scores, size=size, title=title)
