"""Convert a Deformable DETR checkpoint -- official fundamentalvision/Deformable-DETR, or
HuggingFace ``DeformableDetr*`` / EGTR (naver-ai/egtr, PyTorch Lightning) -- into an openpsg
checkpoint, for the config it will initialise.

    python tools/convert_deformable_detr_checkpoint.py r50_deformable_detr-checkpoint.pth \
        work_dirs/checkpoints/deformable_detr_r50_coco.pth \
        --config configs/deformable_detr/deformable_detr_r50_psg.py
    python tools/convert_deformable_detr_checkpoint.py egtr_vg.ckpt \
        work_dirs/checkpoints/egtr_vg.pth --config CONFIG --classes keep

Sources (told apart by their key names):

* **official** (``{'model': ..., 'args': ...}``): openpsg's ``DeformableDETR`` uses the same names
  (``backbone.0.body.*``, ``input_proj.*``, ``query_embed.weight``, ``transformer.*``,
  ``class_embed.{i}.*``, ``bbox_embed.{i}.*``), so the weights are kept as they are.
* **HuggingFace / EGTR**: ``model.``-prefixed ``DeformableDetrModel`` names with a timm ResNet
  (a Lightning checkpoint adds one more ``model.`` in front; its ``state_dict`` is read). Renamed:
  ``model.backbone.conv_encoder.model.*`` -> ``backbone.0.body.*``;
  ``model.query_position_embeddings`` -> ``query_embed``; ``model.level_embed`` /
  ``model.reference_points`` -> ``transformer.*``; encoder layers ``self_attn_layer_norm``,
  ``fc1``, ``fc2``, ``final_layer_norm`` -> ``norm1``, ``linear1``, ``linear2``, ``norm2``;
  decoder layers ``encoder_attn`` -> ``cross_attn``, ``encoder_attn_layer_norm`` -> ``norm1``,
  ``self_attn_layer_norm`` -> ``norm2``, ``final_layer_norm`` -> ``norm3``, and the separate
  ``self_attn.{q,k,v}_proj`` stacked into ``self_attn.in_proj_weight/bias`` (q, k, v order);
  ``class_embed`` / ``bbox_embed`` keep their names. Other tensors (EGTR's relation head:
  ``proj_q``, ``proj_k``, ``final_sub_proj``, ``final_obj_proj``, ``rel_predictor_gate``,
  ``rel_predictor``, ``connectivity_layer``, ``triplet_dist``, ``rel_dist``) keep their names too.
  A ``config.json`` beside the file (HuggingFace's) provides the training arguments.

Class head (``class_embed.{i}``, sigmoid, no "no object" row):

* ``--classes coco`` (default): a COCO head (91 rows, indexed by COCO category id; 250 for
  panoptic) is re-ordered to the 133 PSG classes by
  :data:`~openpsg.models.conversion.COCO_PANOPTIC_IDS`; classes the source does not know (the 53
  stuff classes of a detection checkpoint) get zero weights and the focal prior bias
  ``-log(99)``, as a fresh head. Any other head size is refused.
* ``--classes keep``: kept as it is (e.g. EGTR's Visual Genome classes for a VG config).
* ``--classes drop``: left out (the model keeps its fresh head; load with ``strict=False``).

Refused: checkpoints with iterative box refinement or two-stage proposals (openpsg's
``DeformableDETR`` has neither), told by their training arguments (``with_box_refine``,
``two_stage``) or their tensors (the decoder's own box / class heads, ``enc_output``,
``pos_trans``, or per-layer heads that differ); and any checkpoint the model of ``--config``
cannot hold (see :mod:`openpsg.models.conversion`: trunk tensors and shapes, which catch feature
levels, points, layers and queries, and the backbone's dilation from ``dilation`` in the
training arguments or ``dc5`` in the file name). The error names the file and the config.

The output is ``{'state_dict': ..., 'meta': {...}}`` of tensors and strings
(``torch.load(path, weights_only=True)`` reads it), written atomically.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import torch

from openpsg import cli
from openpsg.config import DictAction
from openpsg.models.conversion import (COCO_PANOPTIC_IDS, ConversionError, SourceCheckpoint,
                                       build_target_model, check_architecture, coco_rows,
                                       read_checkpoint, save_atomic)

HF_BACKBONE = 'model.backbone.conv_encoder.model.'
HF_LAYER_NAMES = {
    'encoder': {'self_attn_layer_norm': 'norm1', 'fc1': 'linear1', 'fc2': 'linear2',
                'final_layer_norm': 'norm2'},
    'decoder': {'encoder_attn': 'cross_attn', 'encoder_attn_layer_norm': 'norm1',
                'self_attn_layer_norm': 'norm2', 'fc1': 'linear1', 'fc2': 'linear2',
                'final_layer_norm': 'norm3'},
}
HF_LAYER_KEY = re.compile(r'model\.(encoder|decoder)\.layers\.(\d+)\.([^.]+)\.(.+)')
#: tensors of the variants openpsg does not implement, per source format
VARIANT_PREFIXES = {
    'official': ('transformer.decoder.bbox_embed.', 'transformer.decoder.class_embed.',
                 'transformer.enc_output', 'transformer.pos_trans'),
    'huggingface': ('model.decoder.bbox_embed.', 'model.decoder.class_embed.', 'model.enc_output',
                    'model.pos_trans'),
}
COCO_HEAD_ROWS = (91, 250)  # detection (max COCO id 90) and panoptic (max id 200, + 49 unused)
PRIOR_BIAS = -math.log((1 - 0.01) / 0.01)


def source_format(state: dict[str, torch.Tensor], path: str) -> tuple[str, dict[str, torch.Tensor]]:
    """``'official'`` or ``'huggingface'`` and the weights with a Lightning ``model.`` wrapper
    prefix removed."""
    if any(k.startswith('model.model.') for k in state):
        state = {k.removeprefix('model.'): v for k, v in state.items()}
    if any(k.startswith('transformer.level_embed') for k in state):
        return 'official', state
    if 'model.level_embed' in state:
        return 'huggingface', state
    raise ConversionError(f'{path}: not a Deformable DETR checkpoint (no transformer.level_embed '
                          '(official) or model.level_embed (HuggingFace / EGTR))')


def hf_training_args(path: str) -> dict:
    """The ``config.json`` beside a HuggingFace checkpoint (empty if there is none)."""
    config = Path(path).with_name('config.json')
    return json.loads(config.read_text()) if config.is_file() else {}


def refuse_variants(kind: str, state: dict[str, torch.Tensor], source: SourceCheckpoint) -> None:
    """:class:`ConversionError` for box refinement / two-stage checkpoints."""
    flags = [name for name in ('with_box_refine', 'two_stage') if source.args.get(name)]
    tensors = sorted({p for k in state for p in VARIANT_PREFIXES[kind] if k.startswith(p)})
    heads = {}
    for key, value in state.items():
        match = re.match(r'(class_embed|bbox_embed)\.\d+\.(.+)', key)
        if match:
            heads.setdefault(match.groups(), []).append(value)
    differing = sorted(f'{head}.*.{name}' for (head, name), values in heads.items()
                       if any(not torch.equal(values[0], v) for v in values[1:]))
    if flags or tensors or differing:
        reasons = [f'training arguments {", ".join(f"{f}=True" for f in flags)}'] if flags else []
        reasons += [f'tensors {", ".join(tensors)}'] if tensors else []
        if differing:
            reasons.append(f'per-layer heads that differ ({", ".join(differing[:4])})')
        raise ConversionError(
            f'{source.path}: a Deformable DETR with iterative box refinement or two-stage '
            f'proposals ({"; ".join(reasons)}); openpsg\'s DeformableDETR has neither -- use a '
            'checkpoint of the plain model (e.g. r50_deformable_detr-checkpoint.pth)')


def from_huggingface(state: dict[str, torch.Tensor], path: str) -> dict[str, torch.Tensor]:
    """HuggingFace / EGTR names -> openpsg names (see the module docstring)."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    unknown = []
    for key, value in state.items():
        layer = HF_LAYER_KEY.fullmatch(key)
        if key.startswith(HF_BACKBONE):
            out['backbone.0.body.' + key[len(HF_BACKBONE):]] = value
        elif key.startswith('model.input_proj.'):
            out[key.removeprefix('model.')] = value
        elif key == 'model.query_position_embeddings.weight':
            out['query_embed.weight'] = value
        elif key == 'model.level_embed' or key.startswith('model.reference_points.'):
            out['transformer.' + key.removeprefix('model.')] = value
        elif layer:
            part, index, module, rest = layer.groups()
            prefix = f'transformer.{part}.layers.{index}'
            if part == 'decoder' and module == 'self_attn' and rest[:7] in ('q_proj.', 'k_proj.',
                                                                           'v_proj.'):
                qkv.setdefault(f'{prefix}.self_attn.in_proj_{rest[7:]}', {})[rest[0]] = value
            else:
                out[f'{prefix}.{HF_LAYER_NAMES[part].get(module, module)}.{rest}'] = value
        elif key.startswith('model.'):
            unknown.append(key)
        else:
            out[key] = value
    if unknown:
        raise ConversionError(f'{path}: HuggingFace tensors with no openpsg counterpart: '
                              f'{", ".join(sorted(unknown)[:6])}')
    for name, parts in qkv.items():
        if set(parts) != {'q', 'k', 'v'}:
            raise ConversionError(f'{path}: {name} needs q_proj, k_proj and v_proj, found '
                                  f'{sorted(parts)}')
        out[name] = torch.cat([parts['q'], parts['k'], parts['v']])
    return out


