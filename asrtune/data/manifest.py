"""Manifest rows: JSONL or CSV/TSV files of ``{audio_path, text, language?, duration?}``.

Relative audio paths resolve against the manifest's folder. Rows that cannot be used
are never dropped silently: :func:`read_manifest` returns them as :class:`BadRow` with a
reason, and the caller decides whether to stop or to report and go on.

:func:`record_to_row` is the one parser of records, manifest lines and Hub examples
alike; :func:`manifest_items` reads a manifest lazily, for :func:`read_manifest` and for
``--streaming`` both.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from asrtune.errors import AsrtuneError

AUDIO_KEYS = ("audio_path", "audio", "path", "file", "audio_filepath", "file_name")
TEXT_KEYS = ("text", "sentence", "transcript", "transcription")
LANGUAGE_KEYS = ("language", "lang")
SPEAKER_KEYS = ("speaker", "speaker_id", "client_id")


@dataclass(frozen=True)
class Row:
    """One utterance. ``duration`` is in seconds (None until measured); ``line`` is the
    1-based manifest line it came from. ``audio_bytes`` holds the encoded file for sources
    without files on disk (Hub datasets); ``audio_path`` then only names it. ``speaker``
    (from a ``speaker``/``speaker_id``/``client_id`` column) keeps a speaker's rows on one
    side of ``asrtune data split``."""

    id: str
    audio_path: str
    text: str
    language: str | None = None
    duration: float | None = None
    line: int | None = None
    audio_bytes: bytes | None = field(default=None, repr=False, compare=False)
    speaker: str | None = None


@dataclass(frozen=True)
class BadRow:
    """A manifest line that could not become a :class:`Row`; ``line`` is 1-based."""

    line: int
    audio_path: str | None
    reason: str

    def as_dict(self) -> dict:
        return {"line": self.line, "audio_path": self.audio_path, "reason": self.reason}


RowT = TypeVar("RowT", Row, BadRow)


def with_language(row: RowT, language: str | None) -> RowT:
    """``row``, with ``language`` filled in when it is a row that names none."""
    if not isinstance(row, Row) or row.language or not language:
        return row
    return replace(row, language=language)


@dataclass(frozen=True)
class Manifest:
    """The rows of one manifest file and the lines that were rejected."""

    path: Path
    rows: list[Row]
    bad_rows: list[BadRow]


@dataclass(frozen=True)
class Columns:
    """Where a record keeps each field: the first non-empty value among each tuple's keys.

    The defaults are a manifest's aliases; a Hub dataset's detected columns narrow them
    (see :func:`asrtune.data.sources.detect_columns`).
    """

    audio: tuple[str, ...] = AUDIO_KEYS
    text: tuple[str, ...] = TEXT_KEYS
    language: tuple[str, ...] = LANGUAGE_KEYS
    speaker: tuple[str, ...] = SPEAKER_KEYS


def _first(record: dict, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if record.get(key) not in (None, ""):
            return record[key]
    return None


def record_to_row(
    record: dict[str, Any], line: int, base_dir: Path | None, columns: Columns = Columns()
) -> Row | BadRow:
    """One record (a manifest line, a dataset example) → a row, or why it cannot be one.

    The audio is a path string or a Hub-style ``{"path": ..., "bytes": ...}`` dict. Paths
    get ``~`` expanded and, when relative, resolve against ``base_dir`` (when given); with
    ``bytes`` the path only names the audio (``LINE.wav`` when there is none). ``line``
    (1-based) stands in for the id when the record has none.
    """
    value = _first(record, columns.audio)
    data = value.get("bytes") if isinstance(value, dict) else None
    name = value.get("path") if isinstance(value, dict) else value
    if data is None and name in (None, ""):
        return BadRow(line, None, f"no audio column (expected one of {', '.join(columns.audio)})")
    if data is not None:
        audio_path = str(name or f"{line}.wav")
    else:
        path = Path(str(name)).expanduser()
        audio_path = str(base_dir / path if base_dir and not path.is_absolute() else path)
    text = _first(record, columns.text)
    if text is None and not any(key in record for key in columns.text):
        expected = ", ".join(columns.text)
        return BadRow(line, audio_path, f"no text column (expected one of {expected})")
    text = "" if text is None else text  # empty: a non-speech probe (evaluation sets only)
    language = _first(record, columns.language)
    speaker = _first(record, columns.speaker)
    duration = record.get("duration")
    try:
        seconds = float(duration) if duration not in (None, "") else None
    except (TypeError, ValueError):
        return BadRow(line, audio_path, f"duration is not a number of seconds: {duration!r}")
    return Row(
        id=str(record.get("id") or f"{line}"),
        audio_path=audio_path,
        text=str(text).strip(),
        language=str(language) if language else None,
        duration=seconds,
        line=line,
        audio_bytes=data,
        speaker=str(speaker) if speaker is not None else None,
    )


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict | str]]:
    """(line number, record or error text) for each non-blank line."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield number, "line is not valid UTF-8"
                continue
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                yield number, f"malformed JSON: {exc.msg}"
                continue
            yield number, (record if isinstance(record, dict) else "JSON line is not an object")


