"""Training benchmark: the two-stage models (a tiny segmenter + IMP / MOTIFS / VCTree / GPSNet)
trained from scratch on the synthetic PSG set on a CPU.

    python benchmarks/bench_two_stage_synth.py                       # everything, 2 threads
    python benchmarks/bench_two_stage_synth.py --heads motifs --modes sgdet --rel-epochs 2
    python benchmarks/bench_two_stage_synth.py --segmenter panoptic_fcn --heads   # segmenter only

1. ``--data`` (default ``data/psg_synth``) is generated with 900 training and 100 test images if
   it does not exist; an existing set is used as it is.
2. The segmenter (``--segmenter``: ``configs/panoptic_fpn/panoptic_fpn_tiny_synth.py`` or
   ``configs/panoptic_fcn/panoptic_fcn_tiny_synth.py``) is trained, unless
   ``WORK_DIR/segmenter/latest.pth`` exists (then it is reused), and scored with PQ on the test
   split.
3. For every head and mode, the segmenter's relation config (``configs/<head>/<head>_tiny_<mode>
   _synth.py`` on Panoptic FPN) trains on the frozen segmenter and is scored on the test split in
   its mode under both protocols (R@K, mR@K, K = 20/50/100).
4. Baseline ("FREQ"): the same segments (ground truth in PredCls, the segmenter's in SGDet) with
   every ordered pair given the training split's predicate distribution for its two classes
   (no-relation counted), ranked by that probability times the two segment scores.

Each training runs as a child process: its wall time and peak resident memory are measured. The
numbers are printed as a Markdown table and written to ``WORK_DIR/bench.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch

from common import ROOT, data_options, ensure_synthetic_data, run_tool

HEADS = ('imp', 'motifs', 'vctree', 'gpsnet')
MODES = ('predcls', 'sgdet')
#: Per segmenter: its tiny config and the path pattern of the relation configs built on it.
SEGMENTERS = {
    'panoptic_fpn': ('configs/panoptic_fpn/panoptic_fpn_tiny_synth.py',
                     'configs/{head}/{head}_tiny_{mode}_synth.py'),
    'panoptic_fcn': ('configs/panoptic_fcn/panoptic_fcn_tiny_synth.py',
                     'configs/{head}/{head}_panoptic_fcn_tiny_{mode}_synth.py'),
}
KS = (20, 50, 100)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default='data/psg_synth', help='synthetic PSG folder (data root)')
    parser.add_argument('--work-dir', help='default: work_dirs/bench_two_stage_synth, with '
                        '_<segmenter> appended for a segmenter other than panoptic_fpn')
    parser.add_argument('--segmenter', choices=sorted(SEGMENTERS), default='panoptic_fpn')
    parser.add_argument('--heads', nargs='*', choices=HEADS, default=list(HEADS),
                        help='relation heads (none: train and score the segmenter only)')
    parser.add_argument('--modes', nargs='+', choices=MODES, default=list(MODES))
    parser.add_argument('--seg-epochs', type=int, help="segmenter epochs (default: the config's)")
    parser.add_argument('--rel-epochs', type=int, help="relation epochs (default: the configs')")
    parser.add_argument('--threads', type=int, default=2, help='torch threads (default: 2)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def build_trained(config: str, checkpoint: str, options: list[str]):
    """The config's model with the weights of ``checkpoint``, in eval mode, and its test set."""
    from openpsg.config import Config, parse_cfg_options
    from openpsg.engine.checkpoint import load_weights
    from openpsg.registry import DATASETS, MODELS

    cfg = Config.fromfile(config)
    cfg.merge_from_dict(parse_cfg_options(options))
    model = MODELS.build(cfg.model)
    load_weights(model, checkpoint, strict=True)
    return model.eval(), DATASETS.build(cfg.data.test)


def predict(model, dataset) -> tuple[list, float]:
    """Predictions for every test image and the images per second."""
    from openpsg.datasets.loader import build_test_loader
    from openpsg.engine.inference import inference

    start = time.perf_counter()
    predictions = inference(model, build_test_loader(dataset, 1))
    return predictions, len(dataset) / (time.perf_counter() - start)


def scores_of(results: dict[str, float], mode: str) -> dict[str, float]:
    keys = [f'{mode}/{protocol}/{metric}@{k}' for protocol in ('openpsg', 'fair')
            for metric in ('R', 'mR') for k in KS]
    return {key: round(results[key], 2) for key in keys}


def train(config: str, work_dir: str, options: list[str], args: argparse.Namespace) -> dict:
    stats = run_tool('train', [config, '--work-dir', work_dir, '--no-validate', '--seed',
                               str(args.seed), '--cfg-options', *options],
                     os.path.join(work_dir, 'bench_train.log'), args.threads)
    return {'train_seconds': round(stats.seconds, 1),
            'train_cpu_seconds': round(stats.cpu_seconds, 1),
            'peak_rss_mb': round(stats.peak_rss_mb)}


