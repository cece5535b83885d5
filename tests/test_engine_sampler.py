"""The aspect-ratio grouped distributed batch sampler, the inference sampler and the seeded
loader."""
import random
from collections import Counter

import numpy as np
import pytest
import torch

from openpsg.datasets.loader import build_test_loader, build_train_loader
from openpsg.datasets.samplers import GroupedBatchSampler, InferenceSampler, aspect_ratio_groups
from openpsg.structures import ImageMeta, Sample

# 11 images: group 0 = {0, 2, 3, 7, 8, 10} (6), group 1 = {1, 4, 5, 6, 9} (5)
GROUPS = [0, 1, 0, 0, 1, 1, 1, 0, 0, 1, 0]


def rank_batches(world, spg, epoch=0, seed=3, start=0):
    out = []
    for rank in range(world):
        sampler = GroupedBatchSampler(GROUPS, spg, num_replicas=world, rank=rank, seed=seed)
        sampler.set_epoch(epoch, start)
        out.append(list(sampler))
    return out


def test_aspect_ratio_groups():
    assert aspect_ratio_groups([1.5, 1.0, 0.75, 1.01]).tolist() == [1, 0, 0, 1]


@pytest.mark.parametrize('world,spg', [(1, 4), (2, 2), (4, 1)])
def test_each_batch_is_one_group_and_every_index_is_seen(world, spg):
    per_rank = rank_batches(world, spg)
    # global batch 4: group 0 -> 2 batches (2 repeats), group 1 -> 2 batches (3 repeats)
    assert [len(b) for b in per_rank] == [4] * world
    counts = Counter()
    for batches in per_rank:
        for batch in batches:
            assert len(batch) == spg
            assert len({GROUPS[i] for i, _ in batch}) == 1
    for j in range(4):
        global_batch = [i for batches in per_rank for i, _ in batches[j]]
        assert len({GROUPS[i] for i in global_batch}) == 1
        counts.update(global_batch)
    assert set(counts) == set(range(11))
    assert sum(counts.values()) == 16
    repeats = {g: sum(c - 1 for i, c in counts.items() if GROUPS[i] == g) for g in (0, 1)}
    assert repeats == {0: 2, 1: 3}


def test_global_batches_do_not_depend_on_how_they_are_split():
    one = rank_batches(1, 4)[0]
    two = rank_batches(2, 2)
    for j in range(4):
        assert one[j] == two[0][j] + two[1][j]  # same indices and same sample seeds


def test_epochs_differ_and_repeat_and_resume_skips_batches():
    assert rank_batches(2, 2, epoch=0) == rank_batches(2, 2, epoch=0)
    assert rank_batches(2, 2, epoch=0) != rank_batches(2, 2, epoch=1)
    full = rank_batches(2, 2, epoch=5)
    tail = rank_batches(2, 2, epoch=5, start=3)
    assert [b[3:] for b in full] == tail
    sampler = GroupedBatchSampler(GROUPS, 2, 2, 0)
    sampler.set_epoch(0, 3)
    assert (sampler.num_batches, len(sampler)) == (4, 1)
    with pytest.raises(ValueError, match='start_batch 5'):
        sampler.set_epoch(0, 5)


def test_inference_sampler_shares_are_contiguous_and_complete():
    shares = [list(InferenceSampler(5, 2, r)) for r in range(2)]
    assert shares == [[0, 1], [2, 3, 4]]
    shares = [list(InferenceSampler(2, 3, r)) for r in range(3)]
    assert shares == [[], [0], [1]]


class RandomDataset:
    """Each item is drawn from every kind of generator the loader promises to seed."""

    def __init__(self, n):
        self.n = n
        self.rng = np.random.default_rng(0)

    def reseed(self, seed):
        self.rng = np.random.default_rng(seed)

    def aspect_ratios(self):
        return np.array([1.0 if i % 3 else 1.5 for i in range(self.n)])

    def __len__(self):
        return self.n

    def __getitem__(self, idx):
        values = torch.tensor([random.random(), np.random.rand(), torch.rand(()).item(),
                               self.rng.random()])
        img = values.reshape(1, 2, 2).expand(3, 2, 2).clone()
        return Sample(img=img, meta=ImageMeta(str(idx), img_shape=(2, 2), pad_shape=(2, 2)),
                      labels=torch.zeros(0, dtype=torch.long), boxes=torch.zeros(0, 4),
                      masks=torch.zeros(0, 2, 2, dtype=torch.bool),
                      rels=torch.zeros(0, 3, dtype=torch.long))


def epoch_batches(workers, epoch, start=0):
    loader = build_train_loader(RandomDataset(10), 2, workers, seed=7)
    loader.batch_sampler.set_epoch(epoch, start)
    return [([m.image_id for m in b.metas], b.imgs[:, 0].flatten(1)) for b in loader]


def test_sample_randomness_depends_only_on_seed_epoch_and_position():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    main = epoch_batches(0, epoch=1)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's generator is left alone
    for ids, values in main:
        assert len({int(i) % 3 == 0 for i in ids}) == 1  # one aspect group per batch
        assert len(values.unique()) == 2 * 4  # distinct draws for the two images
    with_workers = epoch_batches(2, epoch=1)
    resumed = epoch_batches(0, epoch=1, start=2)
    for (ids_a, va), (ids_b, vb) in zip(main, with_workers):
        assert ids_a == ids_b and torch.equal(va, vb)
    for (ids_a, va), (ids_b, vb) in zip(main[2:], resumed):
        assert ids_a == ids_b and torch.equal(va, vb)
    assert not torch.equal(main[0][1], epoch_batches(0, epoch=2)[0][1])


def test_test_loader_keeps_dataset_order():
    loaders = [build_test_loader(RandomDataset(5), 2, 0, num_replicas=2, rank=r) for r in range(2)]
    ids = [[m.image_id for b in loader for m in b.metas] for loader in loaders]
    assert ids == [['0', '1'], ['2', '3', '4']]


def test_grouping_can_be_switched_off():
    loader = build_train_loader(RandomDataset(10), 5, 0, seed=0, group_by_aspect_ratio=False)
    batches = [[int(m.image_id) % 3 == 0 for m in b.metas] for b in loader]
    assert len(batches) == 2 and sorted(map(len, batches)) == [5, 5]
    assert any(len(set(b)) == 2 for b in batches)  # 4 landscape images cannot fill a batch alone
