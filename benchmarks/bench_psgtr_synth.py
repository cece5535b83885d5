"""Training benchmark: the CPU-sized PSGTR trained on the synthetic PSG set.

    python tools/train.py configs/panoptic_fpn/panoptic_fpn_tiny_synth.py   # its ResNet-18
    python benchmarks/bench_psgtr_synth.py                      # 2 CPU threads, data/psg_synth
    python benchmarks/bench_psgtr_synth.py --config configs/psgformer/psgformer_tiny_synth.py

0. The config's backbone weights (``model.backbone.pretrained``, a file) must exist: the tiny
   configs take the ResNet-18 of the trained tiny Panoptic FPN.

1. ``--data`` (default ``data/psg_synth``) is generated with 900 training and 100 test images if
   it does not exist; an existing set is used as it is (its sizes are reported).
2. ``tools/train.py CONFIG --no-validate`` trains the model (``--cfg-options`` are passed on), with
   ``--threads`` torch threads.
3. The last checkpoint predicts the test split (``data.test``), and ``openpsg.evaluation.evaluate``
   scores SGDet under both protocols (R@K, mR@K, K = 20/50/100) and PQ, for the config's output
   mode and for ``output='legacy'`` (OpenPSG's per-row masks).
4. Baseline on the same segments: every ordered pair of the model's own predicted segments gets
   the training set's predicate frequencies as its distribution (argmax: the most frequent
   predicate), ranked by the product of the two segment scores. What the model adds over it is
   what its relation head learned.

Prints the numbers and the cost (training wall time, training images/s, inference images/s, peak
resident memory) and writes them to ``WORK_DIR/bench.json``.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


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


def load_tool(name: str):
    """``tools/<name>.py`` as a module (the tools are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f'tools_{name}', ROOT / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ensure_data(data: str) -> None:
    if os.path.isfile(os.path.join(data, 'psg.json')):
        return
    from openpsg.datasets.synthetic import generate_synthetic_psg
    print(f'generating {data} (900 train / 100 test images)')
    generate_synthetic_psg(data, num_train=900, num_test=100, seed=0, workers=2, progress=True)


def frequency_baseline(prediction, frequencies: np.ndarray):
    """Every ordered pair of ``prediction``'s segments, scored with the predicate ``frequencies``
    and ranked by the product of the segment scores."""
    from dataclasses import replace

    n = prediction.num_segments
    i, j = np.nonzero(~np.eye(n, dtype=bool))
    rank = prediction.scores[i] * prediction.scores[j] * frequencies.max()
    order = np.argsort(-rank, kind='stable')
    return replace(prediction, pairs=np.stack([i, j], 1)[order].astype(np.int64),
                   predicate_scores=np.tile(frequencies, (len(order), 1)).astype(np.float32),
                   triplet_scores=rank[order].astype(np.float32), no_relation_scores=None)


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children, in MB (Linux: KB units)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    torch.set_num_threads(args.threads)
    # the models register themselves on import (until openpsg.models.one_stage imports them)
    import openpsg.models.one_stage.psgformer  # noqa: F401
    import openpsg.models.one_stage.psgtr  # noqa: F401
    from openpsg.config import Config, parse_cfg_options
    from openpsg.datasets.loader import build_test_loader
    from openpsg.engine.checkpoint import load_weights
    from openpsg.engine.inference import inference
    from openpsg.evaluation import evaluate, format_results
    from openpsg.registry import DATASETS, MODELS

    ensure_data(args.data)
    name = Path(args.config).stem
    work_dir = args.work_dir or f'work_dirs/bench_{name}'
    data_options = [f'data.{split}.{key}={value}' for split in ('train', 'val', 'test')
                    for key, value in (('ann_file', f'{args.data}/psg.json'),
                                       ('data_root', f'{args.data}/'))]
    options = data_options + list(args.cfg_options)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(parse_cfg_options(options))

    pretrained = cfg.model.get('backbone', {}).get('pretrained')
    if isinstance(pretrained, str) and not os.path.isfile(pretrained):
        print(f'{args.config}: the backbone weights {pretrained} do not exist; train the model '
              'that provides them first (configs/panoptic_fpn/panoptic_fpn_tiny_synth.py for the '
              'tiny configs)', file=sys.stderr)
        return 1
    train_set = DATASETS.build({**cfg.data.train, 'pipeline': []})
    test_set = DATASETS.build(cfg.data.test)
    epochs = int(cfg.runner.max_epochs)
    print(f'{args.config}: {len(train_set)} training / {len(test_set)} test images, '
          f'{epochs} epochs, {args.threads} threads')

    start = time.perf_counter()
    code = load_tool('train').main([args.config, '--work-dir', work_dir, '--no-validate',
                                    '--seed', str(args.seed), '--cfg-options', *options])
    train_seconds = time.perf_counter() - start
    if code:
        return code

    model = MODELS.build(cfg.model)
    load_weights(model, os.path.join(work_dir, 'latest.pth'), strict=True)
    start = time.perf_counter()
    predictions = inference(model, build_test_loader(test_set, 1))
    predict_seconds = time.perf_counter() - start
    start = time.perf_counter()
    scores = evaluate(predictions, test_set, metrics=('sgdet', 'PQ'))
    eval_seconds = time.perf_counter() - start
    legacy = None
    if getattr(model, 'output', 'legacy') != 'legacy':
        model.output = 'legacy'
        legacy = evaluate(inference(model, build_test_loader(test_set, 1)), test_set,
                          metrics=('sgdet',))
    frequencies = train_set.predicate_frequencies().astype(np.float64)
    frequencies /= frequencies.sum()
    baseline = evaluate([frequency_baseline(p.compact(), frequencies) for p in predictions],
                        test_set, metrics=('sgdet',))

    keys = [f'sgdet/{protocol}/{metric}@{k}' for protocol in ('openpsg', 'fair')
            for metric in ('R', 'mR') for k in (20, 50, 100)]
    report = {
        'config': args.config, 'data': args.data, 'train_images': len(train_set),
        'test_images': len(test_set), 'epochs': epochs, 'threads': args.threads,
        'train_seconds': round(train_seconds, 1),
        'train_images_per_second': round(len(train_set) * epochs / train_seconds, 2),
        'predict_images_per_second': round(len(test_set) / predict_seconds, 2),
        'evaluate_seconds': round(eval_seconds, 1), 'peak_rss_mb': round(peak_rss_mb()),
        'model': {k: round(v, 2) for k, v in scores.items() if k in keys or '/' not in k},
        'model_legacy_output': legacy and {k: round(v, 2) for k, v in legacy.items() if k in keys},
        'baseline_same_segments': {k: round(v, 2) for k, v in baseline.items() if k in keys},
        'torch': torch.__version__, 'cpu': platform.processor() or platform.machine(),
    }
    print(format_results(scores))
    if legacy is not None:
        legacy_table = format_results({k: v for k, v in legacy.items() if k in keys})
        print(f"\noutput='legacy'\n{legacy_table}")
    print('\nfrequency baseline on the same segments\n' + format_results(
        {k: v for k, v in baseline.items() if k in keys}))
    tables = ('model', 'model_legacy_output', 'baseline_same_segments')
    print(json.dumps({k: v for k, v in report.items() if k not in tables}, indent=1))
    with open(os.path.join(work_dir, 'bench.json'), 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
