"""A UI project: one folder on disk holding everything, so a page reload (or a restart of
``asrtune ui``) shows the same state.

Layout::

    PROJECT/
      project.json            the UI's settings (language, phrases, data source, last form)
      data/manifest.jsonl     the recordings: {id, audio_path (relative), text, language,
                              duration}; a standard asrtune manifest
      data/audio/*.wav        16-kHz mono WAV, named <id>-<sanitized original name>.wav
      models/                 tiny random models made from the UI
      runs/<run id>/          one training run (see :mod:`asrtune.ui.jobs`)

Recordings are written as they are added, edited or deleted: there is no separate "save".
Every change goes through one lock, so two browser tabs cannot interleave their writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from asrtune.data.audio import SAMPLE_RATE, load_audio, write_audio
from asrtune.data.sources import AUDIO_EXTENSIONS
from asrtune.errors import AsrtuneError

PROJECT_FILE = "project.json"
MANIFEST = Path("data") / "manifest.jsonl"
AUDIO_DIR = Path("data") / "audio"
TRASH_DIR = Path("data") / "trash"  # the last deleted row and its audio (undo)
TRASH_FILE = "deleted.json"
RUNS_DIR = "runs"
MODELS_DIR = "models"
#: Characters kept in saved file names; everything else becomes "_".
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_RUN_ID = re.compile(r"^[0-9]{8}-[0-9]{6}(-[0-9]+)?$")
MAX_NAME_CHARS = 60

DEFAULT_SETTINGS: dict[str, Any] = {
    "language": "en",
    "phrase_source": "bundled",  # or "custom"
    "custom_phrases": "",
    "phrase_index": 0,
    "data_source": "recordings",  # or "source"
    "train_source": "",
    "eval_source": "",
    "granary_audio_root": "",
    "train_form": {},  # the Train tab's last values
    "model_repo": "",  # the Publish tab's repositories (never the token)
    "dataset_repo": "",
    "space_repo": "",
    "publish_dry_run": False,  # the Publish tab's Dry run box
    "eval_terms": "",  # the Evaluate tab's terms, one per line
}


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it over ``path``, so a
    reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, ensure_ascii=False, default=str)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON in ``path``, or ``default`` when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def sanitize_filename(name: str, default: str = "clip") -> str:
    """A safe file name from an uploaded one: the last path component only (``/`` and ``\\``
    both split), accents folded to ASCII, other characters replaced by ``_``, no leading dot,
    at most :data:`MAX_NAME_CHARS` characters. ``'../../etc/passwd'`` → ``'passwd'``."""
    base = re.split(r"[\\/]", name or "")[-1]
    folded = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    stem, dot, suffix = folded.rpartition(".")
    if not dot:
        stem, suffix = folded, ""
    stem = _UNSAFE.sub("_", stem).strip("._-")
    suffix = _UNSAFE.sub("", suffix)[:8].lower()
    stem = stem[: MAX_NAME_CHARS - len(suffix) - 1] or default
    return f"{stem}.{suffix}" if suffix else stem


class Project:
    """The project folder; every method is safe to call from several threads."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        (self.root / AUDIO_DIR).mkdir(parents=True, exist_ok=True)
        (self.root / RUNS_DIR).mkdir(exist_ok=True)
        self._lock = threading.RLock()

    # ----- settings ---------------------------------------------------------------------

    @property
    def settings_path(self) -> Path:
        return self.root / PROJECT_FILE

    def settings(self) -> dict[str, Any]:
        stored = read_json(self.settings_path, {}) or {}
        return {**DEFAULT_SETTINGS, **{k: v for k, v in stored.items() if k in DEFAULT_SETTINGS}}

    def update_settings(self, **changes: Any) -> dict[str, Any]:
        unknown = set(changes) - set(DEFAULT_SETTINGS)
        if unknown:
            raise ValueError(f"unknown project setting(s): {', '.join(sorted(unknown))}")
        with self._lock:
            settings = {**self.settings(), **changes}
            write_json_atomic(self.settings_path, settings)
            return settings

    # ----- recordings -------------------------------------------------------------------

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def rows(self) -> list[dict[str, Any]]:
        """The recordings, in the order they were added (relative ``audio_path``)."""
        path = self.manifest_path
        if not path.is_file():
            return []
        rows = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
        return rows

    def audio_file(self, row: dict[str, Any]) -> Path:
        return self.manifest_path.parent / row["audio_path"]

    def _write_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        path = self.manifest_path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".manifest.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, path)

    def _next_id(self, rows: list[dict[str, Any]]) -> str:
        """One more than the highest id, the deleted row's included (undo brings it back)."""
        deleted = self.deleted_row()
        rows = [*rows, deleted] if deleted else rows
        numbers = [int(m.group(1)) for r in rows if (m := re.fullmatch(r"rec(\d+)", r["id"]))]
        return f"rec{max(numbers, default=0) + 1:04d}"

    def add_clip(
        self, source: str | Path, text: str, language: str | None, name: str | None = None
    ) -> dict[str, Any]:
        """Decode ``source`` (any format soundfile reads), save it as a 16-kHz mono WAV named
        after ``name`` (sanitized; default: the source's name) and add a row. Raises
        :class:`AsrtuneError` for unreadable audio or empty text."""
        text = " ".join((text or "").split())
        if not text:
            raise AsrtuneError("the transcript is empty: type what is said in the clip")
        shown = Path(name or source).name  # never the upload's temporary path
        try:
            samples = load_audio(source)
        except AsrtuneError as exc:
            raise AsrtuneError(str(exc).replace(str(source), shown)) from exc
        if samples.size == 0:
            raise AsrtuneError(f"{shown}: the audio is empty")
        stem = Path(sanitize_filename(shown)).stem
        with self._lock:
            rows = self.rows()
            row_id = self._next_id(rows)
            relative = (AUDIO_DIR / f"{row_id}-{stem}.wav").relative_to(MANIFEST.parent)
            saved = self.manifest_path.parent / relative
            write_audio(saved, samples, SAMPLE_RATE)
            digest, duration = self._digest(saved), round(samples.size / SAMPLE_RATE, 3)
            same = next(
                (
                    r
                    for r in rows
                    if r.get("duration") == duration and self._row_digest(r) == digest
                ),
                None,
            )
            if same is not None:
                saved.unlink()
                raise AsrtuneError(f"{shown}: already in the dataset as {same['id']} (same audio)")
            row = {
                "id": row_id,
                "audio_path": relative.as_posix(),
                "text": text,
                "duration": duration,
                "digest": digest,
            }
            if language:
                row["language"] = language
            rows.append(row)
            self._write_rows(rows)
            return row

    @staticmethod
    def _digest(wav: Path) -> str:
        """Content hash of a saved clip (its 16-kHz samples, whatever the upload was)."""
        return hashlib.sha1(load_audio(wav).tobytes()).hexdigest()[:16]

    def _row_digest(self, row: dict[str, Any]) -> str | None:
        """A row's content hash: stored since it was added, else computed from its file."""
        if row.get("digest"):
            return row["digest"]
        try:
            return self._digest(self.audio_file(row))
        except AsrtuneError:
            return None

    def add_files(
        self, paths: list[str], transcripts: str, language: str | None
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Add uploaded audio files with their transcripts → (rows added, problems).

        A file's transcript is, in this order: a ``name<TAB>text`` line of ``transcripts``
        naming it (by file name or stem), a ``.txt`` file of the same stem uploaded with it,
        or the line of ``transcripts`` at its position among the remaining plain lines.
        """
        audio = [p for p in paths if Path(p).suffix.lower() in AUDIO_EXTENSIONS]
        sidecars = {Path(p).stem: p for p in paths if Path(p).suffix.lower() == ".txt"}
        others = [p for p in paths if p not in audio and Path(p).suffix.lower() != ".txt"]
        named, plain = parse_transcripts(transcripts)
        problems = [f"{Path(p).name}: not an audio file" for p in others]
        if not audio:
            return [], problems or ["no audio files to add"]
        added = []
        position = 0
        for path in audio:
            file_name = Path(path).name
            text = named.get(file_name) or named.get(Path(path).stem)
            if text is None and Path(path).stem in sidecars:
                text = Path(sidecars[Path(path).stem]).read_text(encoding="utf-8", errors="replace")
            if text is None and position < len(plain):
                text, position = plain[position], position + 1
            if not text or not text.strip():
                problems.append(f"{file_name}: no transcript (add a line for it)")
                continue
            try:
                added.append(self.add_clip(path, text, language, name=file_name))
            except AsrtuneError as exc:
                message = str(exc)
                problems.append(message if file_name in message else f"{file_name}: {message}")
        if position < len(plain):
            problems.append(f"{len(plain) - position} transcript line(s) matched no audio file")
        return added, problems

    def update_text(self, row_id: str, text: str) -> dict[str, Any]:
        text = " ".join((text or "").split())
        if not text:
            raise AsrtuneError("the transcript is empty")
        with self._lock:
            rows = self.rows()
            row = self._find(rows, row_id)
            row["text"] = text
            self._write_rows(rows)
            return row

    def update_language(self, row_id: str, language: str) -> dict[str, Any]:
        """Set a row's language code (empty: the row has none, training's default applies)."""
        language = (language or "").strip()
        with self._lock:
            rows = self.rows()
            row = self._find(rows, row_id)
            if language:
                row["language"] = language
            else:
                row.pop("language", None)
            self._write_rows(rows)
            return row

    def delete_row(self, row_id: str) -> dict[str, Any]:
        """Remove a row; its audio file moves to the trash, where :meth:`undo_delete` finds
        it (the last deletion only: an earlier one is gone for good)."""
        with self._lock:
            rows = self.rows()
            row = self._find(rows, row_id)
            self._empty_trash()
            trash = self.root / TRASH_DIR
            trash.mkdir(parents=True, exist_ok=True)
            audio = self.audio_file(row).resolve()
            if audio.is_relative_to(self.root / AUDIO_DIR) and audio.is_file():
                os.replace(audio, trash / audio.name)
            record = {"row": row, "index": rows.index(row)}
            write_json_atomic(trash / TRASH_FILE, record)
            self._write_rows(r for r in rows if r["id"] != row_id)
            return row

    def deleted_row(self) -> dict[str, Any] | None:
        """The row :meth:`undo_delete` would bring back, or None."""
        record = read_json(self.root / TRASH_DIR / TRASH_FILE)
        return record["row"] if record else None

    def undo_delete(self) -> dict[str, Any]:
        """Put the last deleted row back where it was, with its audio."""
        with self._lock:
            trash = self.root / TRASH_DIR
            record = read_json(trash / TRASH_FILE)
            if not record:
                raise AsrtuneError("nothing to undo")
            row = record["row"]
            rows = self.rows()
            if any(r["id"] == row["id"] for r in rows):  # a crash left it in both places
                (trash / TRASH_FILE).unlink()
                raise AsrtuneError(f"{row['id']} is in the dataset already")
            kept = trash / Path(row["audio_path"]).name
            same = next((r for r in rows if r.get("digest") == row.get("digest")), None)
            if same is not None and row.get("digest"):
                raise AsrtuneError(f"its audio is in the dataset again, as {same['id']}")
            if kept.is_file():
                os.replace(kept, self.audio_file(row))
            rows.insert(min(int(record["index"]), len(rows)), row)
            self._write_rows(rows)
            (trash / TRASH_FILE).unlink()
            return row

    def _empty_trash(self) -> None:
        trash = self.root / TRASH_DIR
        if trash.is_dir():
            for path in trash.iterdir():
                path.unlink()

    @staticmethod
    def _find(rows: list[dict[str, Any]], row_id: str) -> dict[str, Any]:
        for row in rows:
            if row["id"] == row_id:
                return row
        raise AsrtuneError(f"no row {row_id!r} in the dataset")

    # ----- runs and models --------------------------------------------------------------

    @property
    def runs_dir(self) -> Path:
        return self.root / RUNS_DIR

    @property
    def models_dir(self) -> Path:
        return self.root / MODELS_DIR

    def new_run_dir(self) -> Path:
        """A new, empty ``runs/<YYYYmmdd-HHMMSS>[-n]`` folder."""
        with self._lock:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            candidate, n = self.runs_dir / stamp, 1
            while candidate.exists():
                candidate, n = self.runs_dir / f"{stamp}-{n}", n + 1
            candidate.mkdir(parents=True)
            return candidate

    def runs(self) -> list[str]:
        """Run ids, newest first."""
        if not self.runs_dir.is_dir():
            return []
        ids = [p.name for p in self.runs_dir.iterdir() if p.is_dir() and _RUN_ID.match(p.name)]
        return sorted(ids, reverse=True)

    def run_dir(self, run_id: str | None) -> Path | None:
        """The folder of ``run_id``, or None when it is not one of this project's runs
        (ids come from the browser: nothing else is ever turned into a path)."""
        if not run_id or not _RUN_ID.match(run_id):
            return None
        path = self.runs_dir / run_id
        return path if path.is_dir() else None


def parse_transcripts(text: str) -> tuple[dict[str, str], list[str]]:
    """``name<TAB>text`` lines → {name: text}; other non-blank lines, in order."""
    named: dict[str, str] = {}
    plain: list[str] = []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        name, tab, rest = line.partition("\t")
        if tab and rest.strip():
            named[name.strip()] = rest.strip()
        else:
            plain.append(line.strip())
    return named, plain
