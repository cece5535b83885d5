"""torchvision's COCO Mask R-CNN weights as the starting point of :class:`PanopticFPN`.

torchvision's ``maskrcnn_resnet50_fpn`` (``variant='v1'``) and ``maskrcnn_resnet50_fpn_v2``
(``variant='v2'``) classify over 91 rows: row 0 is background and row ``k`` is COCO category id
``k`` (11 of the ids 1..90 are unused). :class:`PanopticFPN` has the same module names (``backbone``,
``rpn``, ``roi_heads``) but 81-row thing predictors: row 0 background, row ``i + 1`` PSG thing class
``i``. The conversion keeps every tensor and **slices the three predictor layers to those 81 rows at
load time** (``cls_score``, ``bbox_pred`` (4 rows per class), ``mask_fcn_logits``), so the model
itself never deals with COCO's sparse ids.

Two ways to use the weights:

* in Python: ``load_torchvision_maskrcnn(model, 'maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth')``;
* as a config's ``load_from``: convert once, then point ``load_from`` at the result::

      python -m openpsg.models.segmenters.coco_weights --variant v1 \\
          --out work_dirs/checkpoints/maskrcnn_r50_fpn_coco_psg.pth

  (without ``--src`` the torchvision weights are fetched into the torch hub cache). The semantic
  head is not in the file; ``load_from`` reports its keys as missing and they keep their random
  initialisation.

torchvision runs its v1 COCO weights with a FrozenBatchNorm epsilon of 0; PanopticFPN keeps the
usual 1e-5 in training and testing alike, which changes the COCO outputs only marginally.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Mapping

import torch
from torch import nn

from ... import cli
from ...errors import InputError
from ...fileio import atomic_write

#: COCO category id of each PSG thing class ``0..79`` (PSG's thing order is COCO's id order).
COCO_THING_IDS: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90)

VARIANTS = ('v1', 'v2')
NUM_COCO_ROWS = 91

# A key only the given variant's box head has: v1 is two FC layers, v2 four conv+BN layers + one FC.
_VARIANT_KEY = {'v1': 'roi_heads.box_head.fc6.weight', 'v2': 'roi_heads.box_head.0.0.weight'}
_PREDICTOR_ROWS = {  # key -> rows per class
    'roi_heads.box_predictor.cls_score.weight': 1,
    'roi_heads.box_predictor.cls_score.bias': 1,
    'roi_heads.box_predictor.bbox_pred.weight': 4,
    'roi_heads.box_predictor.bbox_pred.bias': 4,
    'roi_heads.mask_predictor.mask_fcn_logits.weight': 1,
    'roi_heads.mask_predictor.mask_fcn_logits.bias': 1,
}
_TORCHVISION_WEIGHTS = {'v1': ('MaskRCNN_ResNet50_FPN_Weights', 'maskrcnn_resnet50_fpn'),
                        'v2': ('MaskRCNN_ResNet50_FPN_V2_Weights', 'maskrcnn_resnet50_fpn_v2')}


class WeightsError(InputError, ValueError):
    """A file or state dict that is not the torchvision Mask R-CNN it was said to be."""


def thing_rows(per_class: int = 1) -> torch.Tensor:
    """Indices of the 91-row COCO predictor rows kept for the 81-row PSG predictor (background first),
    each class expanded to ``per_class`` consecutive rows (4 for box deltas)."""
    classes = torch.tensor((0, *COCO_THING_IDS))
    return (classes[:, None] * per_class + torch.arange(per_class)).reshape(-1)


def _read(state_dict_or_path: Mapping[str, torch.Tensor] | str | os.PathLike) -> tuple[dict, str]:
    if isinstance(state_dict_or_path, Mapping):
        return dict(state_dict_or_path), 'state dict'
    from ...engine.checkpoint import load_checkpoint  # engine imports models: import on use

    path = str(state_dict_or_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: no such torchvision Mask R-CNN weights file')
    state = load_checkpoint(path)
    if isinstance(state, Mapping) and 'state_dict' in state:
        state = state['state_dict']
    return dict(state), path


def convert_torchvision_maskrcnn(state_dict: Mapping[str, torch.Tensor], variant: str = 'v1',
                                 source: str = 'state dict') -> dict[str, torch.Tensor]:
    """A torchvision Mask R-CNN ``state_dict`` (91 COCO rows) -> :class:`PanopticFPN` weights (81 rows).

    Every key keeps its name (the backbone's BatchNorm step counters are dropped); the predictor
    tensors keep the rows of :func:`thing_rows`. Raises
    :class:`WeightsError` (naming ``source``) when the keys are not those of ``variant``.
    """
    if variant not in VARIANTS:
        raise ValueError(f'variant must be one of {VARIANTS}, got {variant!r}')
    other = 'v2' if variant == 'v1' else 'v1'
    if _VARIANT_KEY[variant] not in state_dict:
        hint = f" (it has the {other} box head; pass variant='{other}')" if _VARIANT_KEY[other] in \
            state_dict else ''
        raise WeightsError(f'{source}: not a torchvision Mask R-CNN {variant} state dict: key '
                           f'{_VARIANT_KEY[variant]!r} is missing{hint}')
    # PanopticFPN's backbone uses FrozenBatchNorm, which keeps no BatchNorm step counter
    out = {k.removeprefix('module.'): v for k, v in state_dict.items()
           if not (k.startswith('backbone.body.') and k.endswith('num_batches_tracked'))}
    for key, per_class in _PREDICTOR_ROWS.items():
        if key not in out:
            raise WeightsError(f'{source}: key {key!r} is missing')
        if out[key].shape[0] != NUM_COCO_ROWS * per_class:
            raise WeightsError(f'{source}: {key} has {out[key].shape[0]} rows, expected '
                               f'{NUM_COCO_ROWS * per_class} (91 COCO classes x {per_class})')
        out[key] = out[key][thing_rows(per_class)].clone()
    return out


def load_torchvision_maskrcnn(model: nn.Module,
                              state_dict_or_path: Mapping[str, torch.Tensor] | str | os.PathLike,
                              variant: str = 'v1') -> list[str]:
    """Load torchvision COCO Mask R-CNN weights into ``model`` (a :class:`PanopticFPN`).

    ``state_dict_or_path``: a torchvision state dict or a ``.pth`` file holding one (bare or under
    ``'state_dict'``). Backbone, FPN, RPN and the box/mask branches must all land; the thing
    predictors get the 80 PSG thing rows (see the module docstring). ``model.variant`` must equal
    ``variant``. Returns the model keys the file does not provide (the semantic head's); raises
    :class:`WeightsError` if anything else is missing, left over or of another shape.
    """
    state, source = _read(state_dict_or_path)
    model_variant = getattr(model, 'variant', variant)
    if model_variant != variant:
        raise WeightsError(f'{source}: {variant} weights for a model built with variant='
                           f'{model_variant!r}; set variant={variant!r} in the model config')
    weights = convert_torchvision_maskrcnn(state, variant, source)
    own = model.state_dict()
    mismatched = [f'{k}: file {list(v.shape)} vs model {list(own[k].shape)}'
                  for k, v in weights.items() if k in own and v.shape != own[k].shape]
    if mismatched:
        raise WeightsError(f'{source}: shapes differ from the model (is it ResNet-50?):\n  '
                           + '\n  '.join(mismatched))
    result = model.load_state_dict(weights, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith('semantic_head.')]
    if missing or result.unexpected_keys:
        raise WeightsError(f'{source}: the weights do not fit the model; missing: {missing}, '
                           f'unexpected: {result.unexpected_keys}')
    return list(result.missing_keys)


def _fetch_torchvision(variant: str) -> dict[str, torch.Tensor]:
    """torchvision's COCO weights of ``variant`` (downloaded into the torch hub cache if needed)."""
    from torchvision.models import detection

    weights_enum, _ = _TORCHVISION_WEIGHTS[variant]
    return getattr(detection, weights_enum).COCO_V1.get_state_dict(progress=True)


@cli.tool('coco_weights')
def main(argv: list[str] | None = None) -> int:
    """Write a ``load_from``-ready checkpoint of torchvision's COCO Mask R-CNN for PanopticFPN."""
    parser = argparse.ArgumentParser(
        prog='python -m openpsg.models.segmenters.coco_weights',
        description='Convert torchvision COCO Mask R-CNN weights into PanopticFPN weights '
                    '(80 PSG thing classes) for a config\'s load_from.')
    parser.add_argument('--variant', choices=VARIANTS, default='v1',
                        help='v1: maskrcnn_resnet50_fpn, v2: maskrcnn_resnet50_fpn_v2')
    parser.add_argument('--src', help='torchvision .pth file (default: fetch torchvision\'s COCO_V1 '
                                      'weights into the torch hub cache)')
    parser.add_argument('--out', required=True, help='output .pth file')
    cli.add_debug_argument(parser)
    args = parser.parse_args(argv)
    state, source = _read(args.src) if args.src else (_fetch_torchvision(args.variant),
                                                      _TORCHVISION_WEIGHTS[args.variant][1])
    weights = convert_torchvision_maskrcnn(state, args.variant, source)
    with atomic_write(args.out, 'wb') as f:
        torch.save({'state_dict': weights, 'meta': {'source': source, 'variant': args.variant}}, f)
    print(f'wrote {args.out} ({len(weights)} tensors, {args.variant}, from {source})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
