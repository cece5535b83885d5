"""Inference and training throughput of every config: one table.

    python benchmarks/bench_inference.py                        # every config, data/psg_synth
    python benchmarks/bench_inference.py --only psgtr psgformer --runs 5

Configs: every ``configs/*/*.py`` outside ``_base_``; a two-stage head (IMP, MOTIFS, VCTree,
GPSNet) counts once, by its SGDet config. Weights are untrained (no checkpoint, ImageNet or
segmenter file is read; EGTR's frequency bias, a table lookup, is left out since it needs the
training counts), so the numbers need no data or downloads - except the training rows below.

* **Real configs** (R50/R101, ``*_psg.py``, ``*_vg.py``): the parameter count (all parameters,
  trainable or not) and the CPU latency of one ``model(batch, mode='predict')`` at batch 1 on a
  random 800x1333 image (the size of the test pipeline's ``Resize(1333, 800)``) with four
  ground-truth segments (PredCls configs read them), after ``--warmup`` runs: the median of
  ``--runs`` runs with one torch thread and with all the CPUs this process may use. The
  configs' test settings are kept, so the work that follows a score threshold (masks merged,
  pairs scored) is what untrained weights let through: the ``segments``/``relations`` columns
  say how much that was; the backbone, transformer and per-query heads cost what they cost
  trained.
* **Tiny configs** (``*_synth.py``): training images/s on the synthetic PSG set (``--data``,
  generated with 400 training and 100 test images if missing), the config's batch size,
  optimizer and frozen modules, one torch thread and all threads: the mean over ``--iters``
  iterations after ``--warmup`` iterations, data loading included.
* GPU columns: "not measured" (no GPU was available to this benchmark).

Prints a Markdown table and writes every number (with the machine's load averages before and
after each measurement) to ``--out`` (default ``work_dirs/bench_inference/bench.json``).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from common import ROOT, data_options, ensure_synthetic_data

TWO_STAGE_HEADS = ('imp', 'motifs', 'vctree', 'gpsnet')
H, W = 800, 1333


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--only', nargs='+', default=[],
                        help='config folders to measure (e.g. psgtr egtr); default: all')
    parser.add_argument('--data', default='data/psg_synth', help='synthetic PSG set (tiny rows)')
    parser.add_argument('--runs', type=int, default=3, help='timed latency runs (median)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs / iterations first')
    parser.add_argument('--iters', type=int, default=10, help='timed training iterations')
    parser.add_argument('--out', default='work_dirs/bench_inference/bench.json')
    return parser.parse_args(argv)


def config_paths(only: list[str]) -> list[Path]:
    """Every config outside ``_base_`` (two-stage heads: their SGDet configs only), sorted."""
    paths = []
    for path in sorted((ROOT / 'configs').glob('*/*.py')):
        folder = path.parent.name
        if folder == '_base_' or (only and folder not in only):
            continue
        if folder in TWO_STAGE_HEADS and '_sgdet_' not in path.name:
            continue
        paths.append(path)
    return paths


def without_files(model_cfg: dict[str, Any]) -> dict[str, Any]:
    """``model_cfg`` with every ``pretrained`` weight, segmenter checkpoint and frequency table
    left out (nothing is read from disk)."""
    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: strip(v) for k, v in node.items()}
            if out.get('pretrained'):
                out['pretrained'] = False
            if 'segmenter_checkpoint' in out:
                out['segmenter_checkpoint'] = None
            if 'freq_dataset' in out:  # EGTR and PanopticEGTR
                out.update(use_freq_bias=False, freq_dataset=None, freq_cache=None)
            return out
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return strip(copy.deepcopy(model_cfg))


def real_batch():
    """One random normalised 800x1333 image (ori 800x1333) with four ground-truth segments (two
    things, two stuff) and three relations."""
    from openpsg.structures import ImageMeta, Sample, collate_samples, masks_to_boxes

    gen = torch.Generator().manual_seed(0)
    masks = torch.zeros(4, H, W, dtype=torch.bool)
    masks[0, 120:700, 100:420] = True
    masks[1, 250:760, 380:900] = True
    masks[2, :300] = True
    masks[3, 600:] = True
    masks[2:] &= ~masks[:2].any(0)
    masks[1] &= ~masks[0]
    meta = ImageMeta('900001', file_name='900001.jpg', ori_shape=(H, W), img_shape=(H, W),
                     pad_shape=(H, W))
    sample = Sample(img=torch.randn(3, H, W, generator=gen), meta=meta,
                    labels=torch.tensor([0, 17, 119, 125]),
                    boxes=torch.from_numpy(masks_to_boxes(masks.numpy())), masks=masks,
                    rels=torch.tensor([[0, 1, 46], [1, 0, 14], [1, 3, 3]]))
    return collate_samples([sample])


def all_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()


def timed(step: Callable[[], Any], warmup: int, runs: int) -> tuple[list[float], Any]:
    """Run ``step`` ``warmup`` times, then time ``runs`` runs; the times (s) and the last
    result."""
    result = None
    for _ in range(warmup):
        result = step()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - start)
    return times, result


def measure_latency(cfg, args: argparse.Namespace) -> dict[str, Any]:
    """Parameter count and batch-1 latencies of ``cfg``'s model (see the module docstring)."""
    from openpsg.registry import MODELS

    torch.manual_seed(0)
    model = MODELS.build(without_files(cfg.model.to_dict())).eval()
    row: dict[str, Any] = {'params_m': round(sum(p.numel() for p in model.parameters()) / 1e6, 2)}
    batch = real_batch()

    def predict():
        with torch.inference_mode():
            return model(batch, mode='predict')[0]

    for name, threads in (('cpu_1thread_s', 1), ('cpu_all_threads_s', all_threads())):
        torch.set_num_threads(threads)
        row['load'] = row.get('load', []) + [round(os.getloadavg()[0], 2)]
        times, pred = timed(predict, args.warmup, args.runs)
        row[name] = round(statistics.median(times), 3)
    row['segments'] = int(pred.num_segments)
    row['relations'] = 0 if pred.pairs is None else int(len(pred.pairs))
    return row


