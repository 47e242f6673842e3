"""Packing utterances into windows."""

from __future__ import annotations

import importlib.util
import itertools
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from asrtune.data.batching import PACK_GAP_SECONDS, PackItem, pack_indices, repack_same_count


def _items(n: int, seed: int = 0) -> list[PackItem]:
    rng = random.Random(seed)
    return [PackItem(rng.uniform(2, 9), rng.randint(5, 60), rng.choice("ab")) for _ in range(n)]


def _speech(n: int, seed: int, groups: str = "a", lognormal: bool = False) -> list[PackItem]:
    """Realistic utterances: 1-20 s of audio, about 4 label tokens per second."""
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        seconds = min(20.0, max(1.0, rng.lognormvariate(math.log(6), 0.6)))
        if not lognormal:
            seconds = rng.uniform(1, 20)
        tokens = max(1, int(seconds * rng.uniform(2.5, 5.5)))
        items.append(PackItem(seconds, tokens, rng.choice(groups)))
    return items


def _token_dense(n: int, seed: int) -> list[PackItem]:
    """10-30 tokens per second of audio: the 445-token budget binds before the 30 s."""
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        seconds = rng.uniform(1, 20)
        items.append(PackItem(seconds, max(1, int(seconds * rng.uniform(10, 30))), "abc"[_ % 3]))
    return items


def _load_packing_benchmark():
    spec = importlib.util.spec_from_file_location(
        "packing_benchmark", Path(__file__).parents[1] / "benchmarks" / "packing.py"
    )
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


# The oracle: the former pack_indices (first fit over the same seeded shuffle), kept in the
# benchmark that times it against the packer.
first_fit = _load_packing_benchmark().first_fit_reference


def _check(
    items: Sequence[PackItem],
    packs: list[list[int]],
    max_seconds: float,
    max_tokens: int,
    gap_seconds: float = PACK_GAP_SECONDS,
) -> None:
    """Every index once, one group per window, limits kept by every window of 2+ items."""
    assert sorted(i for pack in packs for i in pack) == list(range(len(items)))
    assert all(pack for pack in packs)
    for pack in packs:
        assert len({items[i].group for i in pack}) == 1
        if len(pack) > 1:
            seconds = items[pack[0]].duration
            for i in pack[1:]:  # in the order the items joined, as the packer adds them up
                seconds += gap_seconds + items[i].duration
            assert seconds <= max_seconds
            assert sum(items[i].tokens for i in pack) <= max_tokens


def test_packs_respect_limits_groups_and_cover_everything_once() -> None:
    items = _items(200)
    packs = pack_indices(items, max_seconds=30, max_tokens=120, gap_seconds=0.5, seed=1)
    _check(items, packs, 30, 120, 0.5)
    assert len(packs) < 200 / 3  # several utterances per window on average


@pytest.mark.parametrize(
    ("make", "max_seconds", "max_tokens"),
    [
        (lambda seed: _speech(2000, seed, groups="abc"), 30, 445),
        (lambda seed: _speech(2000, seed, lognormal=True), 30, 445),
        (lambda seed: _items(2000, seed), 30, 120),  # tokens bind (~6/s against 4/s)
        (lambda seed: _token_dense(2000, seed), 30, 445),
        (lambda seed: _items(1000, seed), 30.0005, 120),  # not a whole number of ms
    ],
    ids=["speech-3-groups", "speech-lognormal", "token-bound", "token-dense", "odd-limit"],
)
def test_best_fit_is_valid_and_no_less_dense_than_first_fit(
    make: Callable[[int], list[PackItem]], max_seconds: float, max_tokens: int
) -> None:
    ours, theirs = 0, 0
    for seed in range(3):
        items = make(seed)
        packs = pack_indices(items, max_seconds, max_tokens, seed=seed)
        _check(items, packs, max_seconds, max_tokens)
        reference = first_fit(items, max_seconds, max_tokens, seed=seed)
        _check(items, reference, max_seconds, max_tokens)
        assert len(packs) <= len(reference)
        ours, theirs = ours + len(packs), theirs + len(reference)
    assert ours < theirs  # strictly denser over the seeds: not first fit in disguise


def test_packing_is_close_to_the_lower_bound() -> None:
    items = _speech(5000, 7)
    packs = pack_indices(items, 30, 445, seed=7)
    _check(items, packs, 30, 445)
    audio = sum(item.duration for item in items)
    gaps = PACK_GAP_SECONDS * (len(items) - len(packs))
    assert len(packs) <= 1.02 * (audio + gaps) / 30  # within 2 % of perfectly full windows


