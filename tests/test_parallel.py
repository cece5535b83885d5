"""Worker processes and threads from the cores this process may use (openpsg.parallel)."""
import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from openpsg import parallel
from openpsg.parallel import (available_cpus, cgroup_cpu_quota, default_workers, parallel_map,
                              resolve_workers, workers_arg)

ROOT = Path(__file__).resolve().parents[1]


def test_available_cpus_follows_the_affinity_mask():
    saved = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(saved)})
        assert available_cpus() == 1
    finally:
        os.sched_setaffinity(0, saved)
    assert available_cpus() == len(saved)


@pytest.mark.parametrize('v2, v1, quota', [
    ('150000 100000', None, 1.5),
    ('max 100000', None, None),
    (None, ('50000', '100000'), 0.5),
    (None, ('-1', '100000'), None),
    (None, None, None),
])
def test_cgroup_quota_lowers_the_count(tmp_path, monkeypatch, v2, v1, quota):
    v2_file, v1_files = tmp_path / 'cpu.max', (tmp_path / 'quota', tmp_path / 'period')
    if v2 is not None:
        v2_file.write_text(v2 + '\n')
    if v1 is not None:
        for path, text in zip(v1_files, v1):
            path.write_text(text + '\n')
    monkeypatch.setattr(parallel, '_CGROUP_V2', str(v2_file))
    monkeypatch.setattr(parallel, '_CGROUP_V1', tuple(str(p) for p in v1_files))
    assert cgroup_cpu_quota() == quota
    cores = len(os.sched_getaffinity(0))
    assert available_cpus() == (cores if quota is None else min(cores, -(-quota // 1)))


def test_default_workers(monkeypatch):
    for cpus, tasks, workers in [(1, None, 0), (2, None, 2), (64, None, 8), (4, 20, 0),
                                 (4, 40, 2), (4, 2177, 4), (2, 2177, 2)]:
        monkeypatch.setattr(parallel, 'available_cpus', lambda: cpus)
        assert default_workers(tasks) == workers, (cpus, tasks)
        assert resolve_workers(None, tasks) == workers
        assert resolve_workers(3, tasks) == 3 and resolve_workers(0, tasks) == 0
    with pytest.raises(ValueError, match='workers must be 0'):
        resolve_workers(-1)
    assert workers_arg('0') == 0 and workers_arg('5') == 5
    for bad in ('-1', 'two'):
        with pytest.raises(argparse.ArgumentTypeError):
            workers_arg(bad)


def _threads(context: str, task: int) -> tuple[str, int, int]:
    return context, task * task, torch.get_num_threads()


def test_workers_compute_with_one_torch_thread_and_keep_order():
    threads = torch.get_num_threads()
    results = list(parallel_map(_threads, range(40), 40, 2, 'test', context='ctx', progress=False))
    assert results == [('ctx', i * i, 1) for i in range(40)]
    assert torch.get_num_threads() == threads  # this process is left as it was
    assert list(parallel_map(_threads, range(3), 3, 0, 'test', context='c', progress=False)) == [
        ('c', i * i, threads) for i in range(3)]


def test_cli_workers_option(tmp_path):
    """``--workers`` is optional (one per available core) and refuses what is no count."""
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    bad = subprocess.run([sys.executable, str(ROOT / 'tools/check_dataset.py'), 'x.json',
                          '--data-root', str(tmp_path), '--workers', '-1'],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2
    assert "--workers: expected 0 or a positive whole number, got '-1'" in bad.stderr
    assert 'default: one per available core, at most 8' in parallel.WORKERS_HELP


def test_torch_threads_from_the_cores_unless_the_environment_says(monkeypatch):
    saved = torch.get_num_threads()
    monkeypatch.setattr(parallel, 'available_cpus', lambda: 4)
    try:
        monkeypatch.setenv('OMP_NUM_THREADS', '1')
        torch.set_num_threads(1)
        assert parallel.set_torch_threads() == 1  # the user's (or torchrun's) setting wins
        monkeypatch.delenv('OMP_NUM_THREADS')
        monkeypatch.delenv('LOCAL_WORLD_SIZE', raising=False)
        assert parallel.set_torch_threads() == 4 and torch.get_num_threads() == 4
        monkeypatch.setenv('LOCAL_WORLD_SIZE', '3')  # three processes of one torchrun launch
        assert parallel.set_torch_threads() == 1
    finally:
        torch.set_num_threads(saved)


def test_idle_openmp_threads_sleep_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv('OMP_WAIT_POLICY', raising=False)
    parallel.set_thread_env()
    assert os.environ['OMP_WAIT_POLICY'] == 'PASSIVE'
    monkeypatch.setenv('OMP_WAIT_POLICY', 'ACTIVE')
    parallel.set_thread_env()
    assert os.environ['OMP_WAIT_POLICY'] == 'ACTIVE'
