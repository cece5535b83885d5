"""CPU mixed precision: one training step and one prediction step of tiny configs in float32 and
under bfloat16 autocast (what ``--amp bf16`` runs).

    python benchmarks/bench_amp_cpu.py                # 1 torch thread, the default configs
    python benchmarks/bench_amp_cpu.py --threads 2 --steps 10 \
        --configs configs/psgtr/psgtr_tiny_synth.py

Each config's model is built with random weights (the weight files a config names are not read),
two images of a small synthetic PSG set (written to a temporary folder) go through the config's
training and test pipelines into one batch each, and every step runs ``--steps`` times per mode
after one warm-up step, both modes from the same weights: a training step is the forward in
``'loss'`` mode, backward and the config's optimizer step; a prediction step the forward in
``'predict'`` mode. Prints the median times and the bfloat16 features the CPU reports.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

import torch

from common import ROOT, data_options

CONFIGS = ['configs/panoptic_fpn/panoptic_fpn_tiny_synth.py',
           'configs/motifs/motifs_tiny_predcls_synth.py',
           'configs/detr4seg/detr4seg_tiny_synth.py',
           'configs/psgtr/psgtr_tiny_synth.py',
           'configs/psgformer/psgformer_tiny_synth.py',
           'configs/deformable_detr/deformable_detr_tiny_synth.py']
WEIGHT_FILE_KEYS = ('pretrained', 'segmenter_checkpoint')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--configs', nargs='+', default=CONFIGS)
    parser.add_argument('--steps', type=int, default=5, help='timed steps per mode (default 5)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads (default 1)')
    return parser.parse_args(argv)


def without_weight_files(node: Any) -> Any:
    """``node`` (a model config) with every weight file it names (``pretrained``,
    ``segmenter_checkpoint`` set to a path) replaced by ``None``: random weights."""
    if isinstance(node, dict):
        return {k: None if k in WEIGHT_FILE_KEYS and isinstance(v, str)
                else without_weight_files(v) for k, v in node.items()}
    if isinstance(node, list):
        return [without_weight_files(v) for v in node]
    return node


def cpu_bf16_features() -> str:
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            flags = set(f.read().split())
    except OSError:
        return 'unknown'
    found = [flag for flag in ('avx512_bf16', 'amx_bf16') if flag in flags]
    return ', '.join(found) or 'none'


def median_seconds(step: Callable[[], None], steps: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_config(path: str, data: str, steps: int) -> dict[str, float]:
    from openpsg.config import Config, parse_cfg_options
    from openpsg.engine.amp import autocast
    from openpsg.engine.optim import build_optimizer
    from openpsg.engine.trainer import freeze_modules, parse_losses
    from openpsg.registry import DATASETS, MODELS
    from openpsg.structures import collate_samples

    cfg = Config.fromfile(path)
    cfg.merge_from_dict(parse_cfg_options(data_options(data)))
    torch.manual_seed(0)
    model = MODELS.build(without_weight_files(cfg.model.to_dict()))
    freeze_modules(model, cfg.get('freeze_modules') or [])
    train_set = DATASETS.build(cfg.data.train)
    test_cfg = {k: v for k, v in cfg.data.test.items() if k != 'samples_per_gpu'}
    test_set = DATASETS.build(test_cfg)
    train_batch = collate_samples([train_set[0], train_set[1]])
    test_batch = collate_samples([test_set[0], test_set[1]])
    cpu = torch.device('cpu')
    times = {}
    for amp in ('none', 'bf16'):
        trained = copy.deepcopy(model).train()
        optimizer = build_optimizer(trained, cfg.optimizer)

        def train_step() -> None:
            with autocast(cpu, amp):
                loss, _ = parse_losses(trained(train_batch, mode='loss'))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        @torch.no_grad()
        def predict_step() -> None:
            with autocast(cpu, amp):
                trained(test_batch, mode='predict')

        times[f'train {amp}'] = median_seconds(train_step, steps)
        trained.eval()
        times[f'predict {amp}'] = median_seconds(predict_step, steps)
    return times


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    torch.set_num_threads(args.threads)
    from openpsg.datasets.synthetic import generate_synthetic_psg

    print(f'torch {torch.__version__}, {platform.processor() or platform.machine()}, bfloat16 '
          f'features: {cpu_bf16_features()}, {args.threads} thread(s), median of {args.steps} '
          'steps, batch of 2 synthetic images\n')
    print('| config | train fp32 (s) | train bf16 (s) | bf16 / fp32 | predict fp32 (s) | '
          'predict bf16 (s) | bf16 / fp32 |\n|---|---|---|---|---|---|---|')
    with tempfile.TemporaryDirectory() as data:
        generate_synthetic_psg(data, num_train=2, num_test=2, seed=0)
        for path in args.configs:
            t = bench_config(path, data, args.steps)
            print(f'| {os.path.basename(path)} | {t["train none"]:.3f} | {t["train bf16"]:.3f} | '
                  f'{t["train bf16"] / t["train none"]:.2f} | {t["predict none"]:.3f} | '
                  f'{t["predict bf16"]:.3f} | {t["predict bf16"] / t["predict none"]:.2f} |',
                  flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
