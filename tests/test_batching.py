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