def markdown(rows: list[dict]) -> str:
    lines = ['| model | mode | train | peak RAM | openpsg R@20/50/100 | openpsg mR@20/50/100 '
             '| fair R@20/50/100 | fair mR@20/50/100 |', '|' + '---|' * 8]
    for row in rows:
        cells = [row['model'], row['mode'],
                 f"{row['train_seconds']:.0f} s" if 'train_seconds' in row else '-',
                 f"{row['peak_rss_mb'] / 1024:.1f} GB" if 'peak_rss_mb' in row else '-']
        mode = row['mode']
        for protocol in ('openpsg', 'fair'):
            for metric in ('R', 'mR'):
                cells.append(' / '.join(f"{row['scores'][f'{mode}/{protocol}/{metric}@{k}']:.1f}"
                                        for k in KS))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    torch.set_num_threads(args.threads)
    from openpsg.evaluation import evaluate
    from openpsg.models import frequency_scene_graph
    from openpsg.datasets.statistics import predicate_frequency_counts

    ensure_synthetic_data(args.data)
    data = data_options(args.data)
    segmenter_config, relation_config = SEGMENTERS[args.segmenter]
    if args.work_dir is None:
        suffix = '' if args.segmenter == 'panoptic_fpn' else f'_{args.segmenter}'
        args.work_dir = f'work_dirs/bench_two_stage_synth{suffix}'
    missing = [relation_config.format(head=head, mode=mode) for mode in args.modes
               for head in args.heads
               if not os.path.isfile(relation_config.format(head=head, mode=mode))]
    if missing:
        raise SystemExit(f'no relation config on {args.segmenter}: {", ".join(missing)}')
    report: dict = {'data': args.data, 'segmenter_config': SEGMENTERS[args.segmenter][0],
                    'threads': args.threads, 'torch': torch.__version__,
                    'cpu': platform.processor() or platform.machine(), 'rows': []}

    seg_dir = os.path.join(args.work_dir, 'segmenter')
    seg_ckpt = os.path.join(seg_dir, 'latest.pth')
    seg_options = data + ([f'runner.max_epochs={args.seg_epochs}'] if args.seg_epochs else [])
    seg_stats = os.path.join(seg_dir, 'bench_train.json')
    if not os.path.isfile(seg_ckpt):
        print(f'training the segmenter ({segmenter_config}) into {seg_dir}', flush=True)
        stats = train(segmenter_config, seg_dir, seg_options, args)
        with open(seg_stats, 'w', encoding='utf-8') as f:
            json.dump(stats, f)
    if os.path.isfile(seg_stats):  # the training cost of a reused segmenter
        with open(seg_stats, encoding='utf-8') as f:
            report['segmenter'] = json.load(f)
    segmenter, test_set = build_trained(segmenter_config, seg_ckpt, seg_options)
    predictions, speed = predict(segmenter, test_set)
    pq = evaluate(predictions, test_set, metrics=('PQ',))
    report.setdefault('segmenter', {}).update(
        {k: round(v, 2) for k, v in pq.items() if k.startswith(('PQ', 'SQ', 'RQ'))},
        predict_images_per_second=round(speed, 2))
    print(f"segmenter: {report['segmenter']}", flush=True)

    counts = predicate_frequency_counts(f'{args.data}/psg.json', with_no_relation=True)
    rel_options = data + [f'model.segmenter_checkpoint={seg_ckpt}'] + (
        [f'runner.max_epochs={args.rel_epochs}'] if args.rel_epochs else [])
    baselines: dict[str, list] = {}
    for mode in args.modes:
        for head in args.heads:
            config = relation_config.format(head=head, mode=mode)
            work_dir = os.path.join(args.work_dir, f'{head}_{mode}')
            print(f'training {config} into {work_dir}', flush=True)
            row = {'model': head, 'mode': mode, **train(config, work_dir, rel_options, args)}
            model, test_set = build_trained(config, os.path.join(work_dir, 'latest.pth'),
                                            rel_options)
            predictions, speed = predict(model, test_set)
            row['scores'] = scores_of(evaluate(predictions, test_set, metrics=(mode,)), mode)
            row['predict_images_per_second'] = round(speed, 2)
            report['rows'].append(row)
            print(json.dumps(row), flush=True)
            baselines.setdefault(mode, predictions)
    for mode, predictions in baselines.items():
        freq = [frequency_scene_graph(p, counts) for p in predictions]
        report['rows'].append({'model': 'FREQ baseline', 'mode': mode,
                               'scores': scores_of(evaluate(freq, test_set, metrics=(mode,)),
                                                   mode)})
    table = markdown(report['rows'])
    print(f"\nsegmenter: {report['segmenter']}\n{table}")
    with open(os.path.join(args.work_dir, 'bench.json'), 'w', encoding='utf-8') as f:
        json.dump({**report, 'table': table}, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
