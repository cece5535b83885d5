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

import torch
from torch import nn
from tqdm import tqdm

from ..errors import InputError
from ..fileio import atomic_write
from ..structures import Prediction
from .dist import gather_objects, is_main_process

FORMAT = 'openpsg-predictions'
FORMAT_VERSION = 1


class PredictionFileError(InputError, ValueError):
    """A prediction file that cannot be read or does not hold predictions."""


@torch.no_grad()
def inference(model: nn.Module, loader: Iterable, desc: str = 'test') -> list[Prediction]:
    """``model(batch, mode='predict')`` over ``loader`` (this rank's share), in loader order.

    The model is put in eval mode. Predictions are returned compact (RLE masks), which keeps the
    memory of a whole test set small.
    """
    model.eval()
    device = next(model.parameters()).device
    out: list[Prediction] = []
    total = len(loader) if hasattr(loader, '__len__') else None
    for batch in tqdm(loader, desc=desc, total=total, unit='batch', disable=not is_main_process()):
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
    """Read a file written by :func:`save_predictions`; errors name the file (and the entry)."""
    path = str(path)
    if not os.path.isfile(path):
        raise PredictionFileError(f'{path}: prediction file not found')
    try:
        if path.endswith('.json'):
            with open(path, encoding='utf-8') as f:
                content: Any = json.load(f)
        else:
            content = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:
        raise PredictionFileError(f'{path}: cannot read the prediction file ({type(err).__name__}: '
                                  f'{str(err).splitlines()[0] if str(err) else ""})') from err
    if not isinstance(content, dict) or content.get('format') != FORMAT:
        raise PredictionFileError(f'{path}: not an openpsg prediction file (expected a dict with '
                                  f'format={FORMAT!r}, as written by tools/test.py --out)')
    if content.get('version') != FORMAT_VERSION:
        raise PredictionFileError(f'{path}: prediction file version {content.get("version")!r} '
                                  f'is not supported (this openpsg reads version {FORMAT_VERSION})')
    predictions = []
    for i, entry in enumerate(content.get('predictions', [])):
        try:
            predictions.append(Prediction.from_dict(entry))
        except (KeyError, TypeError, ValueError) as err:
            image_id = entry.get('image_id', '?') if isinstance(entry, dict) else '?'
            raise PredictionFileError(f'{path}: predictions[{i}] (image_id={image_id}): '
                                      f'{type(err).__name__}: {err}') from err
    return predictions