def map_class_head(state: dict[str, torch.Tensor], classes: str, path: str) -> str:
    """Apply ``--classes`` to every ``class_embed.{i}`` in place; return a summary."""
    keys = sorted(k for k in state if re.fullmatch(r'class_embed\.\d+\.(weight|bias)', k))
    if classes == 'keep':
        return 'class_embed kept'
    if classes == 'drop':
        for key in keys:
            del state[key]
        return 'class_embed dropped'
    if classes != 'coco':
        raise ConversionError(f'classes must be "coco", "keep" or "drop", got {classes!r}')
    copied = 0
    for key in keys:
        if not key.endswith('.weight'):
            continue
        bias_key = key.removesuffix('weight') + 'bias'
        rows = state[key].shape[0]
        if rows not in COCO_HEAD_ROWS:
            raise ConversionError(f'{path}: {key} has {rows} rows, not a COCO head '
                                  f'({" or ".join(map(str, COCO_HEAD_ROWS))} category ids); use '
                                  '--classes keep (same classes as the config) or drop')
        weight, bias, known = coco_rows(state[key], state[bias_key])
        bias[~known] = PRIOR_BIAS
        state[key], state[bias_key] = weight, bias
        copied = int(known.sum())
    return (f'class_embed mapped to {len(COCO_PANOPTIC_IDS)} PSG classes ({copied} copied, '
            f'{len(COCO_PANOPTIC_IDS) - copied} initialised)')


