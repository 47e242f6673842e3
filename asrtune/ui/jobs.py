"""Training runs from the UI: prepare a run folder, start its worker process, stop it, and
read its state back.

Why a process, not a thread: a Trainer cannot be interrupted from outside its thread except
through a callback that runs between steps, and a step (or a model download, or a long
evaluation) can take minutes. A process can always be stopped (SIGTERM, at any phase), its
CPU work never competes with the UI's Python threads for the GIL, a crash (out of memory)
takes down the worker and not the page, and it keeps going if the UI server restarts: the
next ``asrtune ui`` shows it from its files.

A run folder ``PROJECT/runs/<id>/`` holds::

    run.json        what to run: the options of asrtune.api.train, baseline yes/no, a
                    description of the data (written once, before the worker starts)
    data/           train.jsonl / eval.jsonl: the split this run used (recordings)
    status.json     written by the worker (state, phase, step, ETA, heartbeat)
    metrics.jsonl   loss / learning rate / eval WER per Trainer log, and the baseline
    log.txt         the worker's stdout + stderr
    model/          OUT of asrtune train (model, eval_results.json, baseline_results.json)
    stop            present once a stop was requested

No token is ever part of a run: options naming a token are refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from asrtune.errors import AsrtuneError
from asrtune.ui.models import hub_model_unreachable
from asrtune.ui.project import Project, read_json, write_json_atomic
from asrtune.ui.worker import (
    LOG_FILE,
    METRICS_FILE,
    OUTPUT_DIR,
    RUN_FILE,
    STATUS_FILE,
    STOP_FILE,
)

ACTIVE_STATES = ("starting", "running")
#: trackio's folder inside the project (``trackio show`` reads it with TRACKIO_DIR set).
TRACKING_DIR = "trackio"
#: Terminal colour and cursor codes, which the page would show as text.
_ANSI_CODES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
FINAL_STATES = ("done", "failed", "stopped")
#: A worker whose heartbeat is older than this (and that is not our child) is gone.
STALE_SECONDS = 60.0
#: Options the form sets itself; the "more options" box may not override them.
RESERVED_OPTIONS = ("model", "train_manifest", "eval_manifest", "output_dir", "config", "resume")

_PROCESSES: dict[str, subprocess.Popen] = {}
_PROCESS_LOCK = threading.Lock()


# ----- options --------------------------------------------------------------------------


def parse_extra_options(text: str) -> dict[str, Any]:
    """The "more options" box: a YAML mapping of any ``asrtune train`` option
    (``warmup_steps: 0.2``); ``-`` and ``_`` both work in names. Token options are refused
    (a token typed here would be written into the run's files)."""
    if not (text or "").strip():
        return {}
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AsrtuneError(f"more options: not YAML: {exc}") from exc
    if not isinstance(values, dict):
        raise AsrtuneError("more options: expected lines of 'option: value'")
    values = {str(k).replace("-", "_"): v for k, v in values.items()}
    secret = sorted(k for k in values if "token" in k)
    if secret:
        raise AsrtuneError(f"more options: {', '.join(secret)} cannot be set from the UI")
    reserved = sorted(set(values) & set(RESERVED_OPTIONS))
    if reserved:
        raise AsrtuneError(f"more options: {', '.join(reserved)} is set by the form")
    return values


def train_options(
    form: dict[str, Any], train_manifest: str, eval_manifest: str | None, output_dir: Path
) -> dict[str, Any]:
    """Keyword options of ``asrtune.api.train`` from the Train tab's values."""
    options: dict[str, Any] = {
        "model": form["model"],
        "train_manifest": train_manifest,
        "output_dir": str(output_dir),
        "lora": bool(form.get("lora")),
        "freeze_encoder": bool(form.get("freeze_encoder")),
        "num_train_epochs": float(form["num_train_epochs"]),
        "per_device_train_batch_size": int(form["per_device_train_batch_size"]),
        "logging_steps": int(form["logging_steps"]),
        "report_to": form.get("report_to") or "none",
        # the UI shows its own progress bar; the printed logs go to log.txt
        "disable_tqdm": True,
    }
    if form.get("learning_rate"):  # empty: the method's own default
        options["learning_rate"] = float(form["learning_rate"])
    if form.get("language"):
        options["language"] = form["language"]
    if eval_manifest:
        options["eval_manifest"] = eval_manifest
    if form.get("lora"):
        options["lora_r"] = int(form["lora_r"])
        options["lora_alpha"] = int(form["lora_alpha"])
    if int(form.get("max_steps") or -1) > 0:
        options["max_steps"] = int(form["max_steps"])
    if form.get("granary_audio_root"):
        options["granary_audio_root"] = form["granary_audio_root"]
    guards = [line.strip() for line in str(form.get("guard") or "").splitlines() if line.strip()]
    if guards:
        options["guard"] = guards
    if form.get("max_guard_regression") is not None:
        options["max_guard_regression"] = float(form["max_guard_regression"])
    options.update(parse_extra_options(form.get("extra", "")))
    return options


# ----- preparing and starting a run -----------------------------------------------------


def split_recordings(
    project: Project, data_dir: Path, eval_fraction: float, seed: int = 0
) -> tuple[Path, Path | None, str]:
    """The project's recordings → data_dir/train.jsonl (+ eval.jsonl); and a description."""
    from asrtune.data.manifest import read_manifest, write_manifest
    from asrtune.data.split import split_rows

    if not project.manifest_path.is_file() or not project.rows():
        raise AsrtuneError(
            "no recordings yet: record or upload clips in the Data tab, or choose another "
            "training source there"
        )
    rows = read_manifest(project.manifest_path).rows
    where = f"{len(rows)} recordings from {project.manifest_path}"
    if eval_fraction <= 0 or len(rows) < 2:
        note = "" if eval_fraction <= 0 else " (too few rows to hold some out for eval)"
        return write_manifest(data_dir / "train.jsonl", rows), None, f"{where}, no eval{note}"
    split = split_rows(rows, eval_fraction, seed)
    train = write_manifest(data_dir / "train.jsonl", split.train)
    held = write_manifest(data_dir / "eval.jsonl", split.eval)
    return train, held, f"{where}: {len(split.train)} train / {len(split.eval)} eval"


def source_data(
    settings: dict[str, Any], data_dir: Path, eval_fraction: float
) -> tuple[str, str | None, str]:
    """A named training source (manifest path, hf:..., granary:...) and its eval source; a
    local manifest without an eval source is split like the recordings."""
    from asrtune.data.sources import parse_source
    from asrtune.data.split import split_manifest

    train = (settings.get("train_source") or "").strip()
    evaluation = (settings.get("eval_source") or "").strip() or None
    if not train:
        raise AsrtuneError("no training source: type one in the Data tab")
    if evaluation is None and eval_fraction > 0 and parse_source(train).kind == "manifest":
        result = split_manifest(train, data_dir, eval_fraction)
        counts = f"{len(result.split.train)} train / {len(result.split.eval)} eval"
        return str(result.train_path), str(result.eval_path), f"{train}: {counts}"
    note = f", eval on {evaluation}" if evaluation else ", no eval source (no WER measured)"
    return train, evaluation, f"{train}{note}"


def prepare_run(project: Project, form: dict[str, Any]) -> Path:
    """Check everything a run needs and write its folder (run.json, data split); the worker
    is not started yet. Raises :class:`AsrtuneError` with a message for the page."""
    from asrtune.config import train_job_from_kwargs
    from asrtune.ui.validation import form_problems

    if not form.get("model"):
        raise AsrtuneError("choose a model (a size, or a local folder)")
    busy = active_run(project)
    if busy:
        raise AsrtuneError(
            f"run {busy} (perhaps started in another browser tab) is still training: "
            "stop it or wait for it to finish"
        )
    settings = project.settings()
    recordings = settings["data_source"] == "recordings"
    row_languages = {r["language"]: r["id"] for r in project.rows() if r.get("language")}
    problems = form_problems(form, settings, row_languages if recordings else None)
    if problems:
        raise AsrtuneError("; ".join(problems))
    fraction = float(form.get("eval_fraction") or 0)
    run_dir = project.new_run_dir()
    try:
        if settings["data_source"] == "recordings":
            train, held, description = split_recordings(project, run_dir / "data", fraction)
        else:
            form = {**form, "granary_audio_root": settings.get("granary_audio_root")}
            train, held, description = source_data(settings, run_dir / "data", fraction)
        options = train_options(form, str(train), str(held) if held else None, run_dir / OUTPUT_DIR)
        train_job_from_kwargs(**options)  # the same checks as the CLI, before any process
        unreachable = hub_model_unreachable(options["model"])
        if unreachable:
            raise AsrtuneError(unreachable)
    except BaseException:
        _remove_empty_run(run_dir)
        raise
    write_json_atomic(
        run_dir / RUN_FILE,
        {
            "options": options,
            "baseline": bool(form.get("baseline")) and bool(options.get("eval_manifest")),
            "description": description,
            "created": time.time(),
        },
    )
    return run_dir


def _remove_empty_run(run_dir: Path) -> None:
    import shutil

    shutil.rmtree(run_dir, ignore_errors=True)


def worker_env(tracking_dir: Path | None = None) -> dict[str, str]:
    """The worker's environment: ours, with the package importable, unbuffered output, and
    trackio's database in ``tracking_dir`` (the project folder holds everything)."""
    env = dict(os.environ)
    if tracking_dir is not None:
        env["TRACKIO_DIR"] = str(tracking_dir)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def start_run(run_dir: Path) -> subprocess.Popen:
    """Start the worker of a prepared run in its own session (a Ctrl-C of the UI server
    does not reach it); stdout and stderr go to log.txt."""
    now = time.time()
    write_json_atomic(
        run_dir / STATUS_FILE,
        {
            "state": "starting",
            "phase": "starting",
            "message": "starting the worker",
            "created": now,
            "updated": now,
        },
    )
    try:
        with open(run_dir / LOG_FILE, "ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "asrtune.ui.worker", str(run_dir)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=str(run_dir),
                env=worker_env(run_dir.parent.parent / TRACKING_DIR),
                start_new_session=True,
            )
    except OSError as exc:
        _mark_dead(run_dir, None)
        raise AsrtuneError(f"cannot start the training worker: {exc}") from exc
    with _PROCESS_LOCK:
        _PROCESSES[str(run_dir)] = process
    threading.Thread(target=_reap, args=(run_dir, process), daemon=True).start()
    return process


def _reap(run_dir: Path, process: subprocess.Popen) -> None:
    """Wait for the worker; if it died without a final state, say so in status.json."""
    code = process.wait()
    _mark_dead(run_dir, code)


def _mark_dead(run_dir: Path, code: int | None) -> None:
    status = read_json(run_dir / STATUS_FILE, {}) or {}
    if status.get("state") in ACTIVE_STATES:
        detail = f" (exit code {code})" if code is not None else ""
        write_json_atomic(
            run_dir / STATUS_FILE,
            {
                **status,
                "state": "failed",
                "phase": "finished",
                "message": "failed",
                "error": f"the training worker ended unexpectedly{detail}: see the log",
                "finished": time.time(),
            },
        )


# ----- reading a run --------------------------------------------------------------------


def _alive(run_dir: Path, status: dict[str, Any]) -> bool:
    with _PROCESS_LOCK:
        process = _PROCESSES.get(str(run_dir))
    if process is not None:
        return process.poll() is None
    pid = status.get("pid")
    if not pid:  # "starting", before the pid was written
        return time.time() - float(status.get("updated") or 0) < STALE_SECONDS
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    return time.time() - float(status.get("updated") or 0) < STALE_SECONDS


def read_status(run_dir: Path) -> dict[str, Any]:
    """status.json, with a worker that vanished (killed, machine restarted) marked failed."""
    status = read_json(run_dir / STATUS_FILE, {}) or {}
    if status.get("state") in ACTIVE_STATES and not _alive(run_dir, status):
        _mark_dead(run_dir, None)
        status = read_json(run_dir / STATUS_FILE, {}) or {}
    return status


def read_spec(run_dir: Path) -> dict[str, Any]:
    return read_json(run_dir / RUN_FILE, {}) or {}


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:  # a line being written right now
            continue
    return records


def read_log(run_dir: Path, max_lines: int = 200, max_bytes: int = 256_000) -> str:
    """The end of log.txt, with progress-bar redraws (``\\r``) reduced to their last state."""
    path = run_dir / LOG_FILE
    if not path.is_file():
        return ""
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - max_bytes))
        data = _ANSI_CODES.sub("", handle.read().decode("utf-8", errors="replace"))
    lines = []
    for raw in data.split("\n"):
        parts = [p for p in raw.split("\r") if p.strip()]
        if parts:
            lines.append(parts[-1].rstrip())
    return "\n".join(lines[-max_lines:])


