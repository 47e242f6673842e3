"""Packing several utterances into one fixed-length audio window.

Whisper's encoder always sees a full window (30 s for real models), so short clips are
joined, with a short silence between them, until the next one would overflow the window
or the label budget. :class:`WindowPacker` does this incrementally with one open window
per group (streaming); :func:`pack_indices` packs a finite set best-fit after a seeded
shuffle.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

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

    A window's audio is its items' ``duration`` (seconds) plus ``gap_seconds`` between
    consecutive members; its labels are the sum of its items' ``tokens``. Only items of the
    same ``group`` share a window. An item that alone exceeds a limit gets a window of its own.
    Durations, tokens and ``gap_seconds`` must be ≥ 0 (ValueError otherwise).

    Best fit over a seeded shuffle: the items, in the order of ``random.Random(seed)``'s
    shuffle, each go into the open window of their group that they fill most tightly on the
    window's binding limit (see :func:`_best_fit`), or else open a new window. O(n log n)
    (about 4-5 s for a million utterances in CPython), and usually a little denser than
    the first fit it replaced (``benchmarks/packing.py``). The packing is tight and the
    number of windows barely moves between seeds, so repacking each epoch keeps the epoch
    length steady while every utterance gets new neighbours. The windows come back in a
    seeded random order.
    """
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    group_of = [item.group for item in items]
    by_group: dict[str, list[int]] = {group: [] for group in dict.fromkeys(group_of)}
    if len(by_group) == 1:
        by_group = dict.fromkeys(by_group, order)
    else:
        append = {group: members.append for group, members in by_group.items()}
        for index in order:
            append[group_of[index]](index)
    durations = [item.duration for item in items]
    tokens = [item.tokens for item in items]
    packs: list[list[int]] = []
    for members in by_group.values():
        packs += _best_fit(members, durations, tokens, max_seconds, max_tokens, gap_seconds)
    random.Random(seed + 1).shuffle(packs)
    return packs


_WORD_BITS = 6  # one bitset word covers 2**6 = 64 buckets
_WORD_MASK = (1 << _WORD_BITS) - 1
_MAX_BUCKETS = 1 << 16  # coarser buckets beyond this (e.g. over 65 s of room at 1 ms)


class _RoomIndex:
    """Open windows in buckets ``0..size-1`` by room left, each with a value: finds a window
    in the lowest bucket ≥ ``need`` among those of value ≤ ``limit``.

    A non-empty bucket is a min-heap of ``(value, stamp, window)``. A window leaves by
    forgetting its stamp (its entry goes stale and is dropped once at the top of its heap);
    ``live`` counts each bucket's current windows. A two-level bitset of the non-empty
    buckets (64-bucket words, plus one int of non-empty words) finds the next one in a few
    small-int operations, and ``floor`` keeps a lower bound of each word's values, made
    exact again when a search walks through the word in vain, so searches skip words with
    no match.
    """

    def __init__(self, size: int, windows: int) -> None:
        self.size = size
        # Only non-empty buckets have a heap (a list per millisecond: ~2 MB per group).
        self.heaps: dict[int, list[tuple[float, int, int]]] = {}
        self.live = [0] * size
        self.words = [0] * ((size >> _WORD_BITS) + 1)  # bit b of word k: bucket 64k + b
        self.floor = [math.inf] * len(self.words)
        self.nonempty = 0  # bit k: words[k] != 0
        self.bucket = [-1] * windows  # per window (at most ``windows``): its bucket, or -1
        self.stamp = [-1] * windows  # per window: the stamp of its live heap entry
        self.clock = 0

    def insert(self, window: int, bucket: int, value: float) -> None:
        """Index a window (not indexed now) in ``bucket`` with ``value``."""
        self.clock = clock = self.clock + 1
        self.bucket[window], self.stamp[window] = bucket, clock
        heap = self.heaps.get(bucket)
        if heap is None:
            heap = self.heaps[bucket] = []
        heapq.heappush(heap, (value, clock, window))
        self.live[bucket] += 1
        words, word = self.words, bucket >> _WORD_BITS
        if not words[word]:
            self.nonempty |= 1 << word
        words[word] |= 1 << (bucket & _WORD_MASK)
        if value < self.floor[word]:
            self.floor[word] = value

    def remove(self, window: int) -> None:
        """Unindex an indexed window."""
        bucket = self.bucket[window]
        self.bucket[window] = self.stamp[window] = -1
        live = self.live
        live[bucket] -= 1
        if not live[bucket]:
            del self.heaps[bucket]
            words, word = self.words, bucket >> _WORD_BITS
            words[word] &= ~(1 << (bucket & _WORD_MASK))
            if not words[word]:
                self.nonempty &= ~(1 << word)
                self.floor[word] = math.inf

    def _top(self, bucket: int) -> tuple[float, int, int]:
        """The live entry of least value in a non-empty bucket (stale ones dropped)."""
        heap, stamp = self.heaps[bucket], self.stamp
        while heap[0][1] != stamp[heap[0][2]]:
            heapq.heappop(heap)
        return heap[0]

    def find(self, need: int, limit: float) -> int:
        """A window in the lowest bucket ≥ ``need`` with a value ≤ ``limit``, or -1."""
        bucket, words, floors, heaps, stamp = need, self.words, self.floor, self.heaps, self.stamp
        while bucket < self.size:
            word_index = bucket >> _WORD_BITS
            word = words[word_index] >> (bucket & _WORD_MASK)
            if not word:
                higher = self.nonempty >> (word_index + 1)
                if not higher:
                    return -1
                word_index += (higher & -higher).bit_length()
                bucket, word = word_index << _WORD_BITS, words[word_index]
            if floors[word_index] <= limit:
                while word:  # the word's non-empty buckets from ``bucket`` up
                    low = word & -word
                    word ^= low
                    heap = heaps[bucket + low.bit_length() - 1]
                    while heap[0][1] != stamp[heap[0][2]]:  # drop stale entries
                        heapq.heappop(heap)
                    if heap[0][0] <= limit:
                        return heap[0][2]
                floor, word, base = math.inf, words[word_index], word_index << _WORD_BITS
                while word:
                    low = word & -word
                    word ^= low
                    value = self._top(base + low.bit_length() - 1)[0]
                    if value < floor:
                        floor = value
                floors[word_index] = floor
            bucket = (word_index + 1) << _WORD_BITS
        return -1


