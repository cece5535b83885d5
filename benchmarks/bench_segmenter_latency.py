"""CPU inference latency of a segmenter: ``model(batch, mode='predict')`` on one image at a time
(features, heads, post-processing, segments at the original size).

    python benchmarks/bench_segmenter_latency.py configs/panoptic_fcn/panoptic_fcn_r50_fpn_3x_psg.py \\
        --size 800 1333
    python benchmarks/bench_segmenter_latency.py configs/panoptic_fcn/panoptic_fcn_tiny_synth.py \\
        --checkpoint work_dirs/bench_two_stage_synth_panoptic_fcn/segmenter/latest.pth \\
        --data data/psg_synth

With ``--data`` the images are the first ``--runs`` test images of that synthetic set, through
the config's test pipeline; otherwise one random image of ``--size`` (already normalised, padded
to a multiple of 32). Without ``--checkpoint`` the weights are random (``backbone.pretrained``
off): the post-processing then handles few segments, so the number is mostly the network's.
Prints the median and the fastest wall time of ``--runs`` timed calls after ``--warmup``
untimed ones, and the median CPU time of this process (on a shared machine, what one free core
would take with ``--threads 1``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from common import data_options


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--checkpoint', help='weights (default: random)')
    parser.add_argument('--data', help='synthetic PSG folder: time its test images')
    parser.add_argument('--size', type=int, nargs=2, default=(800, 1333), metavar=('H', 'W'),
                        help='random image size without --data (default: 800 1333)')
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--threads', type=int, default=1, help='torch threads (default: 1)')
    return parser.parse_args(argv)


def batches(cfg, args: argparse.Namespace) -> list:
    """``warmup + runs`` one-image batches."""
    from openpsg.registry import DATASETS
    from openpsg.structures import ImageMeta, Sample, collate_samples

    count = args.warmup + args.runs
    if args.data:
        dataset = DATASETS.build(cfg.data.test)
        return [collate_samples([dataset[i % len(dataset)]], size_divisor=32)
                for i in range(count)]
    h, w = args.size
    pad = (-(-h // 32) * 32, -(-w // 32) * 32)
    meta = ImageMeta(image_id='0', ori_shape=(h, w), img_shape=(h, w), pad_shape=pad)
    sample = Sample(img=torch.randn(3, *pad), meta=meta, labels=torch.zeros(0, dtype=torch.long),
                    boxes=torch.zeros(0, 4), masks=torch.zeros(0, *pad, dtype=torch.bool),
                    rels=torch.zeros(0, 3, dtype=torch.long))
    return [collate_samples([sample], size_divisor=32)] * count


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from openpsg.config import Config, parse_cfg_options
    from openpsg.engine.checkpoint import load_weights
    from openpsg.registry import MODELS

    cfg = Config.fromfile(args.config)
    if args.data:
        cfg.merge_from_dict(parse_cfg_options(data_options(args.data)))
    if args.checkpoint is None and 'pretrained' in cfg.model.get('backbone', {}):
        cfg.model.backbone.pretrained = False
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    if args.checkpoint:
        load_weights(model, args.checkpoint, strict=True)
    seconds, cpu_seconds, segments = [], [], []
    with torch.no_grad():
        for i, batch in enumerate(batches(cfg, args)):
            start, cpu_start = time.perf_counter(), time.process_time()
            pred, = model(batch, mode='predict')
            if i >= args.warmup:
                seconds.append(time.perf_counter() - start)
                cpu_seconds.append(time.process_time() - cpu_start)
                segments.append(pred.num_segments)
    shape = batch.metas[0].img_shape
    result = {'config': args.config, 'checkpoint': args.checkpoint, 'input': list(shape),
              'threads': args.threads, 'runs': args.runs,
              'median_ms': round(1000 * statistics.median(seconds), 1),
              'min_ms': round(1000 * min(seconds), 1),
              'median_cpu_ms': round(1000 * statistics.median(cpu_seconds), 1),
              'mean_segments': round(statistics.mean(segments), 1)}
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
