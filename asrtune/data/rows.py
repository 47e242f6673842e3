"""Turn manifests into usable rows: read, probe audio headers, split off what cannot be used.

Nothing is dropped silently: every row left out comes back with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from tqdm.auto import tqdm

from asrtune.data.audio import audio_duration
from asrtune.data.manifest import BadRow, Row, read_manifest
from asrtune.errors import AsrtuneError


@dataclass(frozen=True)
class LoadedRows:
    """Rows with measured durations, and the lines that could not be used."""

    source: str
    rows: list[Row]
    invalid: list[BadRow]

    def summary(self) -> str:
        return f"{self.source}: {len(self.rows)} usable rows, {len(self.invalid)} invalid"


def probe_durations(rows: list[Row], desc: str = "reading audio headers") -> LoadedRows:
    """Fill each row's duration from its audio header; unreadable files become invalid rows."""
    good: list[Row] = []
    bad: list[BadRow] = []
    for row in tqdm(rows, desc=desc, unit="file", leave=False):
        if not Path(row.audio_path).is_file():
            bad.append(BadRow(row.line or 0, row.audio_path, "audio file not found"))
            continue
        try:
            seconds = audio_duration(row.audio_path)
        except AsrtuneError as exc:
            bad.append(BadRow(row.line or 0, row.audio_path, f"unreadable audio: {exc}"))
            continue
        if seconds <= 0:
            bad.append(BadRow(row.line or 0, row.audio_path, "audio has zero samples"))
            continue
        good.append(replace(row, duration=seconds))
    return LoadedRows("", good, bad)


def load_rows(manifest: str | Path, language: str | None = None) -> LoadedRows:
    """Read a manifest, fill missing languages with ``language``, and probe every file."""
    parsed = read_manifest(manifest)
    rows = [r if r.language or not language else replace(r, language=language) for r in parsed.rows]
    probed = probe_durations(rows, desc=f"checking {Path(manifest).name}")
    invalid = sorted(parsed.bad_rows + probed.invalid, key=lambda b: b.line)
    return LoadedRows(str(manifest), probed.rows, invalid)
