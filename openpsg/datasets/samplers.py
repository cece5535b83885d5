"""Batch samplers for training (aspect-ratio groups, any number of ranks, resumable) and testing.

Training batches are formed *globally*: one global batch holds ``samples_per_gpu * world_size``
images of one aspect-ratio group, and rank ``r`` trains on its ``r``-th slice. The global batches of
an epoch depend only on ``(seed, epoch)`` and the global batch size, so one process with batch
``B`` sees exactly the images that ``N`` processes with batch ``B / N`` see together, and a resumed
run sees what the interrupted run would have seen.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

SEED_RANGE = 2**31


def aspect_ratio_groups(aspect_ratios: Sequence[float] | np.ndarray) -> np.ndarray:
    """``(N,)`` int64 group per image: 1 for landscape (width / height > 1), 0 otherwise."""
    return (np.asarray(aspect_ratios, dtype=np.float64) > 1).astype(np.int64)


class GroupedBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields this rank's batches as lists of ``(dataset index, sample seed)``.

    Per epoch: the indices are shuffled with a generator seeded by ``(seed, epoch)``; each group's
    indices (in that order) are cut into global batches of ``samples_per_gpu * num_replicas``, the
    last one filled up by repeating the group's first indices; the global batches are shuffled.
    Every index appears at least once per epoch, repeats come only from that filling, and every
    batch of every rank has exactly ``samples_per_gpu`` images of one group. Each position also
    gets a random ``sample seed`` for the sample's own random draws.

    ``set_epoch(epoch, start_batch)`` selects the epoch and skips its first ``start_batch`` batches
    (resuming mid-epoch); ``num_batches`` is the epoch length, ``len()`` what is left of it.
    """

    def __init__(self, group_ids: Sequence[int] | np.ndarray, samples_per_gpu: int,
                 num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        if samples_per_gpu < 1:
            raise ValueError(f'samples_per_gpu must be >= 1, got {samples_per_gpu}')
        if not 0 <= rank < num_replicas:
            raise ValueError(f'rank {rank} is not in [0, {num_replicas})')
        self.group_ids = np.asarray(group_ids, dtype=np.int64)
        if len(self.group_ids) == 0:
            raise ValueError('cannot sample batches from an empty dataset')
        self.samples_per_gpu = samples_per_gpu
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = seed
        self.epoch = 0
        self.start_batch = 0
        global_batch = samples_per_gpu * num_replicas
        sizes = np.bincount(self.group_ids)
        self.num_batches = int(sum(-(-int(s) // global_batch) for s in sizes if s > 0))

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        if not 0 <= start_batch <= self.num_batches:
            raise ValueError(f'start_batch {start_batch} is not in [0, {self.num_batches}]')
        self.epoch = epoch
        self.start_batch = start_batch

    def global_batches(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, seeds)``, both ``(num_batches, samples_per_gpu * num_replicas)`` int64,
        in the order the batches of ``epoch`` are trained."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.group_ids))
        size = self.samples_per_gpu * self.num_replicas
        chunks = []
        for group in np.unique(self.group_ids):
            members = order[self.group_ids[order] == group]
            chunks.append(np.resize(members, -(-len(members) // size) * size).reshape(-1, size))
        batches = np.concatenate(chunks)
        batches = batches[rng.permutation(len(batches))]
        seeds = rng.integers(SEED_RANGE, size=batches.shape)
        return batches, seeds

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        batches, seeds = self.global_batches(self.epoch)
        cols = slice(self.rank * self.samples_per_gpu, (self.rank + 1) * self.samples_per_gpu)
        rows = slice(self.start_batch, None)
        for indices, sample_seeds in zip(batches[rows, cols], seeds[rows, cols]):
            yield [(int(i), int(s)) for i, s in zip(indices, sample_seeds)]

    def __len__(self) -> int:
        return self.num_batches - self.start_batch


class InferenceSampler(Sampler[int]):
    """This rank's contiguous share of ``range(size)``, in order, without padding: rank ``r`` gets
    ``[r * size // world, (r + 1) * size // world)``, so concatenating the ranks' outputs in rank
    order restores dataset order with every index exactly once."""

    def __init__(self, size: int, num_replicas: int = 1, rank: int = 0) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f'rank {rank} is not in [0, {num_replicas})')
        self.start = rank * size // num_replicas
        self.stop = (rank + 1) * size // num_replicas

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start
