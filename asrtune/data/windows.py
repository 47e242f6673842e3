"""Training items: admitted utterances, grouped into windows, featurized on access.

One dataset class for every family: the family's adapter says how big an utterance is for
packing (``pack_item``), what a window may hold (``packer``) and how a window becomes model
inputs (``window_item``). Packed datasets repack every epoch with the same window count.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from asrtune.data.batching import PACK_GAP_SECONDS, pack_indices, repack_same_count
from asrtune.data.manifest import Row
from asrtune.data.sharding import LossFreeIndex

if TYPE_CHECKING:
    from asrtune.models import LoadedModel


@dataclass(frozen=True)
class Example:
    """One utterance admitted for training, with its label token count."""

    row: Row
    language: str | None
    num_tokens: int


class WindowDataset(torch.utils.data.Dataset):
    """Windows of one or more utterances; ``__getitem__`` returns the family's item
    (``adapter.window_item``). When packed, :meth:`set_epoch` repacks with a new seed each
    epoch (same number of windows, so an epoch's length never changes)."""

    def __init__(
        self,
        loaded: LoadedModel,
        examples: list[Example],
        task: str,
        pack: bool,
        seed: int,
        item_options: dict[str, Any] | None = None,
    ) -> None:
        self.loaded, self.examples, self.task, self.seed = loaded, examples, task, seed
        self.options = item_options or {}  # family options, e.g. {"timestamps": True}
        adapter = loaded.adapter
        self.items = (
            [adapter.pack_item(loaded, ex, task, **self.options) for ex in examples]
            if pack
            else None
        )
        self.windows: list[list[Example]] = [[ex] for ex in examples]
        self.epoch = -1
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        if self.items is None or epoch == self.epoch or not self.examples:
            return
        limits = self.loaded.adapter.packer(self.loaded, self.task, None)
        if self.epoch < 0:
            packs = pack_indices(
                self.items, limits.max_seconds, limits.max_tokens, limits.gap_seconds, self.seed
            )
        else:
            packs = repack_same_count(
                self.items,
                len(self.windows),
                limits.max_seconds,
                limits.max_tokens,
                seed=self.seed + epoch,
            )
        if packs is None:  # no packing with the same count: same windows, new order
            self.windows = list(self.windows)
            random.Random(self.seed + epoch).shuffle(self.windows)
        else:
            self.windows = [[self.examples[i] for i in pack] for pack in packs]
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.windows)

    def window_seconds(self) -> list[float]:
        """Audio seconds in each window (packed utterances and the gaps between them)."""
        return [
            sum(ex.row.duration or 0.0 for ex in window) + PACK_GAP_SECONDS * (len(window) - 1)
            for window in self.windows
        ]

    def audio_seconds(self) -> float:
        return sum(ex.row.duration or 0.0 for window in self.windows for ex in window)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """The family's item for window ``index``; a :class:`LossFreeIndex` gets its labels
        masked (-100), so it trains nothing (a data-parallel placeholder)."""
        window = self.windows[index]
        item = self.loaded.adapter.window_item(self.loaded, window, self.task, **self.options)
        if isinstance(index, LossFreeIndex):
            item = {**item, "labels": [-100] * len(item["labels"])}
        return item
