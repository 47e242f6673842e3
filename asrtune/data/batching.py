"""Packing several utterances into one fixed-length audio window.

Whisper's encoder always sees a full window (30 s for real models), so short clips are
joined, with a short silence between them, until the next one would overflow the window
or the label budget. :class:`WindowPacker` does this incrementally with one open window
per group (streaming); :func:`pack_indices` packs a finite set first-fit after a seeded
shuffle.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

PACK_GAP_SECONDS = 0.4  # silence between packed utterances


@dataclass(frozen=True)
class PackItem:
    """What packing needs to know of one utterance: seconds of audio, label tokens, group."""

    duration: float
    tokens: int
    group: str = ""


@dataclass
class _OpenWindow:
    members: list[Hashable] = field(default_factory=list)
    seconds: float = 0.0
    tokens: int = 0


@dataclass
class WindowPacker:
    """Greedy packing, one open window per group (e.g. language).

    ``max_tokens`` counts the items' own tokens; joining costs none (each utterance's text
    is encoded with its leading space, so the token runs simply concatenate).
    """

    max_seconds: float
    max_tokens: int
    gap_seconds: float = PACK_GAP_SECONDS
    _open: dict[str, _OpenWindow] = field(default_factory=dict)

    def add(self, key: Hashable, item: PackItem) -> list[Hashable] | None:
        """Add an item; returns the window it closed, if adding it closed one."""
        window = self._open.setdefault(item.group, _OpenWindow())
        closed = None
        if window.members and (
            window.seconds + self.gap_seconds + item.duration > self.max_seconds
            or window.tokens + item.tokens > self.max_tokens
        ):
            closed = window.members
            window = self._open[item.group] = _OpenWindow()
        if window.members:
            window.seconds += self.gap_seconds
        window.members.append(key)
        window.seconds += item.duration
        window.tokens += item.tokens
        return closed

    def flush(self) -> list[list[Hashable]]:
        """The windows still open, emptied."""
        windows = [w.members for w in self._open.values() if w.members]
        self._open.clear()
        return windows


def pack_indices(
    items: Sequence[PackItem],
    max_seconds: float,
    max_tokens: int,
    gap_seconds: float = PACK_GAP_SECONDS,
    seed: int = 0,
) -> list[list[int]]:
    """Group item indices into windows of ≤ ``max_seconds`` audio and ≤ ``max_tokens`` labels.

    First fit over a seeded shuffle: each item goes into the first window of its group with
    room left. Only items of the same ``group`` share a window. Packing is tight and the
    number of windows barely moves between seeds, so repacking each epoch keeps the epoch
    length steady while every utterance gets new neighbours.
    """
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    windows: dict[str, list[_OpenWindow]] = {}
    for index in order:
        item = items[index]
        group = windows.setdefault(item.group, [])
        target = next(
            (
                w
                for w in group
                if w.seconds + gap_seconds + item.duration <= max_seconds
                and w.tokens + item.tokens <= max_tokens
            ),
            None,
        )
        if target is None:
            target = _OpenWindow()
            group.append(target)
        elif target.members:
            target.seconds += gap_seconds
        target.members.append(index)
        target.seconds += item.duration
        target.tokens += item.tokens
    packs = [w.members for group in windows.values() for w in group]
    random.Random(seed + 1).shuffle(packs)
    return packs  # type: ignore[return-value]


def repack_same_count(
    items: Sequence[PackItem],
    count: int,
    max_seconds: float,
    max_tokens: int,
    seed: int,
    tries: int = 16,
) -> list[list[int]] | None:
    """A new packing with exactly ``count`` windows (so an epoch keeps its length), or None
    when ``tries`` seeds derived from ``seed`` all give another count."""
    for attempt in range(tries):
        packs = pack_indices(items, max_seconds, max_tokens, seed=seed + 7919 * attempt)
        if len(packs) == count:
            return packs
    return None


class DurationBatchSampler:
    """Batches sized by padded audio seconds: ``len(batch) * longest <= max_batch_seconds``.

    Each epoch (``set_epoch``) shuffles the items with ``seed + epoch``, sorts them by
    duration inside pools of ``pool_batches`` batches (so each batch holds similar
    lengths and pads little), cuts the pools into batches and shuffles the batch order.
    The order depends only on (seed, epoch), so a resumed run skipping the batches it
    already trained sees exactly the rest of the epoch.
    """

    def __init__(
        self,
        durations: Sequence[float],
        max_batch_seconds: float,
        max_batch_items: int | None = None,
        seed: int = 0,
        pool_batches: int = 50,
    ) -> None:
        self.durations = list(durations)
        self.max_batch_seconds, self.max_batch_items = max_batch_seconds, max_batch_items
        self.seed, self.pool_batches, self.epoch = seed, pool_batches, 0
        self._batches = self._make_batches()

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch = epoch
            self._batches = self._make_batches()

    def _make_batches(self) -> list[list[int]]:
        rng = random.Random(self.seed + self.epoch)
        order = list(range(len(self.durations)))
        rng.shuffle(order)
        mean = sum(self.durations) / max(len(self.durations), 1)
        pool_size = max(1, int(self.pool_batches * self.max_batch_seconds / max(mean, 1e-3)))
        batches: list[list[int]] = []
        for start in range(0, len(order), pool_size):
            pool = sorted(order[start : start + pool_size], key=self.durations.__getitem__)
            batches += self._cut(pool)
        rng.shuffle(batches)
        return batches

    def _cut(self, pool: list[int]) -> list[list[int]]:
        batches: list[list[int]] = []
        current: list[int] = []
        for index in pool:  # ascending duration: the newest item is the longest
            longest = self.durations[index]
            full = self.max_batch_items is not None and len(current) >= self.max_batch_items
            if current and (full or (len(current) + 1) * longest > self.max_batch_seconds):
                batches.append(current)
                current = []
            current.append(index)
        return [*batches, current] if current else batches

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._batches)

    def __len__(self) -> int:
        return len(self._batches)
