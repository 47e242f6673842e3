"""Seeded train/eval split of a manifest, keeping each speaker on one side.

When rows carry a ``speaker`` (a ``speaker``/``speaker_id``/``client_id`` column), whole
speakers go to one side, so eval WER measures unseen voices; otherwise rows are split one by
one. The eval side gets the groups, in seeded random order, that bring it closest to
``eval_fraction`` of the rows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from asrtune.data.manifest import BadRow, Row, read_manifest, write_manifest
from asrtune.errors import AsrtuneError


@dataclass(frozen=True)
class Split:
    """Rows of each side, in their original order; ``by_speaker`` when grouped by speaker."""

    train: list[Row]
    eval: list[Row]
    by_speaker: bool

    def speakers(self, side: str) -> set[str]:
        return {r.speaker for r in getattr(self, side) if r.speaker}


def _groups(rows: list[Row], by_speaker: bool) -> list[list[int]]:
    """Row indexes grouped by speaker (rows without one alone), in first-appearance order."""
    groups: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        key = f"speaker:{row.speaker}" if by_speaker and row.speaker else f"row:{index}"
        groups.setdefault(key, []).append(index)
    return list(groups.values())


def split_rows(rows: list[Row], eval_fraction: float, seed: int = 0) -> Split:
    """Split ``rows`` at random (deterministic for ``seed``), by speaker when rows have one.

    Raises :class:`AsrtuneError` when ``eval_fraction`` is not in (0, 1) or there are fewer
    than two rows (two speakers, when split by speaker).
    """
    if not 0 < eval_fraction < 1:
        raise AsrtuneError(f"--eval-fraction must be between 0 and 1, got {eval_fraction}")
    by_speaker = any(r.speaker for r in rows)
    groups = _groups(rows, by_speaker)
    if len(groups) < 2:
        what = "speakers" if by_speaker else "rows"
        raise AsrtuneError(f"cannot split {len(groups)} {what}: at least 2 are needed")
    random.Random(seed).shuffle(groups)
    target = eval_fraction * len(rows)
    chosen: list[list[int]] = []
    taken = 0
    for group in groups:
        if abs(taken + len(group) - target) < abs(taken - target):
            chosen.append(group)
            taken += len(group)
    if not chosen:  # the fraction rounds to nothing: the smallest group still goes to eval
        chosen.append(min(groups, key=len))
    in_eval = {index for group in chosen for index in group}
    return Split(
        train=[r for i, r in enumerate(rows) if i not in in_eval],
        eval=[r for i, r in enumerate(rows) if i in in_eval],
        by_speaker=by_speaker,
    )


@dataclass(frozen=True)
class SplitResult:
    train_path: Path
    eval_path: Path
    split: Split
    bad_rows: list[BadRow]  # manifest lines that were not rows, so are in neither file


def split_manifest(
    source: str | Path, out_dir: str | Path, eval_fraction: float = 0.1, seed: int = 0
) -> SplitResult:
    """Write ``out_dir/train.jsonl`` and ``out_dir/eval.jsonl`` (absolute audio paths)."""
    manifest = read_manifest(source)
    split = split_rows(manifest.rows, eval_fraction, seed)
    out_dir = Path(out_dir)
    return SplitResult(
        train_path=write_manifest(out_dir / "train.jsonl", split.train),
        eval_path=write_manifest(out_dir / "eval.jsonl", split.eval),
        split=split,
        bad_rows=manifest.bad_rows,
    )
