"""Training curves with trackio: local, beside the run, and quiet.

trackio keeps one SQLite database per project in ``TRACKIO_DIR``, a folder it reads once,
when it is imported (``~/.cache/huggingface/trackio`` by default). asrtune points it at
``OUT/trackio`` unless the user set ``TRACKIO_DIR``, so a run's curves live with its model.
trackio's own console lines (colour codes, and "Uploading logs to Trackio" at the end of a
purely local run, which only flushes the local database) are replaced by one line of ours.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("asrtune")

#: The folder under OUT that holds the run's trackio database, unless TRACKIO_DIR is set.
TRACKIO_FOLDER = "trackio"


def reports_to_trackio(report_to: Any) -> bool:
    """Whether transformers' ``report_to`` (a name, a list of names, "all") includes trackio."""
    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    return "trackio" in names or "all" in names


def tracking_folder(output_dir: str | Path) -> Path:
    """Where trackio will write: ``TRACKIO_DIR`` when set (by the user, or by an earlier
    run in this process: trackio reads it only once), else ``OUT/trackio``, which is then
    set for trackio to read when it is imported."""
    if "trackio" in sys.modules:  # already imported: its folder is fixed
        return Path(sys.modules["trackio"].utils.TRACKIO_DIR)
    if os.environ.get("TRACKIO_DIR"):
        return Path(os.environ["TRACKIO_DIR"])
    folder = Path(output_dir).resolve() / TRACKIO_FOLDER
    os.environ["TRACKIO_DIR"] = str(folder)
    return folder


def _quietly(method: Any) -> Any:
    """``method`` with whatever it prints to stdout discarded."""

    def quiet(*args: Any, **kwargs: Any) -> Any:
        with contextlib.redirect_stdout(io.StringIO()):
            return method(*args, **kwargs)

    return quiet


def quiet_trackio(trainer: Any, output_dir: str | Path, project: str) -> Path | None:
    """Set up trackio for ``trainer``'s run: its folder (see :func:`tracking_folder`), its
    console output replaced by one log line that says how to see the curves. Returns the
    folder, or None when the run does not report to trackio."""
    callbacks = [
        cb for cb in trainer.callback_handler.callbacks if type(cb).__name__ == "TrackioCallback"
    ]
    if not callbacks:
        return None
    folder = Path(sys.modules["trackio"].utils.TRACKIO_DIR)
    for callback in callbacks:
        callback.setup = _quietly(callback.setup)
        callback.on_train_end = _quietly(callback.on_train_end)
    if trainer.is_world_process_zero():
        log.info(
            "training curves (trackio, local): TRACKIO_DIR=%s trackio show --project %s",
            folder,
            project,
        )
    return folder
