"""Packing several utterances into one fixed-length audio window.

Whisper's encoder always sees a full window (30 s for real models), so short clips are
joined, with a short silence between them, until the next one would overflow the window
or the label budget. Packing is deterministic for a seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

PACK_GAP_SECONDS = 0.4  # silence between packed utterances


@dataclass(frozen=True)
class PackItem:
    """What packing needs to know of one utterance: seconds of audio, label tokens, group."""

    duration: float
    tokens: int
    group: str = ""


def pack_indices(
    items: Sequence[PackItem],
    max_seconds: float,
    max_tokens: int,
    gap_seconds: float = PACK_GAP_SECONDS,
    seed: int = 0,
) -> list[list[int]]:
    """Group item indices into windows of ≤ ``max_seconds`` audio and ≤ ``max_tokens`` labels.

    Only items of the same ``group`` (e.g. language) share a window. Items are shuffled
    with ``seed`` and then filled greedily, so one item's neighbours change with the seed.
    ``max_tokens`` counts the items' own tokens; joining costs none (each utterance's
    text is encoded with its leading space, so the token runs simply concatenate).
    """
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    open_packs: dict[str, tuple[list[int], float, int]] = {}
    packs: list[list[int]] = []
    for index in order:
        item = items[index]
        members, seconds, tokens = open_packs.get(item.group, ([], 0.0, 0))
        if members and (
            seconds + gap_seconds + item.duration > max_seconds or tokens + item.tokens > max_tokens
        ):
            packs.append(members)
            members, seconds, tokens = [], 0.0, 0
        if members:
            seconds += gap_seconds
        open_packs[item.group] = ([*members, index], seconds + item.duration, tokens + item.tokens)
    packs.extend(members for members, _, _ in open_packs.values() if members)
    return packs