def active_run(project: Project) -> str | None:
    """The run that is starting or training, if any (one at a time per project)."""
    for run_id in project.runs():
        run_dir = project.run_dir(run_id)
        if run_dir is not None and read_status(run_dir).get("state") in ACTIVE_STATES:
            return run_id
    return None


def request_stop(run_dir: Path) -> str:
    """Ask the worker to stop: during training, after the current step (the model is kept);
    in another phase, or on a second request, at once (SIGTERM)."""
    status = read_status(run_dir)
    if status.get("state") not in ACTIVE_STATES:
        return "the run is not running"
    stop_file = run_dir / STOP_FILE
    again = stop_file.exists()
    stop_file.touch()
    if status.get("phase") == "training" and not again:
        return "stopping after the current step; the model trained so far is saved"
    _terminate(run_dir, status)
    return "stopping now"


def _terminate(run_dir: Path, status: dict[str, Any]) -> None:
    with _PROCESS_LOCK:
        process = _PROCESSES.get(str(run_dir))
    if process is not None:
        if process.poll() is None:
            process.terminate()
        return
    if status.get("pid"):
        with contextlib.suppress(OSError):
            os.kill(int(status["pid"]), signal.SIGTERM)


def wait_for(run_dir: Path, timeout: float = 600.0) -> dict[str, Any]:
    """Block until the run is in a final state (tests, scripts); returns its status."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = read_status(run_dir)
        if status.get("state") in FINAL_STATES:
            return status
        time.sleep(0.2)
    raise TimeoutError(f"run {run_dir.name} still {read_status(run_dir).get('state')}")
