"""How many processes and threads a job uses, decided from the cores this process may run on.

    workers = default_workers(len(images))       # evaluation, grading, dataset checks
    for result in parallel_map(score, images, len(images), workers=None, desc='evaluate'):
        ...
    set_torch_threads()                          # training, testing, the demo

:func:`available_cpus` counts the cores the operating system lets this process use: its CPU
affinity (``taskset``, a cpuset of a batch scheduler or container) and, where one is set, the
cgroup CPU quota (``docker --cpus``). Per-image work (evaluation, grading, dataset checks) runs in
:func:`default_workers` processes unless the user names a number (``--workers N``; ``0`` = in
this process). Every worker process computes with one torch thread, so that ``N`` workers keep
``N`` cores busy and no more. A process that computes with torch itself uses one intra-op thread
per available core, shared among the processes of a multi-process launch
(:func:`set_torch_threads`; ``OMP_NUM_THREADS`` wins).

Those threads wait for each other at the end of every parallel operation. By default an OpenMP
thread that has finished spins (burns its core) for a while before it sleeps; when another job
holds one of the cores, the spinning threads take CPU time from the one thread that still has
work, and the tiny segmenter's training ran up to 10x slower on a shared machine
(``benchmarks/BENCHMARKS.md``, "Cores shared with other jobs"). Importing
:mod:`openpsg` therefore sets ``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep at once) unless the
environment already sets it (:func:`set_thread_env`); it takes effect in torch when ``openpsg``
is imported first, as the tools do.
"""
from __future__ import annotations

import argparse
import math
import multiprocessing
import os
from typing import Any, Callable, Iterable, Iterator

from tqdm import tqdm

#: Most worker processes started when the user names no number: each holds its own copy of the
#: dataset index and its image buffers (100-300 MB), and beyond this the parent process, which
#: hands out the tasks and merges the results, is the limit.
MAX_DEFAULT_WORKERS = 8
#: A worker process is started per this many tasks at most (starting one costs more than
#: scoring a few images).
MIN_TASKS_PER_WORKER = 16
#: cgroup files holding a CPU quota: v2 ``"quota period"`` (or ``"max period"``), v1 the two files.
_CGROUP_V2 = '/sys/fs/cgroup/cpu.max'
_CGROUP_V1 = ('/sys/fs/cgroup/cpu/cpu.cfs_quota_us', '/sys/fs/cgroup/cpu/cpu.cfs_period_us')
#: Environment defaults for the OpenMP runtime, read when torch is first imported.
THREAD_ENV = {'OMP_WAIT_POLICY': 'PASSIVE'}


def set_thread_env() -> None:
    """Put :data:`THREAD_ENV` into the environment where it is not set (the user's setting
    wins); effective for torch when called before torch is imported."""
    for key, value in THREAD_ENV.items():
        os.environ.setdefault(key, value)


def _read_words(path: str) -> list[str]:
    try:
        with open(path, encoding='ascii') as f:
            return f.read().split()
    except (OSError, UnicodeDecodeError):
        return []


def cgroup_cpu_quota() -> float | None:
    """The CPU quota of this process's cgroup in cores (e.g. 1.5), or ``None`` without one."""
    words = _read_words(_CGROUP_V2)
    if len(words) != 2:
        words = _read_words(_CGROUP_V1[0])[:1] + _read_words(_CGROUP_V1[1])[:1]
    if len(words) != 2 or words[0] in ('max', '-1'):
        return None
    try:
        quota, period = int(words[0]), int(words[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def available_cpus() -> int:
    """Cores this process may use: the size of its CPU affinity mask (all cores where the system
    has no affinity, e.g. macOS), lowered to the cgroup CPU quota rounded up; at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def default_workers(tasks: int | None = None) -> int:
    """Worker processes for ``tasks`` independent tasks when the user names no number: one per
    available core, at most :data:`MAX_DEFAULT_WORKERS` and at most one per
    :data:`MIN_TASKS_PER_WORKER` tasks; ``0`` (work in this process) when that leaves fewer
    than two."""
    workers = min(available_cpus(), MAX_DEFAULT_WORKERS)
    if tasks is not None:
        workers = min(workers, tasks // MIN_TASKS_PER_WORKER)
    return workers if workers >= 2 else 0


def resolve_workers(workers: int | None, tasks: int | None = None) -> int:
    """``workers`` as given (``0`` = in this process), or :func:`default_workers` for ``None``."""
    if workers is None:
        return default_workers(tasks)
    if workers < 0:
        raise ValueError(f'workers must be 0 (in this process), a positive number or None '
                         f'(one per available core), got {workers}')
    return int(workers)


WORKERS_HELP = ('worker processes (default: one per available core, at most '
                f'{MAX_DEFAULT_WORKERS}; 0: all in this process)')


def workers_arg(value: str) -> int:
    """``argparse`` type of a ``--workers`` option: a whole number >= 0."""
    try:
        workers = int(value)
    except ValueError:
        workers = -1
    if workers < 0:
        raise argparse.ArgumentTypeError(f'expected 0 or a positive whole number, got {value!r}')
    return workers


def set_torch_threads() -> int:
    """Set this process's torch intra-op threads: ``$OMP_NUM_THREADS`` when the environment sets
    it (as ``torchrun`` does), else the available cores shared among the processes of this
    machine (``$LOCAL_WORLD_SIZE`` of a ``torchrun`` launch, else 1). Returns the count."""
    import torch

    if os.environ.get('OMP_NUM_THREADS', '').strip():
        return torch.get_num_threads()
    try:
        local_processes = max(1, int(os.environ.get('LOCAL_WORLD_SIZE', '1')))
    except ValueError:
        local_processes = 1
    threads = max(1, available_cpus() // local_processes)
    torch.set_num_threads(threads)
    return threads


_worker_state: tuple[Callable[[Any, Any], Any], Any] | None = None


def _init_worker(function: Callable[[Any, Any], Any], context: Any) -> None:
    import torch

    global _worker_state
    torch.set_num_threads(1)
    _worker_state = (function, context)


def _call_in_worker(task: Any) -> Any:
    function, context = _worker_state
    return function(context, task)


def parallel_map(function: Callable[[Any, Any], Any], tasks: Iterable[Any], total: int,
                 workers: int | None, desc: str, context: Any = None,
                 progress: bool = True) -> Iterator[Any]:
    """``function(context, task)`` for every task, results in task order, with a progress bar.

    ``workers`` processes (``None``: :func:`default_workers` for ``total`` tasks) run the tasks,
    sent in chunks; ``context`` is handed to each worker once, so it may be large (a dataset).
    Each worker computes with one torch thread. With ``0`` workers this process does the work.
    ``function`` must be a module-level function so the workers can find it.
    """
    workers = resolve_workers(workers, total)
    bar = dict(total=total, desc=desc, unit='img', disable=None if progress else True)
    if workers == 0:
        yield from tqdm((function(context, task) for task in tasks), **bar)
        return
    chunksize = max(1, min(32, total // (4 * workers)))
    with multiprocessing.get_context().Pool(workers, _init_worker, (function, context)) as pool:
        yield from tqdm(pool.imap(_call_in_worker, tasks, chunksize), **bar)
