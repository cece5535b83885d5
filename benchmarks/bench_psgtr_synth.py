"""Training benchmark: a CPU-sized one-stage model trained on the synthetic PSG set.

    python tools/train.py configs/panoptic_fpn/panoptic_fpn_tiny_synth.py   # its ResNet-18
    python benchmarks/bench_psgtr_synth.py                      # 2 CPU threads, data/psg_synth
    python benchmarks/bench_psgtr_synth.py --config configs/psgformer/psgformer_tiny_synth.py
    python benchmarks/bench_psgtr_synth.py --config configs/psgtr/psgtr_deformable_tiny_synth.py
    python benchmarks/bench_psgtr_synth.py --config configs/egtr/egtr_tiny_box_synth.py

Any tiny one-stage config fits: PSGTR and PSGFormer on either transformer, EGTR's box setting
(its test split is read box-only, so relations are matched by box and there is no PQ) and any
model whose test split has masks (scored as PSGTR's).

0. The config's backbone weights (``model.backbone.pretrained``, a file) must exist: the tiny
   configs take the ResNet-18 of the trained tiny Panoptic FPN.

1. ``--data`` (default ``data/psg_synth``) is generated with 900 training and 100 test images if
   it does not exist; an existing set is used as it is (its sizes are reported).
2. ``tools/train.py CONFIG --no-validate`` trains the model (``--cfg-options`` are passed on), with
   ``--threads`` torch threads.
3. The last checkpoint predicts the test split (``data.test``), and ``openpsg.evaluation.evaluate``
   scores SGDet under both protocols (R@K, mR@K, K = 20/50/100) and PQ (box-only test splits:
   SGDet matched by box, no PQ), for the config's output mode and, for models with an ``output``
   setting, for ``output='legacy'`` (OpenPSG's ``eval_pan_rels=False`` rows, its published
   numbers' output).
4. Baselines on the same segments (``openpsg.models.frequency_scene_graph``): every ordered pair
   of the model's own predicted segments (boxes) gets the training split's predicate distribution -
   one for all pairs ("most frequent predicate") or one per (subject class, object class) with
   "no relation" counted ("FREQ") - ranked by its best predicate probability times the two
   segment scores. What the model adds over them is what its relation head learned.

Training runs as a child process (its wall time and peak resident memory are measured); the
machine's load averages (1, 5, 15 min) before and after training are recorded beside them. Prints
the numbers and writes them to ``WORK_DIR/bench.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from common import ROOT, data_options, ensure_synthetic_data, run_tool

KEYS = [f'sgdet/{protocol}/{metric}@{k}' for protocol in ('openpsg', 'fair')
        for metric in ('R', 'mR') for k in (20, 50, 100)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default='configs/psgtr/psgtr_tiny_synth.py')
    parser.add_argument('--data', default='data/psg_synth', help='synthetic PSG folder (data root)')
    parser.add_argument('--work-dir', help='default: work_dirs/bench_<config name>')
    parser.add_argument('--threads', type=int, default=2, help='torch threads (default: 2)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='passed on to tools/train.py, e.g. runner.max_epochs=1')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    torch.set_num_threads(args.threads)
    from openpsg.config import Config, parse_cfg_options
    from openpsg.datasets.loader import build_test_loader
    from openpsg.engine.checkpoint import load_weights
    from openpsg.engine.inference import inference
    from openpsg.evaluation import evaluate, format_results
    from openpsg.models import frequency_scene_graph
    from openpsg.datasets.statistics import predicate_frequency_counts
    from openpsg.registry import DATASETS, MODELS

    ensure_synthetic_data(args.data)
    work_dir = args.work_dir or f'work_dirs/bench_{Path(args.config).stem}'
    options = data_options(args.data) + list(args.cfg_options)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(parse_cfg_options(options))
    try:  # fails first on missing backbone weights (model.backbone.pretrained)
        model = MODELS.build(cfg.model)
    except FileNotFoundError as err:
        print(f'{args.config}: {err}', file=sys.stderr)
        return 1
    train_images = len(DATASETS.build({**cfg.data.train, 'pipeline': []}))
    test_set = DATASETS.build(cfg.data.test)
    epochs = int(cfg.runner.max_epochs)
    print(f'{args.config}: {train_images} training / {len(test_set)} test images, '
          f'{epochs} epochs, {args.threads} threads', flush=True)

    load_before = os.getloadavg()
    stats = run_tool('train', [args.config, '--work-dir', work_dir, '--no-validate', '--seed',
                               str(args.seed), '--cfg-options', *options],
                     os.path.join(work_dir, 'bench_train.log'), args.threads)
    load_after = os.getloadavg()
    load_weights(model, os.path.join(work_dir, 'latest.pth'), strict=True)
    model.eval()
    start = time.perf_counter()
    predictions = inference(model, build_test_loader(test_set, 1))
    predict_seconds = time.perf_counter() - start
    metrics = ('sgdet', 'PQ') if getattr(test_set, 'with_masks', True) else ('sgdet',)
    tables = {'model': evaluate(predictions, test_set, metrics=metrics)}
    if getattr(model, 'output', 'legacy') != 'legacy':  # PSGTR, PSGFormer
        model.output = 'legacy'
        tables["output='legacy'"] = evaluate(inference(model, build_test_loader(test_set, 1)),
                                             test_set, metrics=('sgdet',))
    counts = predicate_frequency_counts(cfg.data.train.ann_file, with_no_relation=True)
    most_frequent = np.append(counts[..., :-1].sum((0, 1)), 0.0)  # no "no relation" mass
    for name, table in (('most frequent predicate, same segments', most_frequent),
                        ('FREQ (per class pair), same segments', counts)):
        tables[name] = evaluate([frequency_scene_graph(p, table) for p in predictions], test_set,
                                metrics=('sgdet',))

    report = {
        'config': args.config, 'data': args.data, 'train_images': train_images,
        'test_images': len(test_set), 'epochs': epochs, 'threads': args.threads,
        'train_seconds': round(stats.seconds, 1),
        'train_images_per_second': round(train_images * epochs / stats.seconds, 2),
        'predict_images_per_second': round(len(test_set) / predict_seconds, 2),
        'peak_rss_mb': round(stats.peak_rss_mb),
        'load_before': [round(x, 2) for x in load_before],
        'load_after': [round(x, 2) for x in load_after],
        'torch': torch.__version__, 'cpu': platform.processor() or platform.machine(),
    }
    for name, scores in tables.items():
        keep = {k: round(v, 2) for k, v in scores.items() if k in KEYS or '/' not in k}
        print(f'\n{name}\n{format_results(keep)}')
        report[name] = keep
    print(json.dumps({k: v for k, v in report.items() if k not in tables}, indent=1))
    with open(os.path.join(work_dir, 'bench.json'), 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
