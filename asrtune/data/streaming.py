"""Training on a stream: records → rows → admitted examples → packed windows → model items.

For corpora larger than the disk (``--streaming``). Rows that cannot be used are counted
and handed to ``on_skip`` (train writes them to OUT/skipped.jsonl): nothing is dropped
silently. Across dataloader workers the stream's shards are split; across processes,
accelerate dispatches batches from the main process (Trainer's default for iterables).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import torch

from asrtune.data.audio import audio_duration
from asrtune.data.batching import PackItem, WindowPacker
from asrtune.data.manifest import BadRow, Row
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


def interleave(streams: list[Stream], seed: int) -> Iterator[Row | BadRow]:
    """Rows of all streams; each next row comes from a stream chosen by weight (seeded)
    among those not yet exhausted."""
    rng = random.Random(seed)
    active = [(iter(_worker_shard(s.records)), s, [0]) for s in streams]
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

    ``admit(row)`` returns ``(example, PackItem)`` or a skip reason (str); ``packer`` is
    None to yield one example per window.
    """

    def __init__(
        self,
        streams: list[Stream],
        admit: Callable[[Row], tuple[Any, PackItem] | str],
        make_item: Callable[[list[Any]], dict[str, Any]],
        packer: WindowPacker | None,
        on_skip: Callable[[dict[str, Any]], None],
        seed: int = 0,
    ) -> None:
        self.streams, self.admit, self.make_item = streams, admit, make_item
        self.packer, self.on_skip, self.seed, self.epoch = packer, on_skip, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle the streams' buffers each epoch (Trainer calls this)."""
        self.epoch = epoch
        for stream in self.streams:
            if hasattr(stream.records, "set_epoch"):
                stream.records.set_epoch(epoch)

    def _rows(self) -> Iterator[Row]:
        for row in interleave(self.streams, self.seed + self.epoch):
            if isinstance(row, Row) and row.duration is None:
                try:
                    row = replace(row, duration=audio_duration(row.audio_path, row.audio_bytes))
                except AsrtuneError as exc:
                    row = BadRow(row.line or 0, row.audio_path, f"unreadable audio: {exc}")
            if isinstance(row, BadRow):
                self.on_skip(row.as_dict())
                continue
            yield row

    def __iter__(self) -> Iterator[dict[str, Any]]:
        packer = (
            WindowPacker(self.packer.max_seconds, self.packer.max_tokens, self.packer.gap_seconds)
            if self.packer
            else None
        )
        examples: dict[int, Any] = {}
        for key, row in enumerate(self._rows()):
            admitted = self.admit(row)
            if isinstance(admitted, str):
                self.on_skip(
                    {
                        "id": row.id,
                        "line": row.line,
                        "audio_path": row.audio_path,
                        "reason": admitted,
                    }
                )
                continue
            example, item = admitted
            if packer is None:
                yield self.make_item([example])
                continue
            examples[key] = example
            closed = packer.add(key, item)
            if closed:
                yield self.make_item([examples.pop(k) for k in closed])
        for window in packer.flush() if packer else []:
            yield self.make_item([examples.pop(k) for k in window])