def test_packing_is_deterministic_per_seed() -> None:
    items = _items(50)
    assert pack_indices(items, 30, 448, seed=3) == pack_indices(items, 30, 448, seed=3)
    assert pack_indices(items, 30, 448, seed=3) == pack_indices(list(items), 30, 448, seed=3)
    assert pack_indices(items, 30, 448, seed=3) != pack_indices(items, 30, 448, seed=4)


def test_other_seeds_give_other_neighbours_and_windows_come_in_random_order() -> None:
    items = _speech(600, 1, groups="ab")
    first = pack_indices(items, 30, 445, seed=10)
    second = pack_indices(items, 30, 445, seed=11)
    shared = {frozenset(p) for p in first} & {frozenset(p) for p in second}
    assert len(shared) < 0.2 * len(first)  # mostly new neighbours, not just a new order
    groups = [items[pack[0]].group for pack in first]
    changes = sum(a != b for a, b in itertools.pairwise(groups))
    assert changes > len(groups) / 4  # the groups' windows are interleaved, not in blocks


def test_an_item_longer_than_the_window_still_gets_its_own_pack() -> None:
    packs = pack_indices([PackItem(40, 1), PackItem(1, 1)], 30, 448)
    assert sorted(map(sorted, packs)) == [[0], [1]]
    packs = pack_indices([PackItem(1, 500), PackItem(1, 1), PackItem(1, 1)], 30, 448)
    assert sorted(map(sorted, packs)) == [[0], [1, 2]]


def test_the_limits_are_exact_to_the_last_bit() -> None:
    # Two of these fill 30 s exactly up to 2e-7 s: under the limit they pair, over it not.
    under = [PackItem(14.8 - 1e-7, 1)] * 4
    over = [PackItem(14.8 + 1e-7, 1)] * 4
    assert sorted(map(len, pack_indices(under, 30, 448))) == [2, 2]
    assert sorted(map(len, pack_indices(over, 30, 448))) == [1, 1, 1, 1]
    assert sorted(map(len, pack_indices([PackItem(1, 60)] * 4, 30, 120))) == [2, 2]
    assert sorted(map(len, pack_indices([PackItem(1, 61)] * 2, 30, 120))) == [1, 1]
    # Sub-millisecond durations and no gap: 30 of 1 s + 0.5 ms overflow 30 s; 29 do not.
    packs = pack_indices([PackItem(1.0005, 1)] * 60, 30, 10_000, gap_seconds=0.0)
    _check([PackItem(1.0005, 1)] * 60, packs, 30, 10_000, 0.0)
    assert sorted(map(len, packs)) == [2, 29, 29]


def test_other_scales_of_limits() -> None:
    rng = random.Random(5)
    items = [PackItem(rng.uniform(1, 600), rng.randint(1, 10**6), "a") for _ in range(500)]
    packs = pack_indices(items, 3600, 10**7, gap_seconds=1.0, seed=2)  # coarser buckets
    _check(items, packs, 3600, 10**7, 1.0)
    assert len(packs) <= len(first_fit(items, 3600, 10**7, 1.0, seed=2))
    assert len(pack_indices(items, math.inf, 10**9)) == 1  # no limit: one window
    assert pack_indices([], 30, 445) == []
    assert pack_indices([PackItem(1, 1)], 0.5, 445) == [[0]]
    for wrong in (PackItem(-1, 1), PackItem(math.nan, 1), PackItem(1, -1)):
        with pytest.raises(ValueError, match=">= 0"):
            pack_indices([PackItem(1, 1), wrong], 30, 445)
    with pytest.raises(ValueError, match=">= 0"):
        pack_indices([PackItem(1, 1)] * 2, 30, 445, gap_seconds=-0.1)


def test_repack_same_count_keeps_the_epoch_length_with_new_neighbours() -> None:
    items = _speech(3000, 4, groups="ab")
    packs = pack_indices(items, 30, 445, seed=0)
    windows = {frozenset(p) for p in packs}
    for epoch in range(1, 6):
        again = repack_same_count(items, len(packs), 30, 445, seed=epoch)
        assert again is not None
        assert len(again) == len(packs)
        _check(items, again, 30, 445)
        assert len(windows & {frozenset(p) for p in again}) < 0.2 * len(packs)
        assert again == repack_same_count(items, len(packs), 30, 445, seed=epoch)


def test_repack_same_count_splits_windows_up_to_the_count_or_gives_up() -> None:
    items = _speech(1000, 5)
    natural = len(pack_indices(items, 30, 445, seed=9))
    more = repack_same_count(items, natural + 25, 30, 445, seed=9)
    assert more is not None and len(more) == natural + 25
    _check(items, more, 30, 445)
    audio = sum(item.duration for item in items)
    assert repack_same_count(items, math.ceil(audio / 30) - 1, 30, 445, seed=9) is None
    assert repack_same_count(items, len(items) + 1, 30, 445, seed=9) is None


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
