"""Run a trained model on your own images: :func:`init_model`, :func:`inference_image`,
:func:`inference_images`.

    from openpsg.apis import init_model, inference_image

    model = init_model('configs/psgtr/psgtr_r50_psg.py', 'work_dirs/psgtr/latest.pth',
                       device='cuda')
    result = inference_image(model, 'photo.jpg')      # path, PIL image or (H, W, 3) uint8 RGB array
    for triplet in result.top_triplets(10):
        print(triplet)

The image goes through the config's test pipeline (``cfg.data.test.pipeline``) with the steps that
read annotations removed and ``LoadImage`` replaced by :class:`LoadImageFromArray`, so it is resized
and normalised exactly as the test images were.
"""
from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from ..config import Config, ConfigError, parse_cfg_options
from ..datasets.io import ImageReadError, decode_rgb, pil_to_rgb
from ..datasets.transforms import Compose, require
from ..engine.checkpoint import (CheckpointError, checkpoint_names, load_checkpoint,
                                 load_weights)
from ..engine.env import import_custom_modules
from ..errors import InputError
from ..registry import MODELS
from ..structures import CLASSES, GT_SEGMENT_MODES, PREDICATES, collate_samples
from .result import SceneGraphResult

logger = logging.getLogger(__name__)

ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray]

#: Test-pipeline steps dropped for images without annotations (they read or need ground truth).
ANNOTATION_STEPS = frozenset({'LoadPanopticAnnotations', 'LoadAnnotations', 'SegRescale'})
#: Model options that load initial weights from other files (ImageNet backbones, a trained
#: segmenter); turned off when a whole checkpoint is loaded, which holds all the weights.
INIT_WEIGHT_OPTIONS = {'pretrained': False, 'segmenter_checkpoint': None}
#: Shown when more keys differ than this (the rest are counted).
_MAX_KEYS_SHOWN = 8


class ImageInputError(InputError, ValueError):
    """An image that cannot be used: missing or unreadable file, wrong array type or shape."""


class DeviceError(InputError, RuntimeError):
    """A device that this machine does not have (e.g. ``'cuda'`` without a usable GPU)."""


