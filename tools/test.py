"""Run a trained model on the test split: evaluate, save predictions, write a submission, draw.

    python tools/test.py CONFIG CKPT --eval sgdet PQ                 # both protocols side by side
    python tools/test.py CONFIG CKPT --out work_dirs/x/preds.pth     # predictions for later use
    python tools/test.py CONFIG CKPT --submit submission             # challenge submission folder
    python tools/test.py CONFIG CKPT --show-dir vis                  # one figure per image
    python tools/test.py CONFIG CKPT --eval sgdet --amp bf16         # predict under bf16 autocast
    torchrun --nproc_per_node=8 tools/test.py CONFIG CKPT --eval sgdet --launcher pytorch

Every rank predicts its share of the test images; rank 0 collects them in dataset order and does
the rest. ``--out`` files (``.pth`` or ``.json``) are read back with
:func:`openpsg.engine.load_predictions`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from openpsg import cli
from openpsg.checks import integer
from openpsg.config import Config, DictAction
from openpsg.datasets.io import read_image
from openpsg.datasets.loader import build_test_loader
from openpsg.engine.amp import AMP_MODES, resolve_amp
from openpsg.engine.checkpoint import load_weights
from openpsg.engine.dist import (LAUNCHERS, destroy_dist, get_device, get_rank, get_world_size,
                                 init_dist)
from openpsg.engine.env import import_custom_modules
from openpsg.engine.inference import collect_predictions, inference, save_predictions
from openpsg.engine.logger import get_logger
from openpsg.engine.settings import check_evaluation, evaluation_kwargs
from openpsg.engine.trainer import training_triplets
from openpsg.evaluation.fair_protocol import DEDUP_MODES
from openpsg.evaluation.runner import PANOPTIC, evaluate, format_results
from openpsg.evaluation.submission import write_submission
from openpsg.evaluation.submission_folder import check_submission_dir
from openpsg.fileio import atomic_write
from openpsg.parallel import set_torch_threads
from openpsg.registry import DATASETS, MODELS
from openpsg.structures import MODES, Prediction
from openpsg.visualization import compose_sample_figure

METRICS = (*MODES, PANOPTIC)
PROTOCOLS = {'openpsg': ('openpsg',), 'fair': ('fair',), 'both': ('openpsg', 'fair')}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a panoptic scene graph model.')
    parser.add_argument('config', help='config file (.py)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='write the scores to WORK_DIR/eval_<time>.json')
    parser.add_argument('--out', metavar='PRED_FILE', help='save the predictions (.pth or .json)')
    parser.add_argument('--eval', nargs='+', choices=METRICS, metavar='METRIC',
                        help=f'evaluate: any of {", ".join(METRICS)}')
    parser.add_argument('--protocol', choices=sorted(PROTOCOLS),
                        help='scene-graph protocol(s) (default: the config\'s, else both)')
    parser.add_argument('--dedup', choices=DEDUP_MODES,
                        help='how the fair protocol treats several rows of one pair (default: the '
                        'config\'s, else first)')
    parser.add_argument('--eval-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='more evaluate() arguments, e.g. ks=[20,50,100] workers=4')
    parser.add_argument('--submit', metavar='DIR',
                        help='write a challenge submission to DIR (new, empty, or a previous '
                        'submission, whose relation.json and panseg/ are replaced)')
    parser.add_argument('--show-dir', metavar='DIR', help='draw each image\'s prediction into DIR')
    parser.add_argument('--show-topk', type=int, default=20,
                        help='relations drawn per image (default 20)')
    parser.add_argument('--amp', choices=AMP_MODES,
                        help='predict under mixed precision: bf16 (CUDA or CPU autocast) or fp16 '
                        '(CUDA) (default: the config\'s amp, else none)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, e.g. data.test.ann_file=...')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none',
                        help='pytorch: started by torchrun / torch.distributed.launch')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    cli.add_debug_argument(parser)
    args = parser.parse_args(argv)
    if not (args.out or args.eval or args.submit or args.show_dir):
        parser.error('nothing to do: give at least one of --out, --eval, --submit, --show-dir')
    return args


def cli_evaluation_kwargs(args: argparse.Namespace, cfg: Config) -> dict:
    """``evaluate()`` arguments: those of the config's ``evaluation``, updated by the command line
    (``--eval`` replaces the config's metrics)."""
    kwargs = evaluation_kwargs(cfg.get('evaluation'))
    kwargs['metrics'] = list(args.eval)
    if args.protocol:
        kwargs['protocols'] = PROTOCOLS[args.protocol]
    if args.dedup:
        kwargs['dedup'] = args.dedup
    kwargs.update(args.eval_options or {})
    if 'zero_shot_triplets' not in kwargs and cfg.get('data', {}).get('train'):
        train_cfg = cfg.data.train.copy()
        train_cfg['pipeline'] = []
        train_set = DATASETS.build(train_cfg)
        kwargs['zero_shot_triplets'] = training_triplets(train_set)
    return kwargs


def draw_predictions(predictions: list[Prediction], dataset, show_dir: str, topk: int) -> None:
    """One PNG per image: its segments and its ``topk`` best relations (argmax predicate per
    row)."""
    os.makedirs(show_dir, exist_ok=True)
    for idx, pred in enumerate(predictions):
        info = dataset.get_data_info(idx)
        image = read_image(info['img_path'], pred.image_id, (info['height'], info['width']))
        pairs = np.asarray(pred.pairs)[:topk]
        predicates = np.asarray(pred.predicate_scores)[:topk]
        rels = np.concatenate([pairs.reshape(-1, 2), predicates.argmax(1).reshape(-1, 1)], 1)
        compose_sample_figure(image, pred.labels, rels, dataset.classes, dataset.predicates,
                              masks=pred.dense_masks((info['height'], info['width'])),
                              title=f'image {pred.image_id}: top {len(rels)} relations',
                              out_file=os.path.join(show_dir, f'{pred.image_id}.png'))


@cli.tool('test.py')
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    try:
        if args.submit:
            check_submission_dir(args.submit)  # before hours of inference, not after
        cfg = Config.fromfile(args.config, overrides=args.cfg_options)
        import_custom_modules(cfg.get('custom_imports'))
        init_dist(args.launcher, **dict(cfg.get('dist_params') or {}))
        set_torch_threads()
        logger = get_logger(rank=get_rank())
        device = get_device()
        amp = resolve_amp(args.amp or cfg.get('amp') or 'none', device)
        test_cfg = cfg.data.test.copy()
        samples_per_gpu = integer(1)(test_cfg.pop('samples_per_gpu', 1),
                                     'data.test.samples_per_gpu')
        dataset = DATASETS.build(test_cfg)
        eval_kwargs = cli_evaluation_kwargs(args, cfg) if args.eval else None
        if eval_kwargs is not None:
            check_evaluation(eval_kwargs, dataset, where='evaluation (with --eval, --eval-options)')
        model = MODELS.build(cfg.model)
        load_weights(model, args.checkpoint, strict=True)
        model.to(device)
        workers = integer(0)(cfg.data.get('workers_per_gpu', 0), 'data.workers_per_gpu')
        loader = build_test_loader(dataset, samples_per_gpu, workers, get_world_size(), get_rank())
        predictions = collect_predictions(inference(model, loader, amp=amp), dataset.image_ids)
        if predictions is None:
            return 0
        logger.info(f'{len(predictions)} predictions for {dataset!r}')
        if args.out:
            save_predictions(predictions, args.out)
            logger.info(f'predictions written to {args.out}')
        if args.submit:
            write_submission(predictions, dataset.image_ids, args.submit)
            logger.info(f'submission written to {args.submit}')
        if args.show_dir:
            draw_predictions(predictions, dataset, args.show_dir, args.show_topk)
            logger.info(f'drawings written to {args.show_dir}')
        if args.eval:
            results = evaluate(predictions, dataset, **eval_kwargs)
            print(format_results(results))
            if args.work_dir:
                path = os.path.join(args.work_dir, f'eval_{time.strftime("%Y%m%d_%H%M%S")}.json')
                with atomic_write(path, 'w') as f:
                    json.dump({'config': args.config, 'checkpoint': args.checkpoint,
                               'metric': results}, f, indent=2)
                logger.info(f'scores written to {path}')
    finally:
        destroy_dist()
    return 0


if __name__ == '__main__':
    sys.exit(main())
