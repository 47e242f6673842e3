"""Training batches for data-parallel runs: one global order, a disjoint share per process.

Every process builds the same *steps* for (seed, epoch): a step is the list of the
micro-batches that the processes train together, one per process. Process ``rank`` takes
the ``rank``-th of each step, so across processes every training item is used exactly once
an epoch, and one process × batch 4, one × 2 × accumulation 2 and two × 2 see the same
global batches (with the token-level loss of :class:`~asrtune.trainer.AsrTrainer`, the
same gradients too).

All processes must take part in every step (their gradients are all-reduced), so a step
with fewer items than processes fills the empty places with :class:`LossFreeIndex`: an item
whose labels are masked, which adds no loss, no gradient and no token to the count.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence

Step = list[list[int]]  # one micro-batch of item indices per process


class LossFreeIndex(int):
    """An item index whose labels the dataset masks (-100): a placeholder batch that keeps
    a process in step with the others without training anything twice."""


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
