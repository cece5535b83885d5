"""``torch.distributed`` helpers that also work in a plain single-process run.

Launch with ``torchrun`` (or ``python -m torch.distributed.launch``) and ``--launcher pytorch``:
the launcher sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.
Without a launcher every query answers as rank 0 of a world of size 1 and the collectives return
their input.
"""
from __future__ import annotations

import datetime
import os
from typing import Any

import torch
import torch.distributed as dist

LAUNCHERS = ('none', 'pytorch')
_LAUNCH_ENV = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')


def init_dist(launcher: str, backend: str | None = None, timeout_s: float = 1800) -> None:
    """Join the process group described by the launcher's environment variables.

    ``backend=None`` picks NCCL when CUDA is available and gloo otherwise. On CUDA the process uses
    the GPU ``LOCAL_RANK``. ``launcher='none'`` does nothing.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher must be one of {LAUNCHERS}, got {launcher!r}')
    if launcher == 'none' or is_distributed():
        return
    missing = [key for key in _LAUNCH_ENV if key not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher pytorch needs the environment variables '
                           f'{", ".join(missing)}; start the script with torchrun (e.g. '
                           'tools/dist_train.sh) or use --launcher none')
    backend = backend or ('nccl' if torch.cuda.is_available() else 'gloo')
    if backend == 'nccl':
        if not torch.cuda.is_available():
            raise RuntimeError('the NCCL backend needs CUDA; use the gloo backend on a CPU-only '
                               'machine')
        torch.cuda.set_device(int(os.environ['LOCAL_RANK']))
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def get_local_rank() -> int:
    return int(os.environ.get('LOCAL_RANK', 0)) if is_distributed() else 0


def is_main_process() -> bool:
    return get_rank() == 0


def get_device() -> torch.device:
    """The GPU of this process (``cuda:LOCAL_RANK``) when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device('cuda', get_local_rank())
    return torch.device('cpu')


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (picklable objects)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj: Any, dst: int = 0) -> list[Any] | None:
    """``[obj of rank 0, obj of rank 1, ...]`` on rank ``dst``; ``None`` on the other ranks."""
    if not is_distributed():
        return [obj]
    out: list[Any] | None = [None] * get_world_size() if get_rank() == dst else None
    dist.gather_object(obj, out, dst=dst)
    return out


def all_reduce_mean(values: dict[str, float]) -> dict[str, float]:
    """Average a dict of floats (same keys on every rank) over all ranks."""
    if not is_distributed() or not values:
        return dict(values)
    device = get_device() if dist.get_backend() == 'nccl' else torch.device('cpu')
    tensor = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    tensor /= get_world_size()
    return dict(zip(values, tensor.tolist()))


def destroy_dist() -> None:
    if is_distributed():
        dist.destroy_process_group()
