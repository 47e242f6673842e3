"""Where this process stands in a ``torchrun`` / ``accelerate launch`` run.

asrtune has no distributed layer of its own: the Trainer (through accelerate) sets up the
process group for training, and :func:`join_launched_run` asks accelerate to for
evaluation and transcription; :func:`leave_launched_run` ends it when a command is done.
The other helpers only read the group torch.distributed holds.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def launched_world_size() -> int:
    """Processes a launcher started (``WORLD_SIZE``), 1 when run directly."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the initialized process group, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """True outside a process group and in its rank 0: the process that writes outputs."""
    return rank_and_world()[0] == 0


def join_launched_run() -> None:
    """Join the process group of a launched run (no-op when run directly or already in
    one): accelerate's PartialState initializes it, gloo on a CPU, nccl on CUDA, and puts
    this process on its own GPU."""
    if launched_world_size() > 1 and not (dist.is_available() and dist.is_initialized()):
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available())


def leave_launched_run() -> None:
    """Wait for every process of the group, then leave it (no-op outside one): a process
    that exits while the others still use the group tears gloo's threads down under them
    (an abort at exit), and torch asks for ``destroy_process_group`` before exiting."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_processes(value: object) -> list:
    """``value`` of every process, in rank order, in every process (``[value]`` alone)."""
    _, world = rank_and_world()
    if world == 1:
        return [value]
    values: list = [None] * world
    dist.all_gather_object(values, value)
    return values
