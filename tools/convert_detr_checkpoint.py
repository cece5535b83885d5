"""Convert an official facebookresearch/detr checkpoint into an openpsg DETR / DETR4Seg / PSGTR /
PSGFormer checkpoint, for the config it will initialise.

    python tools/convert_detr_checkpoint.py detr-r50-panoptic-00ce5173.pth \
        work_dirs/checkpoints/detr_pan_r50.pth --config configs/detr4seg/detr4seg_r50_psg.py
    python tools/convert_detr_checkpoint.py detr-r101-panoptic-40021d53.pth \
        work_dirs/checkpoints/detr_pan_r101.pth --config configs/psgtr/psgtr_r101_psg.py
    python tools/convert_detr_checkpoint.py detr-r50-e632da11.pth work_dirs/checkpoints/detr_r50.pth \
        --config configs/detr4seg/detr4seg_r50_psg.py

openpsg's DETR modules use DETR's own parameter names, so the conversion only

* strips the ``detr.`` prefix of the panoptic checkpoints (``detr.transformer...`` becomes
  ``transformer...``; ``bbox_attention.*`` and ``mask_head.*`` are kept as they are);
* re-sizes the class head ``class_embed`` to the 133 PSG classes + "no object":

  - ``--classes coco`` (default): PSG's 133 classes are COCO panoptic's 133 in the same order, and
    DETR's class head is indexed by the sparse COCO category id (1..200; "no object" is the last
    row, 250 for panoptic and 91 for detection checkpoints). PSG class ``k`` takes the row of
    :data:`~openpsg.models.conversion.COCO_PANOPTIC_IDS` ``[k]`` and "no object" the last row.
    Classes the source does not know (the 53 stuff classes of a detection checkpoint) get zero
    weights and the mean bias of the copied classes;
  - ``--classes drop``: leave ``class_embed`` out (the model keeps its fresh initialisation; load
    the result with ``strict=False``).

It then refuses the checkpoint if the model of ``--config`` (with ``--cfg-options``) cannot hold
it, naming both: the backbone, input projection, queries and transformer must match tensor for
tensor (depth, width, layers, number of queries, the backbone map read), other tensors both have
must match in shape, and the backbone's dilation must match ``model.backbone.dilation`` -- a DC5
checkpoint (``dilation`` in its stored training arguments, or ``dc5`` in its file name) would
otherwise load cleanly into a model that computes C5 at stride 32.

The output is ``{'state_dict': ..., 'meta': {...}}`` holding only tensors and strings, readable with
``torch.load(path, weights_only=True)``; it is written to a temporary file and renamed, so a failed
conversion leaves no partial file.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from openpsg import cli
from openpsg.config import DictAction
from openpsg.models.conversion import (COCO_PANOPTIC_IDS, ConversionError, build_target_model,
                                       check_architecture, coco_rows, read_checkpoint, save_atomic)

REQUIRED_KEYS = ('class_embed.weight', 'class_embed.bias', 'input_proj.weight', 'query_embed.weight',
                 'transformer.encoder.layers.0.self_attn.in_proj_weight')


def map_class_head(weight: torch.Tensor, bias: torch.Tensor,
                   category_ids: tuple[int, ...] = COCO_PANOPTIC_IDS
                   ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """DETR class head rows indexed by COCO category id (last row = no object) -> rows in PSG order
    plus no object. Returns the new weight ``(len(ids) + 1, d)``, bias and how many rows were copied."""
    no_object = weight.shape[0] - 1
    rows, row_bias, known = coco_rows(weight[:no_object], bias[:no_object], category_ids)
    row_bias[~known] = row_bias[known].mean().item() if known.any() else 0.0
    return (torch.cat([rows, weight[no_object:]]), torch.cat([row_bias, bias[no_object:]]),
            int(known.sum()))


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official DETR checkpoint, e.g. detr-r50-panoptic-00ce5173.pth')
    parser.add_argument('dst', help='output, e.g. work_dirs/checkpoints/detr_pan_r50.pth')
    parser.add_argument('--config', required=True,
                        help='config of the model the output initialises (architecture check)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config settings, as for tools/train.py')
    parser.add_argument('--classes', choices=('coco', 'drop'), default='coco',
                        help='map the class head to PSG classes by COCO category id, or drop it')
    cli.add_debug_argument(parser)
    return parser.parse_args(argv)


@cli.tool('convert_detr_checkpoint.py')
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    source = read_checkpoint(args.src)
    state, summary = convert_state_dict(source.state, args.classes, args.src)
    model, cfg = build_target_model(args.config, args.cfg_options)
    check_architecture(state, source, model, cfg, args.config)
    meta = {'source': Path(args.src).name, 'classes': args.classes, 'config': str(args.config),
            'converter': 'convert_detr_checkpoint'}
    save_atomic({'state_dict': state, 'meta': meta}, args.dst)
    print(f'{args.dst}: {len(state)} tensors; {summary}; fits {args.config}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
