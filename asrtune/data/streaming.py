"""Training on a stream: records → rows → admitted examples → packed windows → model items.

For corpora larger than the disk (``--streaming``). Rows that cannot be used are counted
and handed to ``on_skip`` (train writes them to OUT/skipped.jsonl): nothing is dropped
silently. Across processes each source is split by rank
(``datasets.distributed.split_dataset_by_node``: whole shards per process when they divide
evenly, else every ``world_size``-th record), so each process decodes and packs only its
own rows; across dataloader workers the process's shards are split again.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from datasets import IterableDataset as HubIterable
from datasets.distributed import split_dataset_by_node

from asrtune.data.batching import PackItem, WindowPacker
from asrtune.data.manifest import BadRow, Row, skip_record
from asrtune.data.windows import (
    Example,
    TrainingMix,
    WindowPlan,
    nonspeech_examples,
    plan_window,
)
from asrtune.errors import AsrtuneError


@dataclass(frozen=True)
class Stream:
    """One source's records, how to make rows of them, and its mixing weight."""

    records: Any  # datasets.IterableDataset (or any iterable of dicts)
    to_row: Callable[[dict, int], Row | BadRow]
    weight: float = 1.0


def _worker_shard(records: Any) -> Any:
    info = torch.utils.data.get_worker_info()
    if info is None or info.num_workers == 1:
        return records
    shards = getattr(records, "num_shards", 1)
    if shards < info.num_workers:
        raise AsrtuneError(
            f"a stream has {shards} shard(s) but {info.num_workers} dataloader workers: "
            "lower --dataloader_num_workers"
        )
    return records.shard(num_shards=info.num_workers, index=info.id)


def process_share(records: Any, rank: int, world_size: int) -> Any:
    """Process ``rank``'s part of a source's records: disjoint between processes."""
    if world_size == 1:
        return records
    if isinstance(records, HubIterable):
        return split_dataset_by_node(records, rank=rank, world_size=world_size)
    return (record for i, record in enumerate(records) if i % world_size == rank)


def interleave(
    streams: list[Stream], seed: int, rank: int = 0, world_size: int = 1
) -> Iterator[Row | BadRow]:
    """Rows of all streams (this process's share of each); each next row comes from a
    stream chosen by weight (seeded) among those not yet exhausted."""
    rng = random.Random(seed)
    active = [
        (iter(_worker_shard(process_share(s.records, rank, world_size))), s, [0]) for s in streams
    ]
    while active:
        pick = rng.choices(range(len(active)), weights=[s.weight for _, s, _ in active])[0]
        records, stream, count = active[pick]
        try:
            record = next(records)
        except StopIteration:
            active.pop(pick)
            continue
        count[0] += 1
        yield stream.to_row(record, count[0])


class StreamingWindows(torch.utils.data.IterableDataset):
    """Yields ``make_item(window)`` for windows of admitted examples.

    ``admit(row)`` returns ``(example, PackItem)`` (the example's row with its duration)
    or a skip reason (str); ``packer`` is
    None to yield one example per window. Rows left out (bad lines, unreadable audio, rows
    ``admit`` refuses) go to ``on_skip`` as :func:`~asrtune.data.manifest.skip_record`
    records. With several processes (``world_size`` > 1) each reads its own share and the
    iteration never ends (it starts the next epoch itself): every process must take part in
    every step until ``--max_steps``, and the shares need not hold the same number of
    windows.
    """

    def __init__(
        self,
        streams: list[Stream],
        admit: Callable[[Row], tuple[Example, PackItem] | str],
        make_item: Callable[[list[Example], WindowPlan], dict[str, Any]],
        packer: WindowPacker | None,
        on_skip: Callable[[dict[str, Any]], None],
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        mix: TrainingMix | None = None,
        max_seconds: float = 30.0,
    ) -> None:
        self.streams, self.admit, self.make_item = streams, admit, make_item
        self.packer, self.on_skip, self.seed, self.epoch = packer, on_skip, seed, 0
        self.rank, self.world_size = rank, world_size
        self.mix, self.max_seconds = mix or TrainingMix(), max_seconds

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle the streams' buffers each epoch (Trainer calls this)."""
        self.epoch = epoch
        for stream in self.streams:
            if hasattr(stream.records, "set_epoch"):
                stream.records.set_epoch(epoch)

    def _rows(self) -> Iterator[Row]:
        """This epoch's rows; lines that never became rows go to ``on_skip``. ``admit``
        measures the durations (see :func:`asrtune.data.admission.admit`)."""
        rows = interleave(self.streams, self.seed + self.epoch, self.rank, self.world_size)
        for row in rows:
            if isinstance(row, BadRow):
                self.on_skip(skip_record(row, row.reason))
                continue
            yield row

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yield from self._epoch_items()
        while self.world_size > 1:
            self.set_epoch(self.epoch + 1)
            yielded = False
            for item in self._epoch_items():
                yielded = True
                yield item
            if not yielded:
                raise AsrtuneError(
                    f"process {self.rank} of {self.world_size} has no usable rows in its "
                    "share of the stream: use fewer processes or more data"
                )

    def _epoch_items(self) -> Iterator[dict[str, Any]]:
        """The items of one pass over this process's share of the streams, with the
        :class:`~asrtune.data.windows.TrainingMix` windows drawn in as they go."""
        packer = (
            WindowPacker(self.packer.max_seconds, self.packer.max_tokens, self.packer.gap_seconds)
            if self.packer
            else None
        )
        worker = torch.utils.data.get_worker_info()
        seed = [self.seed, self.epoch, self.rank, worker.id if worker else 0]
        draws = np.random.default_rng([*seed, 1])  # which extra windows to make
        plans = np.random.default_rng([*seed, 2])  # each window's layout

        def items(window: list[Example]) -> Iterator[dict[str, Any]]:
            durations = [ex.row.duration or 0.0 for ex in window]
            yield self.make_item(window, plan_window(durations, self.max_seconds, self.mix, plans))
            if draws.random() < self.mix.nonspeech_share:
                [extra] = nonspeech_examples(
                    1, int(draws.integers(2**31)), self.max_seconds, [window[0].language]
                )
                seconds = [extra.row.duration or 0.0]
                plan = plan_window(seconds, self.max_seconds, self.mix, plans, nonspeech=True)
                yield self.make_item([extra], plan)

        examples: dict[int, Any] = {}
        for key, row in enumerate(self._rows()):
            admitted = self.admit(row)
            if isinstance(admitted, str):
                self.on_skip(skip_record(row, admitted))
                continue
            example, item = admitted
            if packer is None or draws.random() < self.mix.single_share:
                yield from items([example])
                continue
            examples[key] = example
            closed = packer.add(key, item)
            if closed:
                yield from items([examples.pop(k) for k in closed])
        for window in packer.flush() if packer else []:
            yield from items([examples.pop(k) for k in window])