def _best_fit(
    order: list[int],
    durations: list[float],
    tokens: list[int],
    max_seconds: float,
    max_tokens: int,
    gap_seconds: float,
) -> list[list[int]]:
    """Best-fit packing of ``order`` (indices of one group, in packing order).

    With rooms as fractions of the limits — ``a`` seconds left / ``max_seconds``, ``b``
    tokens left / ``max_tokens`` — and an item's needs ``x`` = (``gap_seconds`` + duration)
    / ``max_seconds`` and ``y`` = tokens / ``max_tokens``, the item goes into the window
    that holds it with the least ``min(a - x, b - y)`` left: the tightest fit on whichever
    limit binds. Seconds bind in windows with ``a - b ≤ x - y``, where the best is the
    least ``a ≥ x``; tokens bind in the others, where it is the least ``b ≥ y``. So each
    open window sits in two :class:`_RoomIndex`: one by seconds left, in buckets of 1 ms
    (coarser past 65 s), with value ``a - b``; one by tokens left, with value ``b - a``.
    An item asks both for their lowest bucket ≥ its need with a value ≤ ``±(x - y)``.
    Needs round up and rooms down to whole buckets; the exact float seconds and token
    counts of each window are checked as well, so no window exceeds ``max_seconds`` or
    ``max_tokens`` except an item alone. A window that no item of the group could still
    join leaves the indexes.
    """
    if max_seconds <= 0 or max_tokens < 0 or not order:
        return [[index] for index in order]
    picked = np.fromiter(map(durations.__getitem__, order), np.float64, len(order))
    counts = np.fromiter(map(tokens.__getitem__, order), np.int64, len(order))
    if not (picked.min() >= 0 and gap_seconds >= 0) or counts.min() < 0:  # also NaN
        raise ValueError("packing needs durations, gap_seconds and token counts >= 0")
    needs = gap_seconds + picked
    # A limit that no window can reach (e.g. infinite) acts as twice the group's whole size.
    max_seconds = min(max_seconds, 2 * float(needs.sum()) + 1)
    max_tokens = min(max_tokens, 2 * int(counts.sum()) + 1)
    seconds_unit = min(1000.0, _MAX_BUCKETS / max_seconds)  # buckets per second
    tokens_unit = min(1.0, _MAX_BUCKETS / max(max_tokens, 1))  # buckets per token
    per_second, per_token = 1 / max_seconds, 1 / max(max_tokens, 1)
    by_seconds = _RoomIndex(int(max_seconds * seconds_unit) + 1, len(order))
    by_tokens = _RoomIndex(int(max_tokens * tokens_unit) + 1, len(order))
    in_seconds, in_tokens = by_seconds.bucket, by_tokens.bucket
    # What the group's items need at least, and the range of x - y: windows outside it
    # never fit anything or never are the best in an index.
    diff_array = needs * per_second - counts * per_token
    min_need, min_tokens = float(needs.min()), int(counts.min())
    min_diff, max_diff = float(diff_array.min()), float(diff_array.max())
    diffs = diff_array.tolist()
    ceil = math.ceil
    members: list[list[int]] = []
    seconds: list[float] = []
    labels: list[int] = []
    for index, need, diff in zip(order, needs.tolist(), diffs, strict=True):
        count = tokens[index]  # need: gap_seconds + its duration
        window = -1
        if by_seconds.nonempty:
            found = by_seconds.find(ceil(need * seconds_unit), diff)
            if (
                found >= 0
                and seconds[found] + need <= max_seconds
                and labels[found] + count <= max_tokens
            ):
                window = found
        if by_tokens.nonempty:
            found = by_tokens.find(ceil(count * tokens_unit), -diff)
            if (
                found >= 0
                and seconds[found] + need <= max_seconds
                and labels[found] + count <= max_tokens
                and (
                    window < 0  # or it is a tighter fit than the best by seconds
                    or (max_tokens - labels[found] - count) * per_token
                    < (max_seconds - seconds[window] - need) * per_second
                )
            ):
                window = found
        if window >= 0:
            if in_seconds[window] >= 0:
                by_seconds.remove(window)
            if in_tokens[window] >= 0:
                by_tokens.remove(window)
            members[window].append(index)
            seconds[window] += need  # as tested above: no rounding past max_seconds
            labels[window] += count
        else:
            window = len(members)
            members.append([index])
            seconds.append(durations[index])
            labels.append(count)
        room, tokens_left = max_seconds - seconds[window], max_tokens - labels[window]
        if room >= min_need and tokens_left >= min_tokens:
            value = room * per_second - tokens_left * per_token
            if value <= max_diff:
                by_seconds.insert(window, int(room * seconds_unit), value)
            if value >= min_diff:
                by_tokens.insert(window, int(tokens_left * tokens_unit), -value)
    return members


