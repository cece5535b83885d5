"""Data loaders for training and inference, with reproducible per-sample randomness.

Training samples come from :class:`~openpsg.datasets.samplers.GroupedBatchSampler` together with
a seed; the sample is loaded with Python's, NumPy's and torch's CPU generators (and the
dataset's own generator, if it has ``reseed(seed)``) seeded by it. Random augmentation and the
random choice of one predicate per pair therefore depend only on ``(seed, epoch, position)``: not
on the number of workers, not on which worker loads the sample, not on a resume in between.
"""
from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset

from ..structures import collate_samples
from .samplers import GroupedBatchSampler, InferenceSampler, aspect_ratio_groups


@contextlib.contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Seed Python, NumPy and torch's CPU generator with ``seed`` inside the block, then put their
    previous states back (the GPU generators are not touched)."""
    saved = random.getstate(), np.random.get_state(), torch.random.default_generator.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.random.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.random.default_generator.set_state(saved[2])


class SeededSamples(Dataset):
    """``dataset`` indexed by ``(index, seed)``: loads ``dataset[index]`` with every generator
    seeded by ``seed`` (the caller's generator states are restored afterwards)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        with isolated_rng(seed):
            if hasattr(self.dataset, 'reseed'):
                self.dataset.reseed(seed)
            return self.dataset[index]


def _loader(dataset: Dataset, batch_sampler: Any, workers: int, seed: int,
            persistent_workers: bool) -> DataLoader:
    # The private generator seeds the workers' Python, NumPy and torch generators, and keeps loader
    # creation from consuming the global torch generator.
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=workers,
                      collate_fn=collate_samples, generator=generator,
                      persistent_workers=persistent_workers and workers > 0)


def build_train_loader(dataset: Any, samples_per_gpu: int, workers_per_gpu: int, seed: int,
                       num_replicas: int = 1, rank: int = 0, group_by_aspect_ratio: bool = True,
                       persistent_workers: bool = False) -> DataLoader:
    """Loader of :class:`~openpsg.structures.Batch` for training; its ``batch_sampler`` is a
    :class:`GroupedBatchSampler` (call ``loader.batch_sampler.set_epoch`` before each epoch).

    Images are grouped by ``dataset.aspect_ratios()`` when ``group_by_aspect_ratio`` and the
    dataset provides it; otherwise all images form one group.
    """
    if group_by_aspect_ratio and hasattr(dataset, 'aspect_ratios'):
        groups = aspect_ratio_groups(dataset.aspect_ratios())
    else:
        groups = np.zeros(len(dataset), dtype=np.int64)
    sampler = GroupedBatchSampler(groups, samples_per_gpu, num_replicas, rank, seed)
    return _loader(SeededSamples(dataset), sampler, workers_per_gpu, seed + rank,
                   persistent_workers)


def build_test_loader(dataset: Any, samples_per_gpu: int = 1, workers_per_gpu: int = 0,
                      num_replicas: int = 1, rank: int = 0) -> DataLoader:
    """Loader over this rank's contiguous share of ``dataset`` (see :class:`InferenceSampler`),
    in dataset order."""
    sampler = InferenceSampler(len(dataset), num_replicas, rank)
    batch_sampler = BatchSampler(sampler, samples_per_gpu, drop_last=False)
    return _loader(dataset, batch_sampler, workers_per_gpu, rank, persistent_workers=False)