# ---------------------------------------------------------------------------------- devices
def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device`, checked to exist on this machine."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise DeviceError(f'unknown device {device!r} (use cpu, cuda or cuda:N): {err}') from None
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            why = ('this torch build has no CUDA support' if torch.version.cuda is None
                   else 'no CUDA GPU is visible')
            raise DeviceError(f'device {str(device)!r} was asked for, but CUDA is not available on '
                              f'this machine ({why}; torch {torch.__version__}); use device cpu')
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f'device {str(device)!r} was asked for, but this machine has '
                              f'{torch.cuda.device_count()} CUDA GPU(s)')
    elif dev.type == 'mps' and not torch.backends.mps.is_available():
        raise DeviceError(f'device {str(device)!r} was asked for, but MPS is not available')
    return dev


# ---------------------------------------------------------------------------------- images
class LoadImageFromArray:
    """Pipeline step for an image already in memory: takes ``results['img']`` ``(H, W, 3)`` uint8
    RGB and sets ``ori_shape`` and ``img_shape`` (the fields :class:`LoadImage` sets)."""

    def __call__(self, results: dict) -> dict:
        img = require(results, 'img', self, 'put the image array into the input dict')
        results['ori_shape'] = img.shape[:2]
        results['img_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return 'LoadImageFromArray()'


def _default_id(image: ImageInput) -> str:
    if isinstance(image, (str, os.PathLike)):
        return Path(image).stem
    if isinstance(image, Image.Image) and getattr(image, 'filename', ''):
        return Path(image.filename).stem
    return 'image'


def load_image(image: ImageInput) -> np.ndarray:
    """An image as ``(H, W, 3)`` uint8 RGB: a file path, a PIL image (any mode; EXIF rotation
    applied, as for paths) or an ``(H, W, 3)`` uint8 RGB array (used as is). Files and PIL images
    are checked as :func:`openpsg.datasets.io.decode_rgb` checks them (size limit before
    decoding, complete decoding). Raises :class:`ImageInputError` naming the input when it cannot
    be used."""
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        try:
            return decode_rgb(path, exif_transpose=True)
        except ImageReadError as err:
            raise ImageInputError(f'{path}: {err}') from None
    if isinstance(image, Image.Image):
        name = getattr(image, 'filename', '') or 'PIL image'
        try:
            return pil_to_rgb(image, exif_transpose=True)
        except ImageReadError as err:
            raise ImageInputError(f'{name}: {err}') from None
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ImageInputError(f'image array must have shape (H, W, 3) (RGB), got {image.shape}'
                                  + ('; convert grey images with np.stack([a] * 3, -1)'
                                     if image.ndim == 2 else ''))
        if image.dtype != np.uint8:
            raise ImageInputError(f'image array must be uint8 (0..255 RGB), got {image.dtype}; '
                                  'e.g. (a * 255).round().astype(np.uint8) for floats in [0, 1]')
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ImageInputError(f'image array is empty: shape {image.shape}')
        return np.ascontiguousarray(image)
    raise ImageInputError(f'an image must be a file path, a PIL image or an (H, W, 3) uint8 '
                          f'array, got {type(image).__name__}')


# ---------------------------------------------------------------------------------- model
def _load_config(config: str | os.PathLike | Config,
                 cfg_options: Mapping[str, Any] | Sequence[str] | None) -> Config:
    options = (dict(cfg_options or {}) if isinstance(cfg_options, Mapping) or not cfg_options
               else parse_cfg_options(cfg_options))
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
        cfg.merge_from_dict(options)
        return cfg
    if not isinstance(config, (str, os.PathLike)):
        raise TypeError(f'config must be a path or a Config, got {type(config).__name__}')
    if not os.path.isfile(config):
        raise ConfigError(f'{os.fspath(config)}: config file not found')
    return Config.fromfile(config, overrides=options)


def _config_name(cfg: Config) -> str:
    return cfg.filename or '<Config object>'


def _load_checkpoint(model: nn.Module, checkpoint: str | os.PathLike, cfg: Config,
                     strict: bool) -> Any:
    """Load the weights into ``model``; returns the checkpoint's ``meta`` (``None`` if none; not
    checked, see :func:`~openpsg.engine.checkpoint.checkpoint_names`)."""
    path = os.fspath(checkpoint)
    meta = load_checkpoint(path).get('meta')
    report = load_weights(model, path)
    if not report.clean:
        message = (f'checkpoint {path} does not match config {_config_name(cfg)}: '
                   f'{"; ".join(report.lines(_MAX_KEYS_SHOWN))}')
        if strict:
            raise CheckpointError(message + ' (was it trained with another config? '
                                  'init_model(..., strict=False) loads what fits)')
        logger.warning(message)
    return meta


def _skip_init_weights(node: Any) -> None:
    """Set every :data:`INIT_WEIGHT_OPTIONS` key found in the model config ``node`` (nested dicts
    and lists included) to its "load nothing" value."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key in INIT_WEIGHT_OPTIONS and value:
                node[key] = INIT_WEIGHT_OPTIONS[key]
            else:
                _skip_init_weights(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _skip_init_weights(value)


def build_inference_pipeline(cfg: Config) -> Compose:
    """The config's test pipeline for an image without annotations: annotation steps
    (:data:`ANNOTATION_STEPS`) removed, ``LoadImage`` replaced by :class:`LoadImageFromArray`
    (prepended when the pipeline has no ``LoadImage``)."""
    try:
        steps = list(cfg.data.test.pipeline)
    except (AttributeError, KeyError, TypeError):
        raise ConfigError(f'{_config_name(cfg)}: inference needs the test pipeline '
                          '(data.test.pipeline) of the config') from None

    def kind(step: Any) -> str:
        if isinstance(step, Mapping):
            t = step.get('type')
            return t if isinstance(t, str) else getattr(t, '__name__', '')
        return type(step).__name__

    kept = [LoadImageFromArray() if kind(s) == 'LoadImage' else s
            for s in steps if kind(s) not in ANNOTATION_STEPS]
    if not any(isinstance(s, LoadImageFromArray) for s in kept):
        kept.insert(0, LoadImageFromArray())
    return Compose(kept)


def init_model(config: str | os.PathLike | Config, checkpoint: str | os.PathLike | None = None,
               device: str | torch.device = 'cpu',
               cfg_options: Mapping[str, Any] | Sequence[str] | None = None,
               strict: bool = True) -> nn.Module:
    """Build the model of ``config`` (a path or a :class:`~openpsg.config.Config`), load
    ``checkpoint`` and get it ready for :func:`inference_image`.

    Args:
        config: the config the model was trained with.
        checkpoint: a checkpoint of that model (read with ``weights_only=True``); ``None`` keeps
            the freshly initialised weights. With a checkpoint, the model options that load
            initial weights from elsewhere (:data:`INIT_WEIGHT_OPTIONS`) are turned off.
        device: ``'cpu'``, ``'cuda'``, ``'cuda:N'``; a device this machine lacks raises
            :class:`DeviceError`.
        cfg_options: config overrides, ``{'model.test_cfg.max_per_img': 50}`` or
            ``['model.test_cfg.max_per_img=50']``.
        strict: raise :class:`~openpsg.engine.checkpoint.CheckpointError` (naming both files)
            when a weight is missing, unexpected or of another shape; ``False`` loads what fits
            and logs a warning.

    The returned model is in eval mode on ``device`` and carries ``cfg``, ``class_names``,
    ``predicate_names`` (from the checkpoint's meta, else the PSG vocabulary of
    :mod:`openpsg.structures.labels`) and ``test_pipeline``.
    """
    cfg = _load_config(config, cfg_options)
    dev = resolve_device(device)
    import_custom_modules(cfg.get('custom_imports'))
    if 'model' not in cfg:
        raise ConfigError(f'{_config_name(cfg)}: the config has no model')
    if checkpoint is not None:
        _skip_init_weights(cfg.model)
    try:
        model = MODELS.build(cfg.model)
    except (KeyError, TypeError) as err:
        reason = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise ConfigError(f'{_config_name(cfg)}: cannot build the model: {reason}') from err
    mode = getattr(model, 'mode', 'sgdet')
    if mode in GT_SEGMENT_MODES:
        raise ConfigError(f'{_config_name(cfg)}: the model runs in {mode} mode, which takes the '
                          'ground-truth segments of each image, and an image of your own has '
                          'none; use an SGDet config of the model (model.use_gt_box=False, '
                          'model.use_gt_label=False)')
    meta = _load_checkpoint(model, checkpoint, cfg, strict) if checkpoint is not None else None
    model.to(dev).eval()
    model.cfg = cfg
    model.class_names = checkpoint_names(meta, 'classes') or CLASSES
    model.predicate_names = checkpoint_names(meta, 'predicates') or PREDICATES
    model.test_pipeline = build_inference_pipeline(cfg)
    return model


# ---------------------------------------------------------------------------------- inference
def _check_model(model: nn.Module) -> None:
    missing = [a for a in ('test_pipeline', 'class_names', 'predicate_names')
               if not hasattr(model, a)]
    if missing:
        raise TypeError(f'{type(model).__name__} has no {", ".join(missing)}: build it with '
                        'openpsg.apis.init_model')


def _pipeline_input(img: np.ndarray, image_id: str) -> dict[str, Any]:
    h, w = img.shape[:2]
    return {'image_id': image_id, 'file_name': image_id, 'img': img, 'height': h, 'width': w,
            'labels': np.zeros(0, np.int64), 'boxes': np.zeros((0, 4), np.float32),
            'rels': np.zeros((0, 3), np.int64), 'rng': np.random.default_rng(0)}


@torch.inference_mode()
def _run(model: nn.Module, images: list[np.ndarray], image_ids: list[str]
         ) -> list[SceneGraphResult]:
    samples = []
    for img, image_id in zip(images, image_ids):
        sample = model.test_pipeline(_pipeline_input(img, image_id))
        if sample is None:
            raise RuntimeError(f'{image_id}: the test pipeline rejected the image')
        samples.append(sample)
    device = next(model.parameters()).device
    predictions = model(collate_samples(samples).to(device), mode='predict')
    if len(predictions) != len(samples):
        raise RuntimeError(f'{type(model).__name__} returned {len(predictions)} predictions for '
                           f'{len(samples)} images')
    return [SceneGraphResult(p, model.class_names, model.predicate_names, img.shape[:2])
            for p, img in zip(predictions, images)]


def inference_image(model: nn.Module, image: ImageInput, image_id: str | None = None
                    ) -> SceneGraphResult:
    """The scene graph of one image (a path, a PIL image or an ``(H, W, 3)`` uint8 RGB array).

    ``image_id`` names the result (default: the file's stem, ``'image'`` for arrays). Masks and
    boxes are at the image's original size.
    """
    _check_model(model)
    return _run(model, [load_image(image)], [image_id or _default_id(image)])[0]


def inference_images(model: nn.Module, images: Iterable[ImageInput], batch_size: int = 1,
                     image_ids: Sequence[str] | None = None, progress: bool = False
                     ) -> list[SceneGraphResult]:
    """:func:`inference_image` over many images, ``batch_size`` at a time (images of one batch are
    padded to the largest, which may change a model's output very slightly); results in input
    order. Images are read batch by batch, so a long list does not fill the memory; the first
    unusable one raises :class:`ImageInputError` naming it."""
    _check_model(model)
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    images = list(images)
    if image_ids is not None and len(image_ids) != len(images):
        raise ValueError(f'{len(image_ids)} image_ids for {len(images)} images')
    ids = list(image_ids) if image_ids is not None else [_default_id(i) for i in images]
    results: list[SceneGraphResult] = []
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc='inference', unit='batch', disable=not progress):
        chunk = images[start:start + batch_size]
        results.extend(_run(model, [load_image(i) for i in chunk], ids[start:start + batch_size]))
    return results
