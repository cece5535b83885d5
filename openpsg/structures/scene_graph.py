"""Containers passed between the data layer, the models and the evaluators.

* :class:`Sample` — one training/test image after the transform pipeline (torch tensors).
* :class:`GroundTruth` — one test image's annotation at original resolution, for evaluation (numpy).
* :class:`Prediction` — what every model returns per image, whatever its kind (numpy). The
  evaluators, the submission writer, the visualiser and the demo consume only this.

Label conventions are those of :mod:`openpsg.structures.labels` (0-based objects and predicates).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from ..errors import InputError
from ..safe_json import describe
from .labels import NUM_PREDICATES
from .masks import VOID, decode_rle, encode_rle, id_map_to_masks, masks_to_id_map


@dataclass
class ImageMeta:
    """Per-image bookkeeping carried through the pipeline.

    ``ori_shape``/``img_shape``/``pad_shape`` are ``(H, W)``: original image, after resizing, after
    padding. ``scale_factor`` is ``(w_scale, h_scale)`` from original to resized pixels.
    """

    image_id: str
    file_name: str = ''
    pan_seg_file_name: str = ''
    ori_shape: tuple[int, int] = (0, 0)
    img_shape: tuple[int, int] = (0, 0)
    pad_shape: tuple[int, int] = (0, 0)
    scale_factor: tuple[float, float] = (1.0, 1.0)
    flip: bool = False


@dataclass
class Sample:
    """One image after the pipeline.

    ``img (3, H, W)`` float normalised (``H, W`` = ``meta.pad_shape``); ``labels (N,)`` int64 object
    classes; ``boxes (N, 4)`` float32 xyxy in input pixels; ``masks (N, H, W)`` bool aligned with
    ``img``; ``rels (M, 3)`` int64 ``(subject, object, predicate)``. ``sem_seg (h, w)`` int64 is
    the optional semantic map used to train segmenters (class per pixel, 255 = unlabelled, at the
    resolution the pipeline's ``SegRescale`` chose).
    """

    img: torch.Tensor
    meta: ImageMeta
    labels: torch.Tensor
    boxes: torch.Tensor
    masks: torch.Tensor
    rels: torch.Tensor
    sem_seg: torch.Tensor | None = None


@dataclass
class GroundTruth:
    """One image's annotation at original resolution, as the evaluators read it.

    ``labels (N,)`` int64, ``boxes (N, 4)`` float32 xyxy, ``id_map (H, W)`` int32 (segment index per
    pixel, ``-1`` void), ``iscrowd (N,)`` bool, ``rels (M, 3)`` int64 (test-split rule: exact
    duplicates removed, several predicates per pair kept). ``rels_raw (M', 3)`` are the relations
    exactly as annotated, duplicates included (the ``fair`` protocol counts them). ``id_map`` may be
    ``None`` for box-only datasets.
    """

    image_id: str
    labels: np.ndarray
    boxes: np.ndarray
    rels: np.ndarray
    id_map: np.ndarray | None = None
    iscrowd: np.ndarray | None = None
    rels_raw: np.ndarray | None = None

    @property
    def num_segments(self) -> int:
        return len(self.labels)

    def masks(self) -> np.ndarray:
        """Dense ``(N, H, W)`` bool masks decoded from the id map."""
        if self.id_map is None:
            raise ValueError(f'image {self.image_id}: ground truth has no masks (box-only dataset)')
        return id_map_to_masks(self.id_map, self.num_segments)


def no_relations(num_predicates: int = NUM_PREDICATES) -> dict[str, np.ndarray]:
    """The relation fields of a :class:`Prediction` with no relation: ``pairs (0, 2)``,
    ``predicate_scores (0, num_predicates)``, ``triplet_scores (0,)``, ``no_relation_scores (0,)``."""
    return dict(pairs=np.zeros((0, 2), np.int64),
                predicate_scores=np.zeros((0, num_predicates), np.float32),
                triplet_scores=np.zeros(0, np.float32), no_relation_scores=np.zeros(0, np.float32))


ARRAY_FIELDS = ('labels', 'scores', 'boxes', 'pairs', 'predicate_scores', 'triplet_scores',
                'no_relation_scores', 'pan_labels')


@dataclass
class Prediction:
    """What a model returns for one image.

    Segments: ``labels (N,)`` int64, ``scores (N,)`` float32, ``boxes (N, 4)`` float32 xyxy at
    original size, ``masks`` at original size ``(H, W)`` either dense ``(N, H, W)`` bool or a list of
    N RLE dicts (``None`` for box-only models).

    Relations, ranked best-first: ``pairs (R, 2)`` int64 segment indices, ``predicate_scores
    (R, P)`` float32 probabilities of the P predicates, ``triplet_scores (R,)`` float32 (the ranking
    score, non-increasing in row order), ``no_relation_scores (R,)`` optional probability of "no
    relation" (used by the ``fair`` protocol's no-graph-constraint score).

    Panoptic segmentation: ``pan_id_map (H, W)`` int32 with values indexing ``pan_labels (P,)`` and
    ``-1`` void. When ``None`` it is derived from ``masks`` (lowest index wins on overlap).
    """

    image_id: str
    labels: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray | list[dict] | None
    pairs: np.ndarray
    predicate_scores: np.ndarray
    triplet_scores: np.ndarray
    no_relation_scores: np.ndarray | None = None
    pan_id_map: np.ndarray | None = None
    pan_labels: np.ndarray | None = None

    @classmethod
    def empty(cls, image_id: str, shape: tuple[int, int],
              num_predicates: int = NUM_PREDICATES) -> 'Prediction':
        """No segment and no relation for an image of original size ``shape = (H, W)``: dense masks
        ``(0, H, W)`` and an all-void panoptic map (the evaluators skip such images)."""
        return cls(image_id=image_id, labels=np.zeros(0, np.int64), scores=np.zeros(0, np.float32),
                   boxes=np.zeros((0, 4), np.float32), masks=np.zeros((0, *shape), bool),
                   **no_relations(num_predicates), pan_id_map=np.full(shape, VOID, np.int32))

    @property
    def num_segments(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, int] | None:
        """Original ``(H, W)`` the masks live at, or ``None`` when there are no masks to tell."""
        if isinstance(self.masks, np.ndarray):
            return tuple(self.masks.shape[1:])
        if self.masks:
            return tuple(self.masks[0]['size'])
        if self.pan_id_map is not None:
            return tuple(self.pan_id_map.shape)
        return None

    def dense_masks(self, shape: tuple[int, int] | None = None) -> np.ndarray:
        """``(N, H, W)`` bool masks; ``shape`` is required only when there is no segment."""
        if self.masks is None:
            raise ValueError(f'image {self.image_id}: prediction has no masks')
        if isinstance(self.masks, np.ndarray):
            return self.masks.astype(bool, copy=False)
        return decode_rle(self.masks, shape or self.image_shape)

    def rle_masks(self) -> list[dict]:
        if self.masks is None:
            raise ValueError(f'image {self.image_id}: prediction has no masks')
        if isinstance(self.masks, np.ndarray):
            return encode_rle(self.masks)
        return list(self.masks)

    def segment_id_map(self, shape: tuple[int, int] | None = None) -> np.ndarray:
        """``(H, W)`` id map of the relation segments (lowest index wins on overlap)."""
        return masks_to_id_map(self.dense_masks(shape))

    def panoptic(self, shape: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The panoptic segmentation as ``(id_map (H, W), labels (P,))``."""
        if self.pan_id_map is not None:
            labels = self.labels if self.pan_labels is None else self.pan_labels
            return self.pan_id_map, labels
        return self.segment_id_map(shape), self.labels

    def compact(self) -> 'Prediction':
        """A copy whose masks are RLE (a few KB per image instead of N*H*W bytes)."""
        masks = None if self.masks is None else self.rle_masks()
        return Prediction(**{**self.__dict__, 'masks': masks})

    def to_dict(self, tensors: bool = False) -> dict[str, Any]:
        """Plain containers only: JSON-ready lists, or with ``tensors=True`` the array fields as
        CPU tensors (compact and fast for ``torch.save``); both are ``weights_only`` loadable."""
        out: dict[str, Any] = {'image_id': self.image_id}
        for key in ARRAY_FIELDS:
            value = getattr(self, key)
            if value is not None:
                value = torch.from_numpy(np.array(value)) if tensors else np.asarray(value).tolist()
            out[key] = value
        out['num_predicates'] = int(np.asarray(self.predicate_scores).shape[1])
        out['masks'] = None if self.masks is None else self.rle_masks()
        out['pan_id_map'] = None
        if self.pan_id_map is not None:
            pan = self.pan_id_map
            n = int(pan.max()) + 1 if pan.size else 0
            out['pan_id_map'] = {'shape': list(pan.shape), 'rles': encode_rle(id_map_to_masks(pan, n))}
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> 'Prediction':
        """Inverse of :meth:`to_dict` (masks stay RLE)."""
        def arr(key: str, dtype: Any, width: int | None = None) -> np.ndarray | None:
            if d.get(key) is None:
                return None
            a = np.asarray(d[key], dtype=dtype)
            return a.reshape(-1, width) if width is not None else a

        pan = None
        if d.get('pan_id_map') is not None:
            shape = tuple(d['pan_id_map']['shape'])
            pan = masks_to_id_map(decode_rle(d['pan_id_map']['rles'], shape))
        num_pred = int(d['num_predicates'])
        return cls(image_id=str(d['image_id']), labels=arr('labels', np.int64),
                   scores=arr('scores', np.float32), boxes=arr('boxes', np.float32, 4),
                   masks=d.get('masks'), pairs=arr('pairs', np.int64, 2),
                   predicate_scores=arr('predicate_scores', np.float32, num_pred),
                   triplet_scores=arr('triplet_scores', np.float32),
                   no_relation_scores=arr('no_relation_scores', np.float32),
                   pan_id_map=pan, pan_labels=arr('pan_labels', np.int64))


class PredictionMatchError(InputError, ValueError):
    """Predictions that do not go one-to-one with the images they are for."""


def index_predictions(predictions: Iterable[Prediction], image_ids: Sequence[str], where: str,
                      images: str = 'images', complete: bool = False) -> dict[str, Prediction]:
    """``image_id -> prediction`` for predictions of the images ``image_ids``.

    Raises :class:`PredictionMatchError`, its message starting with ``where`` and calling the
    images ``images`` (e.g. ``'test images'``), for a prediction whose image_id is not one of
    ``image_ids`` or two predictions of one image, and with ``complete`` for an image without
    prediction.
    """
    wanted = set(image_ids)
    by_id: dict[str, Prediction] = {}
    for pred in predictions:
        if pred.image_id not in wanted:
            raise PredictionMatchError(f'{where}: a prediction has image_id '
                                       f'{describe(pred.image_id)}, which is not one of the '
                                       f'{len(wanted)} {images}')
        if pred.image_id in by_id:
            raise PredictionMatchError(f'{where}: two predictions have image_id '
                                       f'{describe(pred.image_id)}')
        by_id[pred.image_id] = pred
    missing = [i for i in image_ids if i not in by_id] if complete else []
    if missing:
        raise PredictionMatchError(f'{where}: {len(missing)} of the {len(wanted)} {images} have no '
                                   f'prediction, e.g. image_id {missing[0]!r}')
    return by_id