def repack_same_count(
    items: Sequence[PackItem],
    count: int,
    max_seconds: float,
    max_tokens: int,
    seed: int,
    tries: int = 16,
) -> list[list[int]] | None:
    """A new packing with exactly ``count`` windows (so an epoch keeps its length), or None
    when ``tries`` seeds derived from ``seed`` all give more windows than ``count``.

    Seeds are tried in turn. The first packing with ``count`` windows or fewer is taken; if
    fewer, windows of two or more utterances (chosen by the seed) are cut in two until there
    are ``count`` — halves stay within the limits. The window count of a packing varies by a
    few between seeds (its spread grows like √n, so an exact match gets rarer with size:
    about one seed in 30 at 281,000 utterances), so about every other seed is taken.
    """
    for attempt in range(tries):
        attempt_seed = seed + 7919 * attempt
        packs = pack_indices(items, max_seconds, max_tokens, seed=attempt_seed)
        missing = count - len(packs)
        if missing == 0:
            return packs
        splittable = [i for i, pack in enumerate(packs) if len(pack) > 1]
        if 0 < missing <= len(splittable):
            rng = random.Random(attempt_seed + 2)  # pack_indices uses seed and seed + 1
            halves = []
            for i in rng.sample(splittable, missing):
                pack, cut = packs[i], len(packs[i]) // 2
                packs[i] = pack[:cut]
                halves.append(pack[cut:])
            for half in halves:  # at random places, as the windows' order is random
                packs.insert(rng.randrange(len(packs) + 1), half)
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
        epoch: int = 0,
    ) -> None:
        self.durations = list(durations)
        self.max_batch_seconds, self.max_batch_items = max_batch_seconds, max_batch_items
        self.seed, self.pool_batches, self.epoch = seed, pool_batches, epoch
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
