"""Manifest rows: JSONL or CSV/TSV files of ``{audio_path, text, language?, duration?}``.

Relative audio paths resolve against the manifest's folder. Rows that cannot be used
are never dropped silently: :func:`read_manifest` returns them as :class:`BadRow` with a
reason, and the caller decides whether to stop or to report and go on.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

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


def with_language(row: Row, language: str | None) -> Row:
    """``row``, with ``language`` filled in when the row names none."""
    return row if row.language or not language else replace(row, language=language)


@dataclass(frozen=True)
class BadRow:
    """A manifest line that could not become a :class:`Row`; ``line`` is 1-based."""

    line: int
    audio_path: str | None
    reason: str

    def as_dict(self) -> dict:
        return {"line": self.line, "audio_path": self.audio_path, "reason": self.reason}


@dataclass(frozen=True)
class Manifest:
    """The rows of one manifest file and the lines that were rejected."""

    path: Path
    rows: list[Row]
    bad_rows: list[BadRow]


def _first(record: dict, keys: tuple[str, ...]) -> object | None:
    for key in keys:
        if record.get(key) not in (None, ""):
            return record[key]
    return None


def _audio_field(value: object) -> str | None:
    """Accepts a path string or a Hub-style ``{"path": ...}`` dict."""
    if isinstance(value, dict):
        value = value.get("path")
    return str(value) if value not in (None, "") else None


def _record_to_row(record: dict, line: int, base_dir: Path) -> Row | BadRow:
    audio = _audio_field(_first(record, AUDIO_KEYS))
    if audio is None:
        return BadRow(line, None, f"no audio column (expected one of {', '.join(AUDIO_KEYS)})")
    audio_path = Path(audio).expanduser()
    if not audio_path.is_absolute():
        audio_path = base_dir / audio_path
    text = _first(record, TEXT_KEYS)
    if text is None or not str(text).strip():
        return BadRow(line, str(audio_path), "empty or missing text")
    language = _first(record, LANGUAGE_KEYS)
    speaker = _first(record, SPEAKER_KEYS)
    duration = record.get("duration")
    return Row(
        id=str(record.get("id") or f"{line}"),
        audio_path=str(audio_path),
        text=str(text).strip(),
        language=str(language) if language else None,
        duration=float(duration) if duration not in (None, "") else None,
        line=line,
        speaker=str(speaker) if speaker is not None else None,
    )


def _jsonl_records(path: Path) -> list[tuple[int, dict | str]]:
    """(line number, record or error text) for each non-blank line."""
    records: list[tuple[int, dict | str]] = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                records.append((number, "line is not valid UTF-8"))
                continue
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                records.append((number, f"malformed JSON: {exc.msg}"))
                continue
            if not isinstance(record, dict):
                records.append((number, "JSON line is not an object"))
                continue
            records.append((number, record))
    return records


def _csv_records(path: Path) -> list[tuple[int, dict | str]]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, delimiter=delimiter)
            # the header is line 1, so the first data row is line 2
            return [(number, dict(record)) for number, record in enumerate(reader, start=2)]
    except UnicodeDecodeError as exc:
        raise AsrtuneError(f"{path} is not UTF-8 text: {exc}") from exc


def read_manifest(path: str | Path) -> Manifest:
    """Read a .jsonl/.json/.csv/.tsv manifest; audio paths become absolute."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise AsrtuneError(f"manifest not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        records = _jsonl_records(path)
    elif suffix in (".csv", ".tsv"):
        records = _csv_records(path)
    else:
        raise AsrtuneError(
            f"unknown manifest format {suffix!r} for {path} (use .jsonl, .csv or .tsv)"
        )
    base_dir = path.resolve().parent
    rows: list[Row] = []
    bad: list[BadRow] = []
    for number, record in records:
        item = (
            BadRow(number, None, record)
            if isinstance(record, str)
            else (_record_to_row(record, number, base_dir))
        )
        (bad if isinstance(item, BadRow) else rows).append(item)
    return Manifest(path=path, rows=_unique_ids(rows), bad_rows=bad)


def _unique_ids(rows: list[Row]) -> list[Row]:
    """Suffix repeated ids with their position so reports can name every row."""
    seen: dict[str, int] = {}
    unique = []
    for row in rows:
        count = seen.get(row.id, 0)
        seen[row.id] = count + 1
        unique.append(row if count == 0 else replace(row, id=f"{row.id}#{count}"))
    return unique


def write_manifest(path: str | Path, rows: list[Row]) -> Path:
    """Write rows as JSONL with absolute audio paths; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            record = {k: v for k, v in asdict(row).items() if v is not None and k != "line"}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path
