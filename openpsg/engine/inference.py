"""Running a model over a test loader, collecting the predictions of all ranks, prediction files.

A prediction file (``tools/test.py --out``) holds plain containers only, so it is read by
``torch.load(path, weights_only=True)`` (``.pth``/``.pt``/``.pkl``) or by any JSON reader
(``.json``)::

    {'format': 'openpsg-predictions', 'version': 1,
     'predictions': [Prediction.compact().to_dict(), ...]}   # dataset order, masks as RLE
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..datasets.validate import MAX_IMAGE_SIDE, is_int, type_name
from ..errors import InputError
from ..fileio import atomic_write
from ..safe_json import JSONFileError, describe, load_json
from ..structures import Prediction
from ..structures.scene_graph import ARRAY_FIELDS
from .amp import autocast
from .dist import gather_objects, is_main_process

FORMAT = 'openpsg-predictions'
FORMAT_VERSION = 1
MAX_PREDICATES = 10000


class PredictionFileError(InputError, ValueError):
    """A prediction file that cannot be read or does not hold predictions."""


@torch.no_grad()
def inference(model: nn.Module, loader: Iterable, desc: str = 'test',
              amp: str = 'none') -> list[Prediction]:
    """``model(batch, mode='predict')`` over ``loader`` (this rank's share), in loader order,
    under the autocast of ``amp`` (a mode :func:`~.amp.resolve_amp` returned for the model's
    device).

    The model is put in eval mode. Predictions are returned compact (RLE masks), which keeps the
    memory of a whole test set small.
    """
    model.eval()
    device = next(model.parameters()).device
    out: list[Prediction] = []
    total = len(loader) if hasattr(loader, '__len__') else None
    for batch in tqdm(loader, desc=desc, total=total, unit='batch', disable=not is_main_process()):
        with autocast(device, amp):
            predictions = model(batch.to(device), mode='predict')
        if len(predictions) != len(batch):
            raise RuntimeError(f'{type(model).__name__} returned {len(predictions)} predictions '
                               f'for a batch of {len(batch)} images')
        out.extend(p.compact() for p in predictions)
    return out


def collect_predictions(local: list[Prediction],
                        image_ids: Sequence[str]) -> list[Prediction] | None:
    """The predictions of every rank on rank 0, in dataset order (``None`` on other ranks).

    Each rank must hold the predictions of its contiguous share of the dataset, in order (see
    :class:`~openpsg.datasets.samplers.InferenceSampler`). The result is checked to name every image
    of ``image_ids`` exactly once, in that order.
    """
    parts = gather_objects(local)
    if parts is None:
        return None
    predictions = [p for part in parts for p in part]
    got = [p.image_id for p in predictions]
    if got != list(image_ids):
        missing = sorted(set(image_ids) - set(got))
        extra = sorted(set(got) - set(image_ids))
        duplicated = sorted({i for i in got if got.count(i) > 1})
        raise RuntimeError(f'collected {len(got)} predictions for {len(image_ids)} images: missing '
                           f'{missing[:5]}, unknown {extra[:5]}, duplicated {duplicated[:5]}')
    return predictions


def save_predictions(predictions: Iterable[Prediction], path: str | os.PathLike) -> None:
    """Write predictions (dataset order) atomically: JSON for ``.json``, else ``torch.save``."""
    path = str(path)
    tensors = not path.endswith('.json')
    content = {'format': FORMAT, 'version': FORMAT_VERSION,
               'predictions': [p.compact().to_dict(tensors=tensors) for p in predictions]}
    with atomic_write(path, 'w' if path.endswith('.json') else 'wb') as f:
        if path.endswith('.json'):
            json.dump(content, f)
        else:
            torch.save(content, f)


def load_predictions(path: str | os.PathLike) -> list[Prediction]:
    """Read a file written by :func:`save_predictions`; errors name the file (and the entry and
    field). JSON files are read with :func:`~openpsg.safe_json.load_json`; every entry is checked
    before it is converted (sizes within ``1..MAX_IMAGE_SIDE``, finite numbers, RLE masks)."""
    path = str(path)
    if not os.path.isfile(path):
        raise PredictionFileError(f'{path}: prediction file not found')
    try:
        if path.endswith('.json'):
            content: Any = load_json(path)
        else:
            content = torch.load(path, map_location='cpu', weights_only=True)
    except JSONFileError as err:
        raise PredictionFileError(str(err)) from None
    except Exception as err:
        raise PredictionFileError(f'{path}: cannot read the prediction file ({type(err).__name__}: '
                                  f'{str(err).splitlines()[0] if str(err) else ""})') from err
    if not isinstance(content, dict) or content.get('format') != FORMAT:
        raise PredictionFileError(f'{path}: not an openpsg prediction file (expected a dict with '
                                  f'format={FORMAT!r}, as written by tools/test.py --out)')
    if content.get('version') != FORMAT_VERSION:
        raise PredictionFileError(f'{path}: prediction file version '
                                  f'{describe(content.get("version"))} is not supported (this '
                                  f'openpsg reads version {FORMAT_VERSION})')
    entries = content.get('predictions', [])
    if not isinstance(entries, list):
        raise PredictionFileError(f'{path}: predictions must be a list, got {type_name(entries)}')
    predictions = []
    for i, entry in enumerate(entries):
        image_id = entry.get('image_id', '?') if isinstance(entry, dict) else '?'
        try:
            _check_entry(entry)
            predictions.append(Prediction.from_dict(entry))
        except (KeyError, TypeError, ValueError, OverflowError) as err:
            raise PredictionFileError(f'{path}: predictions[{i}] (image_id={describe(image_id)}): '
                                      f'{type(err).__name__}: {err}') from err
    return predictions


def _check_entry(entry: Any) -> None:
    """Raise ``ValueError`` naming the field of the first problem of one saved prediction."""
    if not isinstance(entry, dict):
        raise ValueError(f'must be a dict, got {type_name(entry)}')
    if not isinstance(entry.get('image_id'), str):
        raise ValueError(f'image_id must be a string, got {describe(entry.get("image_id"))}')
    num = entry.get('num_predicates')
    if not is_int(num) or not 0 < num <= MAX_PREDICATES:
        raise ValueError(f'num_predicates must be an integer in 1..{MAX_PREDICATES}, got '
                         f'{describe(num)}')
    arrays = {}
    for key in ARRAY_FIELDS:
        if entry.get(key) is not None:
            values = np.asarray(entry[key], dtype=np.float64)
            if not np.isfinite(values).all():
                raise ValueError(f'{key} holds NaN or infinite values')
            if np.abs(values).max(initial=0) > 2 ** 53:
                raise ValueError(f'{key} holds numbers beyond 2**53')
            arrays[key] = values
    _check_shapes(arrays, num)
    if entry.get('masks') is not None:
        _check_rles(entry['masks'], 'masks')
        if len(entry['masks']) != len(arrays['labels']):
            raise ValueError(f'masks has {len(entry["masks"])} entries for '
                             f'{len(arrays["labels"])} labels')
    pan = entry.get('pan_id_map')
    if pan is not None:
        if not isinstance(pan, dict):
            raise ValueError(f'pan_id_map must be a dict, got {type_name(pan)}')
        _check_size(pan.get('shape'), 'pan_id_map.shape')
        _check_rles(pan.get('rles'), 'pan_id_map.rles')


def _check_shapes(arrays: dict[str, np.ndarray], num_predicates: int) -> None:
    """Segment fields agree on N, relation fields on R, and pairs index the N segments."""
    for key in ('labels', 'scores', 'boxes', 'pairs', 'predicate_scores', 'triplet_scores'):
        if key not in arrays:
            raise ValueError(f'{key} is missing')
    n, r = arrays['labels'].size, arrays['triplet_scores'].size
    expected = {'labels': n, 'scores': n, 'boxes': 4 * n, 'pairs': 2 * r,
                'predicate_scores': r * num_predicates, 'triplet_scores': r,
                'no_relation_scores': r}
    for key, size in expected.items():
        if key in arrays and arrays[key].size != size:
            raise ValueError(f'{key} has {arrays[key].size} values, expected {size} for {n} '
                             f'segments and {r} relations')
    for key in ('labels', 'pairs', 'pan_labels'):
        values = arrays.get(key, np.zeros(0))
        if (values != np.round(values)).any() or (values < 0).any():
            raise ValueError(f'{key} must hold non-negative integers')
    if (arrays['pairs'] >= n).any():
        raise ValueError(f'pairs index segments up to {int(arrays["pairs"].max())} but there are '
                         f'{n} segments')


def _check_rles(rles: Any, field: str) -> None:
    if not isinstance(rles, list):
        raise ValueError(f'{field} must be a list of RLE dicts, got {type_name(rles)}')
    for k, rle in enumerate(rles):
        if not isinstance(rle, dict) or not isinstance(rle.get('counts'), (str, bytes)):
            raise ValueError(f'{field}[{k}] must be an RLE dict {{size, counts}} with string '
                             f'counts, got {describe(rle)}')
        _check_size(rle.get('size'), f'{field}[{k}].size')
        if rle['size'] != rles[0]['size']:
            raise ValueError(f'{field}[{k}].size {rle["size"]} differs from {field}[0].size '
                             f'{rles[0]["size"]}')


def _check_size(size: Any, field: str) -> None:
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(is_int(v) and 0 < v <= MAX_IMAGE_SIDE for v in size)):
        raise ValueError(f'{field} must be [height, width], integers in 1..{MAX_IMAGE_SIDE}, got '
                         f'{describe(size)}')
