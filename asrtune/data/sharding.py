"""Training batches for data-parallel runs: one global order, a disjoint share per process.

Every process builds the same *steps* for (seed, epoch): a step is the list of the
micro-batches that the processes train together, one per process. Process ``rank`` takes
the ``rank``-th of each step, so across processes every training item is used exactly once
an epoch, and one process × batch 4, one × 2 × accumulation 2 and two × 2 see the same
global batches (with the token-level loss of :class:`~asrtune.trainer.AsrTrainer`, the
same gradients too).

All processes must take part in every step (their gradients are all-reduced), so a step
with fewer items than processes fills the empty places with :class:`LossFreeIndex`: an item
whose labels are masked, which adds no loss, no gradient and no token to the count. The
item says so explicitly (:data:`LOSS_WEIGHT` 0, carried into the batch by
:class:`LossWeightCollator`): a row without label tokens is otherwise a target, the empty
transcript of a non-speech window.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from asrtune.data.batching import DurationBatchSampler

Step = list[list[int]]  # one micro-batch of item indices per process

#: The key of an item's, then a batch's, loss weights: 0 for a placeholder, else 1.
LOSS_WEIGHT = "loss_weight"


class LossFreeIndex(int):
    """An item index whose labels the dataset masks (-100): a placeholder batch that keeps
    a process in step with the others without training anything twice."""


class LossWeightCollator:
    """A family's collate, plus ``batch[LOSS_WEIGHT]``: (B,) float32, each row's item's
    :data:`LOSS_WEIGHT` (0 for a data-parallel placeholder), 1 for items without one.
    The family's collate never sees the key. A class, so dataloader workers can pickle it."""

    def __init__(self, collate: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> None:
        self.collate = collate

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        weights = [float(item.get(LOSS_WEIGHT, 1.0)) for item in items]
        batch = self.collate(
            [{k: v for k, v in item.items() if k != LOSS_WEIGHT} for item in items]
        )
        return {**batch, LOSS_WEIGHT: torch.tensor(weights, dtype=torch.float32)}


def fixed_size_steps(
    num_items: int, per_device: int, world_size: int, seed: int, epoch: int
) -> list[Step]:
    """Steps of ``per_device × world_size`` items from a permutation seeded by
    ``(seed, epoch)``; item ``i`` of a step goes to process ``i % world_size``, so the
    last, smaller step is spread as evenly as it can be."""
    order = list(range(num_items))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    size = per_device * world_size
    return [
        [order[start : start + size][rank::world_size] for rank in range(world_size)]
        for start in range(0, num_items, size)
    ]


def grouped_steps(batches: Sequence[list[int]], world_size: int) -> list[Step]:
    """Steps of ``world_size`` consecutive batches (batches sized elsewhere, e.g. by
    seconds); the last step may lack some, left empty."""
    steps = []
    for start in range(0, len(batches), world_size):
        step = [list(b) for b in batches[start : start + world_size]]
        steps.append(step + [[] for _ in range(world_size - len(step))])
    return steps


def split_to_count(batches: Sequence[list[int]], count: int) -> list[list[int]]:
    """``batches`` with the one of most items cut in two (halves side by side) until there
    are ``count``: a half holds fewer items and none longer, so it keeps every limit its
    batch kept. Raises ValueError when ``count`` is more than the items."""
    batches = [list(batch) for batch in batches]
    while len(batches) < count:
        biggest = max(range(len(batches)), key=lambda i: len(batches[i]), default=None)
        if biggest is None or len(batches[biggest]) < 2:
            raise ValueError(f"{count} batches asked of {sum(map(len, batches))} items")
        batch, cut = batches[biggest], len(batches[biggest]) // 2
        batches[biggest : biggest + 1] = [batch[:cut], batch[cut:]]
    return batches


class DurationSteps:
    """``epoch → steps`` of batches sized by padded seconds (:class:`DurationBatchSampler`)
    from that epoch's item durations, with the same number of steps in every epoch.

    Items whose durations change between epochs (repacked windows, redrawn non-speech
    clips) batch into different numbers of batches; the Trainer plans its steps from the
    first epoch's count. So the plan looks ``epochs`` epochs ahead, takes the most batches
    any of them needs, and cuts batches of the others in two (:func:`split_to_count`) to
    reach it: every epoch has the same length, every batch holds to ``max_batch_seconds``
    (and ``max_batch_items``), and every item is in exactly one batch an epoch.
    ``seconds_of(epoch)`` must depend on the epoch only (every process builds the same plan).
    """

    def __init__(
        self,
        seconds_of: Callable[[int], Sequence[float]],
        max_batch_seconds: float,
        max_batch_items: int | None,
        world_size: int,
        seed: int,
        epochs: int,
    ) -> None:
        self.seconds_of, self.max_batch_seconds = seconds_of, max_batch_seconds
        self.max_batch_items, self.world_size, self.seed = max_batch_items, world_size, seed
        self.epochs = max(epochs, 1)
        self.num_batches = max(len(self.natural_batches(e)) for e in range(self.epochs))

    def natural_batches(self, epoch: int) -> list[list[int]]:
        """Epoch ``epoch``'s batches as :class:`DurationBatchSampler` cuts them."""
        return list(
            DurationBatchSampler(
                self.seconds_of(epoch),
                self.max_batch_seconds,
                max_batch_items=self.max_batch_items,
                seed=self.seed,
                epoch=epoch,
            )
        )

    def __call__(self, epoch: int) -> list[Step]:
        batches = self.natural_batches(epoch)
        if len(batches) > self.num_batches:  # an epoch past those planned for
            raise RuntimeError(
                f"epoch {epoch} needs {len(batches)} batches, the plan for {self.epochs} "
                f"epoch(s) has {self.num_batches}"
            )
        return grouped_steps(split_to_count(batches, self.num_batches), self.world_size)


class ShardedBatchSampler:
    """This process's micro-batches of the steps ``make_steps(epoch)`` returns.

    A batch sampler for ``torch.utils.data.DataLoader(batch_sampler=...)``. Its length is
    the number of steps, the same in every process. ``set_epoch`` (called by the Trainer
    through accelerate at each epoch) rebuilds the steps.
    """

    def __init__(self, make_steps: Callable[[int], list[Step]], rank: int, world_size: int):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside a world of {world_size}")
        self.make_steps, self.rank, self.world_size = make_steps, rank, world_size
        self.epoch = 0
        self._steps = make_steps(0)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch = epoch
            self._steps = self.make_steps(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        for step in self._steps:
            mine = step[self.rank]
            if mine:
                yield mine
            else:  # nothing left for this process in the last step
                filler = next(i for batch in step for i in batch)
                yield [LossFreeIndex(filler)]

    def __len__(self) -> int:
        return len(self._steps)
