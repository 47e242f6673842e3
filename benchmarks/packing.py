"""Speed and density of :func:`asrtune.data.batching.pack_indices` on large synthetic sets.

Utterance durations (seconds) are drawn uniform on [1, 20] or lognormal (median 6 s)
clipped to [1, 20]; label tokens are about 4 per second of audio (uniform 2.5-5.5 per
second, at least 1; ``--tokens-per-second 10 30`` makes the token budget bind); windows
hold at most 30 s (with 0.4-s gaps) and 445 tokens, as for Whisper. Each case is packed
with one group and with several (e.g. languages). The old quadratic first fit
(:func:`first_fit_reference`) is timed too, on sizes up to 16,000 only.

    python benchmarks/packing.py --sizes 4000 16000 281000 1000000 --seed 0 \\
        --json /tmp/packing.json

Prints one table row per (algorithm, distribution, groups, size): seconds of packing, wall
clock and CPU of this process (the shuffle included, building the items not), windows,
fill = audio seconds / (windows × max seconds), and the lower bound ceil(audio seconds of
a group / max seconds) summed over the groups (gaps left out, so no packing reaches it).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from asrtune.data.batching import PACK_GAP_SECONDS, PackItem, pack_indices

MAX_SECONDS = 30.0
MAX_TOKENS = 445
FIRST_FIT_MAX_ITEMS = 16_000  # the reference is quadratic: ~1 h at 1M items


def first_fit_reference(
    items: Sequence[PackItem],
    max_seconds: float,
    max_tokens: int,
    gap_seconds: float = PACK_GAP_SECONDS,
    seed: int = 0,
) -> list[list[int]]:
    """The former ``pack_indices``: first fit over a seeded shuffle, O(n × windows).

    Seconds of audio, tokens of labels; the same shuffle (``random.Random(seed)``) as
    ``pack_indices``, so both see the items in the same order.
    """
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    windows: dict[str, list[list[Any]]] = {}  # group -> [members, seconds, tokens]
    for index in order:
        item = items[index]
        group = windows.setdefault(item.group, [])
        target = next(
            (
                w
                for w in group
                if w[1] + gap_seconds + item.duration <= max_seconds
                and w[2] + item.tokens <= max_tokens
            ),
            None,
        )
        if target is None:
            group.append([[index], item.duration, item.tokens])
        else:
            target[0].append(index)
            target[1] += gap_seconds + item.duration
            target[2] += item.tokens
    packs = [w[0] for group in windows.values() for w in group]
    random.Random(seed + 1).shuffle(packs)
    return packs


def make_items(
    n: int,
    distribution: str,
    groups: int,
    seed: int,
    tokens_per_second: tuple[float, float] = (2.5, 5.5),
) -> list[PackItem]:
    """``n`` utterances: durations in seconds on [1, 20], label tokens per second of audio
    uniform on ``tokens_per_second``."""
    rng = np.random.default_rng(seed)
    if distribution == "uniform":
        durations = rng.uniform(1.0, 20.0, n)
    elif distribution == "lognormal":
        durations = np.clip(rng.lognormal(math.log(6.0), 0.6, n), 1.0, 20.0)
    else:
        raise ValueError(f"unknown distribution {distribution!r}")
    tokens = np.maximum(1, (durations * rng.uniform(*tokens_per_second, n)).astype(np.int64))
    names = [f"g{k}" for k in range(groups)]
    labels = rng.integers(0, groups, n)
    return [
        PackItem(float(d), int(t), names[g])
        for d, t, g in zip(durations.tolist(), tokens.tolist(), labels.tolist(), strict=True)
    ]


def lower_bound(items: Sequence[PackItem], max_seconds: float) -> int:
    """Sum over groups of ceil(group audio seconds / max_seconds)."""
    totals: dict[str, float] = {}
    for item in items:
        totals[item.group] = totals.get(item.group, 0.0) + item.duration
    return sum(math.ceil(total / max_seconds) for total in totals.values())


def measure(
    algorithm: str, items: Sequence[PackItem], distribution: str, groups: int, seed: int
) -> dict[str, Any]:
    """Time one packing; check it covers every index once, one group per window, limits."""
    pack = pack_indices if algorithm == "best_fit" else first_fit_reference
    start, cpu = time.perf_counter(), time.process_time()
    packs = pack(items, MAX_SECONDS, MAX_TOKENS, PACK_GAP_SECONDS, seed)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert sorted(i for p in packs for i in p) == list(range(len(items)))
    for p in packs:
        assert len({items[i].group for i in p}) == 1
        seconds = items[p[0]].duration
        for i in p[1:]:  # in joining order, as the packers add them up
            seconds += PACK_GAP_SECONDS + items[i].duration
        assert len(p) == 1 or seconds <= MAX_SECONDS
        assert len(p) == 1 or sum(items[i].tokens for i in p) <= MAX_TOKENS
    audio = sum(item.duration for item in items)
    return {
        "algorithm": algorithm,
        "distribution": distribution,
        "groups": groups,
        "items": len(items),
        "seconds": round(elapsed, 3),
        "cpu_seconds": round(cpu, 3),
        "windows": len(packs),
        "fill": round(audio / (len(packs) * MAX_SECONDS), 4),
        "lower_bound": lower_bound(items, MAX_SECONDS),
        "audio_seconds": round(audio, 1),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000, 16000, 281000, 1000000])
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the packing")
    parser.add_argument(
        "--distributions", nargs="+", default=["uniform", "lognormal"], help="uniform lognormal"
    )
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 4], help="groups per case")
    parser.add_argument(
        "--tokens-per-second",
        type=float,
        nargs=2,
        default=[2.5, 5.5],
        metavar=("LOW", "HIGH"),
        help="label tokens per second of audio, uniform on [LOW, HIGH]",
    )
    parser.add_argument("--json", type=Path, help="write the rows as a JSON list here")
    args = parser.parse_args(argv)

    header = (
        f"{'algorithm':<10} {'distribution':<12} {'groups':>6} {'items':>9} {'seconds':>8} "
        f"{'cpu s':>8} {'windows':>8} {'fill':>7} {'bound':>8}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for distribution in args.distributions:
        for groups in args.groups:
            for n in args.sizes:
                rates = (args.tokens_per_second[0], args.tokens_per_second[1])
                items = make_items(n, distribution, groups, args.seed, rates)
                algorithms = ["best_fit"]
                if n <= FIRST_FIT_MAX_ITEMS:
                    algorithms.append("first_fit")
                for algorithm in algorithms:
                    row = measure(algorithm, items, distribution, groups, args.seed)
                    rows.append(row)
                    print(
                        f"{algorithm:<10} {distribution:<12} {groups:>6} {n:>9} "
                        f"{row['seconds']:>8.3f} {row['cpu_seconds']:>8.3f} "
                        f"{row['windows']:>8} {row['fill']:>7.4f} "
                        f"{row['lower_bound']:>8}",
                        flush=True,
                    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
