"""Packing utterances into windows."""

from __future__ import annotations

import random

from asrtune.data.batching import PackItem, pack_indices


def _items(n: int, seed: int = 0) -> list[PackItem]:
    rng = random.Random(seed)
    return [PackItem(rng.uniform(2, 9), rng.randint(5, 60), rng.choice("ab")) for _ in range(n)]


def test_packs_respect_limits_groups_and_cover_everything_once() -> None:
    items = _items(200)
    packs = pack_indices(items, max_seconds=30, max_tokens=120, gap_seconds=0.5, seed=1)
    assert sorted(i for p in packs for i in p) == list(range(200))
    for pack in packs:
        seconds = sum(items[i].duration for i in pack) + 0.5 * (len(pack) - 1)
        assert seconds <= 30
        assert sum(items[i].tokens for i in pack) <= 120
        assert len({items[i].group for i in pack}) == 1
    assert len(packs) < 200 / 3  # several utterances per window on average


def test_packing_is_deterministic_per_seed() -> None:
    items = _items(50)
    assert pack_indices(items, 30, 448, seed=3) == pack_indices(items, 30, 448, seed=3)
    assert pack_indices(items, 30, 448, seed=3) != pack_indices(items, 30, 448, seed=4)


def test_an_item_longer_than_the_window_still_gets_its_own_pack() -> None:
    packs = pack_indices([PackItem(40, 1), PackItem(1, 1)], 30, 448)
    assert sorted(map(sorted, packs)) == [[0], [1]]


def test_duration_batches_respect_the_budget_and_cover_every_item_once() -> None:
    from asrtune.data.batching import DurationBatchSampler

    rng = random.Random(0)
    durations = [rng.uniform(1, 20) for _ in range(300)]
    sampler = DurationBatchSampler(durations, max_batch_seconds=100, max_batch_items=8, seed=3)
    epoch0 = list(sampler)
    assert sorted(i for b in epoch0 for i in b) == list(range(300))
    for batch in epoch0:
        assert len(batch) <= 8
        assert len(batch) == 1 or len(batch) * max(durations[i] for i in batch) <= 100
    padded = sum(len(b) * max(durations[i] for i in b) for b in epoch0)
    assert padded < 1.1 * sum(durations)  # similar lengths share a batch
    sampler.set_epoch(1)
    assert list(sampler) != epoch0
    again = DurationBatchSampler(durations, 100, 8, seed=3)
    again.set_epoch(1)
    assert list(again) == list(sampler)  # (seed, epoch) decide the order: resumable
