"""The last steps of a pipeline: :class:`Normalize` and :class:`PackSample`."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ...registry import TRANSFORMS
from ...structures.scene_graph import ImageMeta, Sample
from .compose import PipelineError, require
from .crop import OBJECT_KEYS


@TRANSFORMS.register()
class Normalize:
    """``img = (img - mean) / std`` per RGB channel, as float32 (``mean``/``std`` in 0..255 units).

    The instance keeps ``mean`` and ``std`` as ``(3,)`` float32 arrays, e.g. to undo the
    normalisation for display.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = np.asarray(mean, dtype=np.float32).reshape(3)
        self.std = np.asarray(std, dtype=np.float32).reshape(3)
        if (self.std <= 0).any():
            raise ValueError(f'Normalize std must be positive, got {std}')

    def __call__(self, results: dict) -> dict:
        img = require(results, 'img', self, 'put LoadImage before Normalize')
        results['img'] = (img.astype(np.float32) - self.mean) / self.std
        return results

    def __repr__(self) -> str:
        return f'Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})'


def _check_lengths(results: dict) -> int:
    """Number of objects N; raises if the per-object fields or relation indices disagree with it."""
    n = len(require(results, 'labels', PackSample))
    image_id = results.get('image_id')
    for key in OBJECT_KEYS:
        if key in results and len(results[key]) != n:
            raise PipelineError(f'PackSample: image_id={image_id}: field {key!r} has '
                                f'{len(results[key])} rows but there are {n} labels')
    rels = np.asarray(require(results, 'rels', PackSample)).reshape(-1, 3)
    if len(rels) and (rels[:, :2].min() < 0 or rels[:, :2].max() >= n):
        raise PipelineError(f'PackSample: image_id={image_id}: field \'rels\' indexes objects '
                            f'outside 0..{n - 1}')
    return n


@TRANSFORMS.register()
class PackSample:
    """Turn the results dict into a :class:`~openpsg.structures.Sample` (the pipeline's output).

    ``img (H, W, 3)`` becomes a float32 ``(3, H, W)`` tensor; ``labels`` int64, ``boxes`` float32
    ``(N, 4)``, ``masks`` bool ``(N, H, W)`` and ``rels`` int64 ``(M, 3)``. When the pipeline did
    not load masks, ``masks`` is an empty ``(N, 0, 0)`` tensor. ``meta`` gets ``image_id``, the
    file names, ``ori_shape``, ``img_shape``, ``pad_shape`` (``img_shape`` if not padded),
    ``scale_factor`` (``(1, 1)`` if not resized) and ``flip``. ``gt_semantic_seg``, when loaded,
    becomes ``sem_seg`` int64. Other fields (``segment_ids``, ``iscrowd``, ``is_thing``, ``rng``)
    are not part of the Sample.
    """

    def __call__(self, results: dict) -> Sample:
        img = require(results, 'img', self, 'put LoadImage before PackSample')
        n = _check_lengths(results)
        img_shape = tuple(int(v) for v in results.get('img_shape', img.shape[:2]))
        meta = ImageMeta(
            image_id=str(require(results, 'image_id', self)),
            file_name=str(results.get('file_name', '')),
            pan_seg_file_name=str(results.get('pan_seg_file_name') or ''),
            ori_shape=tuple(int(v) for v in results.get('ori_shape', img_shape)),
            img_shape=img_shape,
            pad_shape=tuple(int(v) for v in results.get('pad_shape', img_shape)),
            scale_factor=tuple(float(v) for v in results.get('scale_factor', (1.0, 1.0))),
            flip=bool(results.get('flip', False)))
        masks = results.get('masks')
        masks = torch.zeros((n, 0, 0), dtype=torch.bool) if masks is None else \
            torch.from_numpy(np.ascontiguousarray(masks, dtype=bool))
        sem_seg = results.get('gt_semantic_seg')
        if sem_seg is not None:
            sem_seg = torch.from_numpy(np.asarray(sem_seg, dtype=np.int64))
        return Sample(
            img=torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)),
            meta=meta,
            labels=torch.from_numpy(np.asarray(results['labels'], dtype=np.int64).reshape(n)),
            boxes=torch.from_numpy(np.asarray(results['boxes'], dtype=np.float32).reshape(n, 4)),
            masks=masks,
            rels=torch.from_numpy(np.asarray(results['rels'], dtype=np.int64).reshape(-1, 3)),
            sem_seg=sem_seg)

    def __repr__(self) -> str:
        return 'PackSample()'
