"""Draw dataset samples as the model sees them (after the pipeline): masks, names and relations.

    python tools/browse_dataset.py configs/_base_/datasets/psg.py --out work_dirs/browse
    python tools/browse_dataset.py configs/psgtr/psgtr_r50_psg.py --out browse --num 20 --shuffle
    python tools/browse_dataset.py configs/_base_/datasets/psg_synth.py --out browse --split test \\
        --cfg-options data.test.data_root=/tmp/synth/ data.test.ann_file=/tmp/synth/psg.json

Writes ``OUT/<image_id>.png`` per image: the transformed image (normalisation undone, padding cut)
with its segments, relation arrows and the list of relations. Image ``i`` is transformed with a
generator seeded from ``(--seed, i)``, so a run is reproducible; an image the pipeline rejects
(e.g. no crop keeps a relation) is reported and skipped.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from openpsg import cli
from openpsg.config import Config, ConfigError, DictAction
from openpsg.datasets.transforms import Compose, Normalize
from openpsg.registry import DATASETS
from openpsg.structures import Sample
from openpsg.visualization import compose_sample_figure


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file whose data.<split> dataset is drawn')
    parser.add_argument('--out', required=True, help='folder for the PNGs')
    parser.add_argument('--num', type=int, default=8, help='number of images (default 8)')
    parser.add_argument('--split', choices=('train', 'val', 'test'), default='train',
                        help='which data.<split> entry of the config to build (default train)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the pipeline randomness')
    parser.add_argument('--shuffle', action='store_true',
                        help='draw --num random images (seeded) instead of the first ones')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys, e.g. data.train.ann_file=x.json')
    cli.add_debug_argument(parser)
    return parser.parse_args(argv)


def norm_stats(pipeline: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the pipeline's :class:`Normalize` step (0 and 1 if there is none)."""
    for step in pipeline:
        if isinstance(step, Normalize):
            return step.mean, step.std
    return np.zeros(3, np.float32), np.ones(3, np.float32)


def sample_arrays(sample: Sample, mean: np.ndarray, std: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """The sample's image ``(h, w, 3)`` uint8 (normalisation undone, padding cut) and its masks
    ``(N, h, w)`` bool (``None`` if the pipeline loaded none)."""
    h, w = sample.meta.img_shape
    img = sample.img[:, :h, :w].permute(1, 2, 0).numpy() * std + mean
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    masks = sample.masks.numpy()
    return image, (masks[:, :h, :w] if masks.shape[1:] != (0, 0) else None)


@cli.tool('browse_dataset.py')
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config, overrides=args.cfg_options)
    if args.split not in cfg.get('data', {}):
        raise ConfigError(f'{args.config}: config has no data.{args.split}')
    dataset = DATASETS.build(cfg.data[args.split])
    pipeline: Compose = dataset.pipeline
    mean, std = norm_stats(pipeline.transforms)
    num = min(args.num, len(dataset))
    indices = (np.random.default_rng(args.seed).choice(len(dataset), num, replace=False)
               if args.shuffle else np.arange(num))
    os.makedirs(args.out, exist_ok=True)
    written = 0
    for idx in tqdm(indices.tolist(), desc='browse', unit='img'):
        results = dataset.get_data_info(idx)
        results['rng'] = np.random.default_rng([args.seed, idx])
        sample = pipeline(results)
        if sample is None:
            tqdm.write(f'image_id={results["image_id"]}: rejected by the pipeline, skipped')
            continue
        image, masks = sample_arrays(sample, mean, std)
        meta = sample.meta
        title = (f'image_id={meta.image_id}  {meta.ori_shape[0]}x{meta.ori_shape[1]} -> '
                 f'{meta.img_shape[0]}x{meta.img_shape[1]}{"  flipped" if meta.flip else ""}')
        compose_sample_figure(image, sample.labels.numpy(), sample.rels.numpy(), dataset.classes,
                              dataset.predicates, masks=masks, boxes=sample.boxes.numpy(),
                              title=title, out_file=os.path.join(args.out, f'{meta.image_id}.png'))
        written += 1
    print(f'wrote {written} image(s) to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
