"""Per-process training batches: one global order, every item once an epoch, equal lengths."""

from __future__ import annotations

from collections import Counter

import pytest

from asrtune.data.batching import DurationBatchSampler
from asrtune.data.sharding import (
    LossFreeIndex,
    ShardedBatchSampler,
    fixed_size_steps,
    grouped_steps,
)


def _epoch(samplers: list[ShardedBatchSampler]) -> tuple[Counter, list[list[list[int]]]]:
    """Items trained (placeholders excluded) and each process's batches."""
    batches = [list(s) for s in samplers]
    trained = Counter(
        i for per_rank in batches for b in per_rank for i in b if not isinstance(i, LossFreeIndex)
    )
    return trained, batches


@pytest.mark.parametrize("items", [1, 7, 9, 16, 23])
@pytest.mark.parametrize(("per_device", "world"), [(4, 1), (2, 2), (1, 3), (3, 2)])
def test_every_item_once_an_epoch_and_processes_in_step(
    items: int, per_device: int, world: int
) -> None:
    samplers = [
        ShardedBatchSampler(
            lambda epoch: fixed_size_steps(items, per_device, world, 5, epoch), rank, world
        )
        for rank in range(world)
    ]
    orders = []
    for epoch in range(3):
        for sampler in samplers:
            sampler.set_epoch(epoch)
        trained, batches = _epoch(samplers)
        assert trained == Counter(range(items))  # each item exactly once
        assert len({len(b) for b in batches}) == 1  # every process steps together
        assert all(len(batch) >= 1 for per_rank in batches for batch in per_rank)
        orders.append(batches)
    assert items == 1 or orders[0] != orders[1]  # a new order each epoch


def test_the_global_batches_do_not_depend_on_the_split() -> None:
    """1 process × 4 = 1 × 2 (two micro-batches accumulated) = 2 processes × 2."""

    def global_batches(per_device: int, world: int, accumulate: int) -> list[set[int]]:
        steps = fixed_size_steps(11, per_device, world, 0, 3)
        micro = [set(i for b in step for i in b) for step in steps]
        return [set().union(*micro[k : k + accumulate]) for k in range(0, len(micro), accumulate)]

    assert global_batches(4, 1, 1) == global_batches(2, 1, 2) == global_batches(2, 2, 1)


def test_a_process_with_nothing_left_gets_a_loss_free_placeholder() -> None:
    samplers = [
        ShardedBatchSampler(lambda e: fixed_size_steps(5, 2, 2, 0, e), rank, 2) for rank in (0, 1)
    ]
    last = [list(s)[-1] for s in samplers]  # the last step holds 1 item for 2 processes
    assert sorted(len(b) for b in last) == [1, 1]
    fillers = [i for b in last for i in b if isinstance(i, LossFreeIndex)]
    real = [i for b in last for i in b if not isinstance(i, LossFreeIndex)]
    assert len(fillers) == 1 and fillers == real  # the placeholder repeats the real item


def test_duration_buckets_are_shared_out_whole() -> None:
    durations = [1.0 + (i * 7919 % 23) / 2 for i in range(41)]
    buckets = DurationBatchSampler(durations, max_batch_seconds=20.0, seed=1)
    world = 3
    samplers = [
        ShardedBatchSampler(lambda e: grouped_steps(list(buckets), world), rank, world)
        for rank in range(world)
    ]
    trained, batches = _epoch(samplers)
    assert trained == Counter(range(41))
    assert len({len(b) for b in batches}) == 1
    own = [b for per_rank in batches for b in per_rank if not isinstance(b[0], LossFreeIndex)]
    assert sorted(map(sorted, own)) == sorted(map(sorted, buckets))  # the buckets, unchanged
