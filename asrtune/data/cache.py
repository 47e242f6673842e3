"""A small on-disk cache of per-file audio checks, so a second run does not decode again.

Files on disk are keyed by their resolved path, size and modification time (ns), so an
edited or replaced file is checked again without reading every file to hash it; audio held
in memory (Hub datasets) by a digest of its bytes. Both keys carry a version of the check.
SQLite (stdlib) under ``$ASRTUNE_CACHE`` (default ``~/.cache/asrtune``);
``ASRTUNE_CACHE=off`` disables it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any


def cache_dir() -> Path | None:
    value = os.environ.get("ASRTUNE_CACHE", "")
    if value.lower() in ("off", "0", "none"):
        return None
    return Path(value).expanduser() if value else Path.home() / ".cache" / "asrtune"


class FileCache:
    """``key(path) → JSON value`` rows in one SQLite table; safe across threads/processes."""

    def __init__(self, path: Path, version: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.version, self.lock = version, threading.Lock()
        self.db = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value TEXT)")

    def key(self, path: str | Path) -> str | None:
        try:
            stat = os.stat(path)
        except OSError:
            return None
        return f"{self.version}|{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}"

    def content_key(self, data: bytes) -> str:
        return f"{self.version}|blake2b:{hashlib.blake2b(data, digest_size=20).hexdigest()}"

    def get(self, key: str) -> Any:
        with self.lock:
            row = self.db.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: Any) -> None:
        with self.lock, self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO entries (key, value) VALUES (?, ?)",
                (key, json.dumps(value)),
            )


def file_cache(name: str, version: str) -> FileCache | None:
    """The cache ``name`` (one SQLite file), or None when caching is off or impossible."""
    folder = cache_dir()
    return None if folder is None else _open(str(folder / f"{name}.sqlite"), version)


@lru_cache(maxsize=8)
def _open(path: str, version: str) -> FileCache | None:
    try:
        return FileCache(Path(path), version)
    except (OSError, sqlite3.Error):
        return None
