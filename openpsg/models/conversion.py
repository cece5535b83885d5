"""What the checkpoint converters (``tools/convert_*_checkpoint.py``) share: reading another
codebase's checkpoint safely, PSG's classes as COCO category ids, and the architecture check that
refuses a checkpoint the target config's model cannot hold.

The architecture check compares the converted weights with the model the config builds:

* every tensor of the shared trunk (``backbone.``, ``input_proj.``, ``query_embed.``,
  ``transformer.``) must exist on both sides with the same shape -- this catches the backbone
  depth, the transformer's width, layers, heads, points and feature levels, the number of
  queries and the backbone map the transformer reads;
* every other tensor both sides have (e.g. ``class_embed``) must have the same shape; heads only
  one side has are left to ``load_from``, which reports them;
* the backbone's dilation (DC5: C5 at stride 16), which no shape shows: it is read from the
  training arguments stored in the checkpoint (``dilation``) or, without them, from its file name
  (``dc5``), and must equal the config's ``model.backbone.dilation``.
"""
from __future__ import annotations

import argparse
import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..config import Config
from ..errors import InputError
from ..fileio import atomic_write
from ..registry import MODELS

#: COCO panoptic category id of each PSG class, in PSG order (80 things, then 53 stuff classes);
#: DETR-family class heads trained on COCO are indexed by these ids.
COCO_PANOPTIC_IDS: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90,
    92, 93, 95, 100, 107, 109, 112, 118, 119, 122, 125, 128, 130, 133, 138, 141, 144, 145, 147,
    148, 149, 151, 154, 155, 156, 159, 161, 166, 168, 171, 175, 176, 177, 178, 180, 181, 184, 185,
    186, 187, 188, 189, 190, 191, 192, 193, 194, 195, 196, 197, 198, 199, 200)
assert len(COCO_PANOPTIC_IDS) == 133

#: key prefixes of the parts a DETR-family checkpoint and the model must agree on exactly
TRUNK_PREFIXES = ('backbone.', 'input_proj.', 'query_embed.', 'transformer.')


class ConversionError(InputError, ValueError):
    """The source file cannot be converted, or not for the target config."""


@dataclass
class SourceCheckpoint:
    """A checkpoint of another codebase: its weights ``state``, the training arguments stored
    with them (``args``: official DETR / Deformable DETR ``args``; empty if none) and the file."""

    path: str
    state: dict[str, torch.Tensor]
    args: dict[str, Any] = field(default_factory=dict)


def read_checkpoint(path: str | os.PathLike) -> SourceCheckpoint:
    """Read ``path`` with ``torch.load(weights_only=True)`` (``argparse.Namespace`` training
    arguments allowed); the weights are taken from ``'model'``, ``'state_dict'`` or the top level.
    Every failure is a :class:`ConversionError` naming the file."""
    torch.serialization.add_safe_globals([argparse.Namespace])
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise ConversionError(f'{path}: no such file') from None
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ConversionError(
            f'{path}: cannot be read as a torch checkpoint with weights_only=True '
            f'({type(err).__name__}: {str(err).splitlines()[0]}); if it holds other pickled '
            'objects, save its state dict alone with the code that wrote it') from err
    state = ckpt
    for key in ('model', 'state_dict'):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or \
            not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f'{path}: expected a dict of tensors under "model", "state_dict" or '
                              'at the top level')
    args = ckpt.get('args') if isinstance(ckpt, dict) else None
    args = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    return SourceCheckpoint(str(path), dict(state), args)


def source_dilation(source: SourceCheckpoint) -> tuple[bool, str]:
    """Whether the source backbone is dilated (DC5), and how that is known."""
    if 'dilation' in source.args:
        value = source.args['dilation']
        return bool(value), f'its training arguments say dilation={value}'
    dc5 = 'dc5' in Path(source.path).name.lower()
    return dc5, (f'its file name {"has" if dc5 else "lacks"} "dc5" and it stores no training '
                 'arguments')


def coco_rows(weight: torch.Tensor, bias: torch.Tensor,
              category_ids: tuple[int, ...] = COCO_PANOPTIC_IDS
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A class head's rows indexed by COCO category id -> rows in PSG order ``(len(ids), d)``.
    PSG classes whose id is not a row of the source (the stuff classes of a detection head) get
    zero weight and zero bias. Returns the weight, the bias and the mask of copied rows."""
    ids = torch.tensor(category_ids)
    known = ids < weight.shape[0]
    new_weight = weight.new_zeros((len(ids), weight.shape[1]))
    new_bias = bias.new_zeros(len(ids))
    new_weight[known] = weight[ids[known]]
    new_bias[known] = bias[ids[known]]
    return new_weight, new_bias, known


def build_target_model(config: str | os.PathLike, cfg_options: Mapping[str, Any] | None = None
                       ) -> tuple[nn.Module, Config]:
    """The model of ``config`` (with ``cfg_options`` merged), built without loading any
    pretrained backbone weights."""
    cfg = Config.fromfile(config, overrides=dict(cfg_options or {}))
    model_cfg = copy.deepcopy(cfg.model.to_dict())
    if isinstance(model_cfg.get('backbone'), dict):
        model_cfg['backbone']['pretrained'] = None
    return MODELS.build(model_cfg), cfg


def _listing(keys: list[str], limit: int = 6) -> str:
    return ', '.join(keys[:limit]) + (f' and {len(keys) - limit} more' if len(keys) > limit else '')


def check_architecture(state: Mapping[str, torch.Tensor], source: SourceCheckpoint,
                       model: nn.Module, cfg: Config, config_name: str) -> None:
    """Refuse ``state`` (``source`` converted to openpsg names) if the model that ``cfg`` builds
    cannot hold it: see the module docstring for what is compared. The error names the source
    file, the config and every disagreement."""
    config_dilation = bool((cfg.model.get('backbone') or {}).get('dilation', False))
    dilation, why = source_dilation(source)
    if dilation != config_dilation:
        kinds = {True: 'a DC5 backbone (C5 dilated, stride 16)',
                 False: 'a backbone without dilation (C5 at stride 32)'}
        raise ConversionError(
            f'{source.path} has {kinds[dilation]} ({why}), but {config_name} builds '
            f'{kinds[config_dilation]} (model.backbone.dilation={config_dilation}); use a config '
            'that matches the checkpoint')
    own = model.state_dict()
    trunk_source = {k for k in state if k.startswith(TRUNK_PREFIXES)}
    trunk_model = {k for k in own if k.startswith(TRUNK_PREFIXES)}
    problems = []
    missing = sorted(trunk_model - trunk_source)
    unexpected = sorted(trunk_source - trunk_model)
    if missing:
        problems.append(f'missing from the checkpoint: {_listing(missing)}')
    if unexpected:
        problems.append(f'not in the model: {_listing(unexpected)}')
    shapes = [f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}'
              for k in sorted(set(state) & set(own)) if state[k].shape != own[k].shape]
    if shapes:
        problems.append(f'shapes differ (checkpoint vs model): {_listing(shapes)}')
    if problems:
        raise ConversionError(f'{source.path} does not fit the model of {config_name}: '
                              + '; '.join(problems))


def save_atomic(obj: dict, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the target folder, then rename it into place."""
    with atomic_write(path, 'wb') as f:
        torch.save(obj, f)