def measure_training(cfg, args: argparse.Namespace) -> dict[str, Any]:
    """Training images/s of ``cfg`` on the synthetic set (see the module docstring)."""
    from openpsg.datasets.loader import build_train_loader
    from openpsg.engine.optim import build_optimizer
    from openpsg.engine.trainer import freeze_modules, parse_losses, set_train_mode
    from openpsg.registry import DATASETS, MODELS

    torch.manual_seed(0)
    model = MODELS.build(without_files(cfg.model.to_dict()))
    frozen = freeze_modules(model, cfg.get('freeze_modules') or [])
    optimizer = build_optimizer(model, cfg.optimizer.to_dict())
    dataset = DATASETS.build(cfg.data.train.to_dict())
    per_batch = int(cfg.data.samples_per_gpu)
    loader = build_train_loader(dataset, per_batch, int(cfg.data.get('workers_per_gpu', 0)), 0)
    batches = iter(loader)

    def step() -> None:
        nonlocal batches
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        loss, _ = parse_losses(model(batch, mode='loss'))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    row: dict[str, Any] = {'batch': per_batch}
    set_train_mode(model, frozen)
    for name, threads in (('train_img_s_1thread', 1), ('train_img_s_all_threads', all_threads())):
        torch.set_num_threads(threads)
        row['load'] = row.get('load', []) + [round(os.getloadavg()[0], 2)]
        times, _ = timed(step, args.warmup, args.iters)
        row[name] = round(per_batch * len(times) / sum(times), 2)
    return row


def table(rows: list[dict[str, Any]]) -> str:
    real = [r for r in rows if 'params_m' in r]
    tiny = [r for r in rows if 'batch' in r]
    lines = ['| config | model | params (M) | CPU 1 thread (s) | CPU all threads (s) | GPU (s) | '
             'segments / relations |', '|---|---|---|---|---|---|---|']
    lines += [f"| `{r['config']}` | {r['model']} | {r['params_m']} | {r['cpu_1thread_s']} | "
              f"{r['cpu_all_threads_s']} | not measured | {r['segments']} / "
              f"{r['relations']} |" for r in real]
    lines += ['', '| config | model | batch | train img/s, 1 thread | train img/s, all threads | '
                  'GPU img/s |', '|---|---|---|---|---|---|']
    lines += [f"| `{r['config']}` | {r['model']} | {r['batch']} | {r['train_img_s_1thread']} | "
              f"{r['train_img_s_all_threads']} | not measured |" for r in tiny]
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    from openpsg.config import Config, parse_cfg_options

    paths = config_paths(args.only)
    if any(p.name.endswith('_synth.py') for p in paths):
        ensure_synthetic_data(args.data, num_train=400, num_test=100)
    rows = []
    for path in paths:
        config = str(path.relative_to(ROOT))
        tiny = path.name.endswith('_synth.py')
        cfg = Config.fromfile(path)
        if tiny:
            cfg.merge_from_dict(parse_cfg_options(data_options(args.data)))
        print(f'{config} ...', flush=True)
        row = {'config': config, 'model': cfg.model.type}
        row.update(measure_training(cfg, args) if tiny else measure_latency(cfg, args))
        print(json.dumps(row), flush=True)
        rows.append(row)
    report = {'rows': rows, 'threads_all': all_threads(), 'torch': torch.__version__,
              'cpu': platform.processor() or platform.machine(), 'runs': args.runs,
              'warmup': args.warmup, 'iters': args.iters}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=1)
    print(table(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