def convert(source: SourceCheckpoint, classes: str = 'coco'
            ) -> tuple[dict[str, torch.Tensor], str, str]:
    """Official or HuggingFace / EGTR Deformable DETR weights -> openpsg weights, the source
    format and a one-line summary of the class head. Refuses box refinement / two-stage."""
    kind, state = source_format(source.state, source.path)
    refuse_variants(kind, state, source)
    if kind == 'huggingface':
        state = from_huggingface(state, source.path)
    return state, kind, map_class_head(state, classes, source.path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official .pth, HuggingFace .bin/.pth or EGTR Lightning .ckpt')
    parser.add_argument('dst', help='output, e.g. work_dirs/checkpoints/deformable_detr_r50.pth')
    parser.add_argument('--config', required=True,
                        help='config of the model the output initialises (architecture check)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config settings, as for tools/train.py')
    parser.add_argument('--classes', choices=('coco', 'keep', 'drop'), default='coco',
                        help='class head: re-order COCO ids to PSG classes, keep it, or drop it')
    cli.add_debug_argument(parser)
    return parser.parse_args(argv)


@cli.tool('convert_deformable_detr_checkpoint.py')
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    source = read_checkpoint(args.src)
    if not source.args and source_format(source.state, args.src)[0] == 'huggingface':
        source.args = hf_training_args(args.src)
    state, kind, summary = convert(source, args.classes)
    model, cfg = build_target_model(args.config, args.cfg_options)
    check_architecture(state, source, model, cfg, args.config)
    meta = {'source': Path(args.src).name, 'format': kind, 'classes': args.classes,
            'config': str(args.config), 'converter': 'convert_deformable_detr_checkpoint'}
    save_atomic({'state_dict': state, 'meta': meta}, args.dst)
    article = 'an' if kind == 'official' else 'a'
    print(f'{args.dst}: {len(state)} tensors from {article} {kind} checkpoint; {summary}; '
          f'fits {args.config}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
