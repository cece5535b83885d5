"""Convert an official facebookresearch/detr checkpoint into an openpsg DETR / DETR4Seg checkpoint.

    python tools/convert_detr_checkpoint.py detr-r50-panoptic-00ce5173.pth \
        work_dirs/checkpoints/detr_pan_r50.pth
    python tools/convert_detr_checkpoint.py detr-r101-panoptic-40021d53.pth \
        work_dirs/checkpoints/detr_pan_r101.pth
    python tools/convert_detr_checkpoint.py detr-r50-e632da11.pth work_dirs/checkpoints/detr_r50.pth

openpsg's DETR modules use DETR's own parameter names, so the conversion only

* strips the ``detr.`` prefix of the panoptic checkpoints (``detr.transformer...`` becomes
  ``transformer...``; ``bbox_attention.*`` and ``mask_head.*`` are kept as they are);
* re-sizes the class head ``class_embed`` to the 133 PSG classes + "no object":

  - ``--classes coco`` (default): PSG's 133 classes are COCO panoptic's 133 in the same order, and
    DETR's class head is indexed by the sparse COCO category id (1..200; "no object" is the last
    row, 250 for panoptic and 91 for detection checkpoints). PSG class ``k`` takes the row of
    :data:`COCO_PANOPTIC_IDS` ``[k]`` and "no object" the last row. Classes the source does not
    know (the 53 stuff classes of a detection checkpoint) get zero weights and the mean bias of
    the copied classes;
  - ``--classes drop``: leave ``class_embed`` out (the model keeps its fresh initialisation; load
    the result with ``strict=False``).

The output is ``{'state_dict': ..., 'meta': {...}}`` holding only tensors and strings, readable with
``torch.load(path, weights_only=True)``; it is written to a temporary file and renamed, so a failed
conversion leaves no partial file.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from openpsg import cli
from openpsg.errors import InputError
from openpsg.fileio import atomic_write

# COCO panoptic category id of each PSG class, in PSG order (80 things, then 53 stuff classes).
COCO_PANOPTIC_IDS: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90,
    92, 93, 95, 100, 107, 109, 112, 118, 119, 122, 125, 128, 130, 133, 138, 141, 144, 145, 147,
    148, 149, 151, 154, 155, 156, 159, 161, 166, 168, 171, 175, 176, 177, 178, 180, 181, 184, 185,
    186, 187, 188, 189, 190, 191, 192, 193, 194, 195, 196, 197, 198, 199, 200)
assert len(COCO_PANOPTIC_IDS) == 133

REQUIRED_KEYS = ('class_embed.weight', 'class_embed.bias', 'input_proj.weight', 'query_embed.weight',
                 'transformer.encoder.layers.0.self_attn.in_proj_weight')


class ConversionError(InputError, ValueError):
    """The source file is not a DETR checkpoint this tool can convert."""


def load_detr_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model weights of a DETR checkpoint file (under ``'model'``, ``'state_dict'`` or at the
    top level), read with ``weights_only=True`` (``argparse.Namespace`` entries allowed)."""
    torch.serialization.add_safe_globals([argparse.Namespace])  # DETR's training arguments
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise ConversionError(f'{path}: no such file') from None
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ConversionError(f'{path}: cannot be read as a torch checkpoint with weights_only=True '
                              f'({type(err).__name__}: {str(err).splitlines()[0]})') from err
    state = ckpt
    for key in ('model', 'state_dict'):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f'{path}: expected a dict of tensors under "model", "state_dict" or at '
                              f'the top level')
    return state


def map_class_head(weight: torch.Tensor, bias: torch.Tensor,
                   category_ids: tuple[int, ...] = COCO_PANOPTIC_IDS
                   ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """DETR class head rows indexed by COCO category id (last row = no object) -> rows in PSG order
    plus no object. Returns the new weight ``(len(ids) + 1, d)``, bias and how many rows were copied."""
    no_object = weight.shape[0] - 1
    ids = torch.tensor(category_ids)
    known = ids < no_object
    new_weight = weight.new_zeros((len(ids) + 1, weight.shape[1]))
    new_bias = bias.new_full((len(ids) + 1,), bias[ids[known]].mean().item() if known.any() else 0.0)
    new_weight[:-1][known] = weight[ids[known]]
    new_bias[:-1][known] = bias[ids[known]]
    new_weight[-1] = weight[no_object]
    new_bias[-1] = bias[no_object]
    return new_weight, new_bias, int(known.sum())


def convert_state_dict(state: dict[str, torch.Tensor], classes: str = 'coco',
                       source: str = 'checkpoint') -> tuple[dict[str, torch.Tensor], str]:
    """DETR (detection or panoptic) weights -> openpsg DETR/DETR4Seg weights and a one-line summary."""
    state = {k[len('detr.'):] if k.startswith('detr.') else k: v for k, v in state.items()}
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ConversionError(f'{source}: not a DETR checkpoint, missing {", ".join(missing)}')
    if classes == 'drop':
        del state['class_embed.weight'], state['class_embed.bias']
        return state, 'class_embed dropped'
    if classes != 'coco':
        raise ConversionError(f'classes must be "coco" or "drop", got {classes!r}')
    weight, bias, copied = map_class_head(state['class_embed.weight'], state['class_embed.bias'])
    state['class_embed.weight'], state['class_embed.bias'] = weight, bias
    return state, (f'class_embed mapped to {len(COCO_PANOPTIC_IDS)} PSG classes + no object '
                   f'({copied} copied, {len(COCO_PANOPTIC_IDS) - copied} initialised)')


def save_atomic(obj: dict, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the target folder, then rename it into place."""
    with atomic_write(path, 'wb') as f:
        torch.save(obj, f)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official DETR checkpoint, e.g. detr-r50-panoptic-00ce5173.pth')
    parser.add_argument('dst', help='output, e.g. work_dirs/checkpoints/detr_pan_r50.pth')
    parser.add_argument('--classes', choices=('coco', 'drop'), default='coco',
                        help='map the class head to PSG classes by COCO category id, or drop it')
    cli.add_debug_argument(parser)
    return parser.parse_args(argv)


@cli.tool('convert_detr_checkpoint.py')
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    state, summary = convert_state_dict(load_detr_state_dict(args.src), args.classes, args.src)
    meta = {'source': Path(args.src).name, 'classes': args.classes,
            'converter': 'convert_detr_checkpoint'}
    save_atomic({'state_dict': state, 'meta': meta}, args.dst)
    print(f'{args.dst}: {len(state)} tensors; {summary}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
