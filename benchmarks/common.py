"""Helpers shared by the training benchmarks: the synthetic data, running a tool as a child
process with its wall time and peak memory, and the options that point a config at a data root."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ensure_synthetic_data(data: str, num_train: int = 900, num_test: int = 100) -> None:
    """Generate the synthetic PSG set into ``data`` unless ``data/psg.json`` exists (an existing set
    is used as it is)."""
    if os.path.isfile(os.path.join(data, 'psg.json')):
        return
    from openpsg.datasets.synthetic import generate_synthetic_psg
    print(f'generating {data} ({num_train} train / {num_test} test images)', flush=True)
    generate_synthetic_psg(data, num_train=num_train, num_test=num_test, seed=0, workers=2,
                           progress=True)


def data_options(data: str) -> list[str]:
    """``--cfg-options`` entries pointing ``data.train/val/test`` at the synthetic set ``data``."""
    return [f'data.{split}.{key}={value}' for split in ('train', 'val', 'test')
            for key, value in (('ann_file', f'{data}/psg.json'), ('data_root', f'{data}/'))]


@dataclass
class RunStats:
    seconds: float  # wall time
    peak_rss_mb: float  # peak resident memory of the child process
    cpu_seconds: float  # user + system CPU time of the child process


def run_tool(tool: str, args: list[str], log_file: str, threads: int) -> RunStats:
    """Run ``tools/<tool>.py args`` in a child process with ``threads`` torch threads, its output
    going to ``log_file``; raise ``RuntimeError`` (naming the log) when it fails."""
    env = {**os.environ, 'OMP_NUM_THREADS': str(threads), 'MKL_NUM_THREADS': str(threads)}
    os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
    start = time.perf_counter()
    with open(log_file, 'w', encoding='utf-8') as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / 'tools' / f'{tool}.py'), *args],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise RuntimeError(f'tools/{tool}.py {" ".join(args)} exited with {code}; see {log_file}')
    return RunStats(seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)
