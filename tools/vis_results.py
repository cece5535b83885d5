"""Draw saved predictions next to the ground truth of the test images.

    python tools/test.py CONFIG CKPT --out work_dirs/x/preds.pth
    python tools/vis_results.py CONFIG work_dirs/x/preds.pth --out work_dirs/x/vis --num 20
    python tools/vis_results.py CONFIG preds.pth --out vis --image-ids 2345 2350 --topk 10

For each chosen image (``--image-ids``, else ``--num`` random ones drawn with ``--seed``) it writes
``OUT/<image_id>.png``: the ground truth (masks, relation arrows and their list), the prediction
(masks and its ``--topk`` best relations scoring at least ``--score-thr``, one per subject-object
pair) and the prediction's scene graph. The test dataset is the config's ``data.test``; a
prediction for an image that is not in it is an error.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import numpy as np
from tqdm import tqdm

from openpsg import cli
from openpsg.apis import SceneGraphResult
from openpsg.config import Config, ConfigError, DictAction
from openpsg.datasets.io import read_image
from openpsg.engine.inference import load_predictions
from openpsg.errors import InputError
from openpsg.registry import DATASETS
from openpsg.structures import Prediction, index_predictions
from openpsg.visualization import compose_sample_figure, save_png, side_by_side


class VisResultsError(InputError, ValueError):
    """Predictions and dataset that do not go together, or a bad choice of images."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config whose data.test dataset the predictions are for')
    parser.add_argument('pred_file',
                        help='predictions saved by tools/test.py --out (.pth or .json)')
    parser.add_argument('--out', required=True, help='folder for the PNGs')
    parser.add_argument('--image-ids', nargs='+', metavar='ID', help='images to draw')
    parser.add_argument('--num', type=int, default=8,
                        help='without --image-ids: number of random images (default 8)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random choice (default 0)')
    parser.add_argument('--topk', type=int, default=20,
                        help='predicted relations drawn (default 20)')
    parser.add_argument('--score-thr', type=float, default=0.0,
                        help='draw only predicted relations scoring at least this (default 0)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, e.g. data.test.data_root=...')
    cli.add_debug_argument(parser)
    args = parser.parse_args(argv)
    if args.num < 1 or args.topk < 0:
        parser.error('--num must be >= 1 and --topk >= 0')
    return args


def choose_images(by_id: dict[str, Prediction], dataset, image_ids: Sequence[str] | None,
                  num: int, seed: int, pred_file: str) -> list[str]:
    """The images to draw: ``image_ids`` (checked), else ``num`` random predicted images, in
    dataset order."""
    if image_ids:
        for image_id in image_ids:
            try:
                dataset.index_of(str(image_id))
            except KeyError as err:
                raise VisResultsError(err.args[0] if err.args else str(err)) from None
            if str(image_id) not in by_id:
                raise VisResultsError(f'{pred_file}: no prediction for image_id {image_id}')
        return [str(i) for i in image_ids]
    ordered = [i for i in dataset.image_ids if i in by_id]
    if not ordered:
        raise VisResultsError(f'{pred_file}: the file holds no prediction')
    picked = np.random.default_rng(seed).choice(len(ordered), min(num, len(ordered)), replace=False)
    return [ordered[i] for i in sorted(picked.tolist())]


def draw_image(dataset, prediction: Prediction, topk: int, score_thr: float) -> np.ndarray:
    """Ground truth | prediction | prediction graph, for one image."""
    idx = dataset.index_of(prediction.image_id)
    info = dataset.get_data_info(idx)
    size = (info['height'], info['width'])
    image = read_image(info['img_path'], prediction.image_id, size)
    gt = dataset.get_gt(idx)
    gt_figure = compose_sample_figure(
        image, gt.labels, gt.rels, dataset.classes, dataset.predicates,
        masks=None if gt.id_map is None else gt.masks(), boxes=gt.boxes,
        title=f'ground truth of image {gt.image_id}: {len(gt.rels)} relations')
    result = SceneGraphResult(prediction, dataset.classes, dataset.predicates, size)
    triplets = result.top_triplets(topk, score_thr)
    rels = np.array([[t.subject, t.object, t.predicate_id] for t in triplets],
                    dtype=np.int64).reshape(-1, 3)
    masks = None if prediction.masks is None else prediction.dense_masks(size)
    pred_figure = compose_sample_figure(
        image, prediction.labels, rels, dataset.classes, dataset.predicates, masks=masks,
        boxes=prediction.boxes, title=f'prediction: top {len(rels)} relations'
        + (f' (score >= {score_thr:g})' if score_thr > 0 else ''))
    graph = result.draw_graph(topk, score_thr, title='predicted scene graph')
    return side_by_side([gt_figure, pred_figure, graph], gap=8)


@cli.tool('vis_results.py')
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config, overrides=args.cfg_options)
    if 'test' not in cfg.get('data', {}):
        raise ConfigError(f'{args.config}: config has no data.test dataset')
    test_cfg = cfg.data.test.copy()
    test_cfg.pop('samples_per_gpu', None)
    dataset = DATASETS.build(test_cfg)
    by_id = index_predictions(load_predictions(args.pred_file), dataset.image_ids,
                              args.pred_file, f'images in the test dataset of {args.config} '
                              f'({dataset.ann_file})')
    image_ids = choose_images(by_id, dataset, args.image_ids, args.num, args.seed, args.pred_file)
    for image_id in tqdm(image_ids, desc='vis', unit='img'):
        try:
            figure = draw_image(dataset, by_id[image_id], args.topk, args.score_thr)
        except (InputError, ValueError) as err:
            raise VisResultsError(f'image_id {image_id}: {err}') from err
        save_png(figure, os.path.join(args.out, f'{image_id}.png'))
    print(f'wrote {len(image_ids)} figure(s) to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
