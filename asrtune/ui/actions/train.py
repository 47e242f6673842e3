"""The Train tab's actions: tiny models, the form, starting and stopping runs, and what
the page shows of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from asrtune.errors import AsrtuneError
from asrtune.models import family_spec
from asrtune.ui import jobs, render
from asrtune.ui.actions.common import USER_ERRORS, refusal
from asrtune.ui.models import resolve_model
from asrtune.ui.project import Project
from asrtune.ui.result import Result

# ----- train -----------------------------------------------------------------------------


def make_tiny(project: Project, family: str) -> Result:
    """Write a tiny random model of ``family`` (a registered name) into PROJECT/models/
    (offline, for smoke runs); ``details["folder"]``: where."""
    try:
        path = family_spec(family).build_tiny(project.models_dir / f"tiny-{family}")
    except USER_ERRORS as exc:
        return refusal(exc)
    return Result.done(f"Tiny random {family} model written to `{path}`.", folder=str(path))


def form_values(
    family: str,
    size: str | None,
    folder: str,
    method: str,
    epochs: float | None,
    lr: float | None,
    batch: float | None,
    lora_r: float | None,
    lora_alpha: float | None,
    freeze: bool,
    eval_fraction: float | None,
    logging_steps: float | None,
    max_steps: float | None,
    report_to: str,
    baseline: bool,
    guard: str,
    max_guard_regression: float | None,
    extra: str,
) -> dict[str, Any]:
    """The Train tab's inputs as the form dict of :func:`asrtune.ui.jobs.train_options`."""
    return {
        "model": resolve_model(family, size, folder),
        "lora": method == "lora",
        "num_train_epochs": epochs,
        "learning_rate": lr,
        "per_device_train_batch_size": batch,
        "lora_r": lora_r,
        "lora_alpha": lora_alpha,
        "freeze_encoder": bool(freeze),
        "eval_fraction": eval_fraction,
        "logging_steps": logging_steps,
        "max_steps": -1 if max_steps is None else max_steps,
        "report_to": report_to,
        "baseline": bool(baseline),
        "guard": guard or "",
        "max_guard_regression": max_guard_regression,
        "extra": extra or "",
    }


def start_training(project: Project, form: dict[str, Any]) -> Result:
    """Prepare and start a run: ``details["run_id"]`` once started, ``details["busy"]`` the
    run still training when there is one (the page shows it). The form is remembered for the
    next visit once its extra options parse (so a token typed there is never saved)."""
    try:
        jobs.parse_extra_options(form.get("extra", ""))
        project.update_settings(train_form=form)
        run_dir = jobs.prepare_run(
            project, {**form, "language": project.settings()["language"] or None}
        )
        jobs.start_run(run_dir)
    except AsrtuneError as exc:
        return refusal(exc, busy=jobs.active_run(project))
    return Result.done(f"Started run {run_dir.name}.", run_id=run_dir.name)


def run_label(project: Project, run_id: str) -> str:
    """A run as the run list shows it: id · model · method · state · best eval figure."""
    run_dir = project.run_dir(run_id)
    if run_dir is None:
        return run_id
    options = jobs.read_spec(run_dir).get("options", {})
    status = jobs.read_status(run_dir)
    headline = status.get("headline") or "wer"
    scores = [m[f"eval_{headline}"] for m in jobs.read_metrics(run_dir) if f"eval_{headline}" in m]
    parts = [
        run_id,
        Path(str(options.get("model") or "?")).name,
        "LoRA" if options.get("lora") else "full",
        str(status.get("state") or "prepared"),
    ]
    if scores:
        parts.append(f"best {headline.upper()} {render.percent(min(scores))}")
    return " · ".join(parts)


def run_choices(project: Project) -> list[tuple[str, str]]:
    """(label, run id) of every run, newest first, for the run list."""
    return [(run_label(project, run_id), run_id) for run_id in project.runs()]


def stop_training(project: Project, run_id: str | None) -> Result:
    run_dir = project.run_dir(run_id)
    if run_dir is None:
        return Result.refused("No run selected.")
    state = jobs.read_status(run_dir).get("state")
    if state not in jobs.ACTIVE_STATES:
        return Result.refused(f"run {run_dir.name} is not running ({state or 'prepared'})")
    return Result.done(jobs.request_stop(run_dir))


def run_view(project: Project, run_id: str | None) -> dict[str, Any]:
    """What the Train tab shows of a run: progress, loss, evals, log, and its spec."""
    run_dir = project.run_dir(run_id)
    if run_dir is None:
        return {
            "progress": render.progress_html({}),
            "loss": render.loss_frame([]),
            "evals": render.eval_frame([]),
            "log": render.log_html(""),
            "about": "",
        }
    status = jobs.read_status(run_dir)
    metrics = jobs.read_metrics(run_dir)
    spec = jobs.read_spec(run_dir)
    options = spec.get("options", {})
    method = "LoRA" if options.get("lora") else "full fine-tuning"
    about = (
        f"Run `{run_dir.name}` · model `{options.get('model', '?')}` · {method} · "
        f"{spec.get('description', '')}"
    )
    return {
        "progress": render.progress_html(status),
        "loss": render.loss_frame(metrics),
        "evals": render.eval_frame(metrics),
        "log": render.log_html(jobs.read_log(run_dir)),
        "about": about,
    }


def run_signature(project: Project, run_id: str | None) -> str:
    """Changes whenever anything the Train tab shows of the run changes."""
    run_dir = project.run_dir(run_id)
    if run_dir is None:
        return f"none:{run_id}"
    parts = [run_id or ""]
    for name in (jobs.STATUS_FILE, jobs.METRICS_FILE, jobs.LOG_FILE):
        path = run_dir / name
        parts.append(str(path.stat().st_mtime_ns) if path.exists() else "-")
    return "|".join(parts)