def _csv_records(path: Path) -> Iterator[tuple[int, dict | str]]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, delimiter=delimiter)
            # the header is line 1, so the first data row is line 2
            for number, record in enumerate(reader, start=2):
                yield number, dict(record)
    except UnicodeDecodeError as exc:
        raise AsrtuneError(f"{path} is not UTF-8 text: {exc}") from exc


_READERS: dict[str, Callable[[Path], Iterator[tuple[int, dict | str]]]] = {
    ".jsonl": _jsonl_records,
    ".json": _jsonl_records,
    ".ndjson": _jsonl_records,
    ".csv": _csv_records,
    ".tsv": _csv_records,
}


def manifest_items(path: str | Path) -> Iterator[Row | BadRow]:
    """The rows and rejected lines of a .jsonl/.json/.csv/.tsv manifest, lazily, in file
    order: what :func:`read_manifest` collects and ``--streaming`` streams.

    A missing file or an unknown format raises here, before any line is read. Repeated
    ids get ``#k`` suffixes (``k`` = earlier rows with that id) so reports name every row.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise AsrtuneError(f"manifest not found: {path}")
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise AsrtuneError(
            f"unknown manifest format {path.suffix.lower()!r} for {path} (use .jsonl, .csv or .tsv)"
        )
    return _items(reader(path), path.resolve().parent)


def _items(records: Iterator[tuple[int, dict | str]], base_dir: Path) -> Iterator[Row | BadRow]:
    seen: dict[str, int] = {}
    for number, record in records:
        if isinstance(record, str):
            yield BadRow(number, None, record)
            continue
        item = record_to_row(record, number, base_dir)
        if isinstance(item, Row):
            count = seen.get(item.id, 0)
            seen[item.id] = count + 1
            item = replace(item, id=f"{item.id}#{count}") if count else item
        yield item


def read_manifest(path: str | Path) -> Manifest:
    """Read a .jsonl/.json/.csv/.tsv manifest; audio paths become absolute."""
    items = list(manifest_items(path))
    return Manifest(
        path=Path(path).expanduser(),
        rows=[r for r in items if isinstance(r, Row)],
        bad_rows=[b for b in items if isinstance(b, BadRow)],
    )


def skip_record(item: Row | BadRow, reason: str) -> dict[str, Any]:
    """What OUT/skipped.jsonl says of a row left out of training, streamed or read: every
    record has these keys (``id`` is None for a line that never became a row)."""
    return {
        "id": item.id if isinstance(item, Row) else None,
        "line": item.line,
        "audio_path": item.audio_path,
        "reason": reason,
    }


def write_manifest(path: str | Path, rows: list[Row]) -> Path:
    """Write rows as JSONL with absolute audio paths; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            record = {k: v for k, v in asdict(row).items() if v is not None and k != "line"}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path
