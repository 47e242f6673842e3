"""What the page's buttons do, as plain functions of the project folder and of the values the
page sends: no Gradio here, so every action is tested without a browser
(:mod:`asrtune.ui.app` only lays out the page and wires these in).

Every action calls the library (``asrtune.api``, ``asrtune.data``, ``asrtune.publish`` through
:mod:`asrtune.ui.hub`), the same functions as the CLI. Results are messages for the page,
starting with ``✓`` or ``✗``; user errors never raise.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import shlex
import time
import unicodedata
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from asrtune.config import LEARNING_RATES, TRAINING_DEFAULTS, ModelConfig
from asrtune.errors import AsrtuneError
from asrtune.models import FAMILIES, family_spec
from asrtune.publish.upload import scrub
from asrtune.ui import jobs, render
from asrtune.ui.models import ModelCache, hub_model_unreachable, resolve_model
from asrtune.ui.phrases import bundled_phrases, parse_phrases
from asrtune.ui.project import Project, read_json, write_json_atomic
from asrtune.ui.validation import model_language_problem, source_problem

_MODEL_DEFAULTS = {f.name: f.default for f in fields(ModelConfig)}
#: The Train tab's values when the project has none: asrtune's own defaults.
FORM_DEFAULTS: dict[str, Any] = {
    "model": "",
    "lora": False,
    "num_train_epochs": TRAINING_DEFAULTS["num_train_epochs"],
    "learning_rate": None,  # empty: the default for the method and model (LEARNING_RATE_HINT)
    "per_device_train_batch_size": TRAINING_DEFAULTS["per_device_train_batch_size"],
    "lora_r": _MODEL_DEFAULTS["lora_r"],
    "lora_alpha": _MODEL_DEFAULTS["lora_alpha"],
    "freeze_encoder": _MODEL_DEFAULTS["freeze_encoder"],
    "eval_fraction": 0.1,
    "logging_steps": TRAINING_DEFAULTS["logging_steps"],
    "max_steps": -1,
    "report_to": TRAINING_DEFAULTS["report_to"],
    "baseline": True,
    "guard": "",  # NAME=SOURCE lines: general speech measured against the base model
    "max_guard_regression": None,
    "extra": "",
}


#: What an empty Learning rate field trains with.
LEARNING_RATE_HINT = (
    f"Empty: {LEARNING_RATES['full']:g} for full fine-tuning; for LoRA "
    + ", ".join(f"{family.lora_learning_rate:g} ({family.label})" for family in FAMILIES.values())
)


def saved_form(project: Project) -> dict[str, Any]:
    """The Train tab's last values (asrtune's defaults for what was never set)."""
    return {**FORM_DEFAULTS, **(project.settings().get("train_form") or {})}


#: Failures shown on the page as a message: asrtune's own, and what loading a model or a
#: file can raise (a Hub id that cannot be downloaded, a missing optional package).
USER_ERRORS = (AsrtuneError, OSError, ValueError, ImportError)


def _error(exc: Exception) -> str:
    if isinstance(exc, AsrtuneError):
        return f"✗ {exc}"
    lines = str(exc).strip().splitlines()
    return f"✗ {type(exc).__name__}: {lines[0] if lines else ''}"


# ----- data: phrases ----------------------------------------------------------------------


def current_phrases(settings: dict[str, Any]) -> list[str]:
    if settings["phrase_source"] == "custom":
        return parse_phrases(settings["custom_phrases"])
    return bundled_phrases(settings["language"])


def _phrase_key(text: str) -> str:
    """A phrase as recordings are matched to it: spacing, case and Unicode form aside."""
    return unicodedata.normalize("NFC", " ".join(text.split())).casefold()


def _recorded_texts(project: Project) -> set[str]:
    return {_phrase_key(r["text"]) for r in project.rows()}


def phrase_view(project: Project) -> tuple[str, str]:
    """(HTML of the current phrase with its position, the phrase as a transcript)."""
    settings = project.settings()
    phrases = current_phrases(settings)
    if not phrases:
        hint = (
            "Paste your phrases above, one per line, then press Use these phrases."
            if settings["phrase_source"] == "custom"
            else f"No bundled phrases for {html.escape(settings['language'])}: "
            "choose My own phrases."
        )
        return f'<div class="phrase-meta">{hint}</div>', ""
    index = min(max(int(settings["phrase_index"]), 0), len(phrases) - 1)
    phrase = phrases[index]
    recorded = _recorded_texts(project)
    done = sum(1 for p in phrases if _phrase_key(p) in recorded)
    mark = " · ✓ recorded" if _phrase_key(phrase) in recorded else ""
    meta = f"Phrase {index + 1} of {len(phrases)} · {done} recorded{mark}"
    return (
        f'<div class="phrase-meta">{meta}</div>'
        f'<div class="phrase-text">{html.escape(phrase)}</div>',
        phrase,
    )


def move_phrase(project: Project, step: int) -> tuple[str, str]:
    settings = project.settings()
    count = len(current_phrases(settings))
    if count:
        project.update_settings(phrase_index=(int(settings["phrase_index"]) + step) % count)
    return phrase_view(project)


def next_unrecorded(project: Project) -> None:
    """Move to the first phrase after the current one that has no recording yet."""
    settings = project.settings()
    phrases = current_phrases(settings)
    if not phrases:
        return
    recorded = _recorded_texts(project)
    start = int(settings["phrase_index"])
    for offset in range(1, len(phrases) + 1):
        index = (start + offset) % len(phrases)
        if _phrase_key(phrases[index]) not in recorded:
            project.update_settings(phrase_index=index)
            return
    project.update_settings(phrase_index=(start + 1) % len(phrases))


# ----- data: rows -------------------------------------------------------------------------


def rows_table(project: Project) -> tuple[Any, list[str]]:
    rows = project.rows()
    return render.rows_frame(rows), [r["id"] for r in rows]


def data_summary(project: Project) -> str:
    settings = project.settings()
    if settings["data_source"] == "recordings":
        rows = project.rows()
        seconds = sum(float(r.get("duration") or 0) for r in rows)
        return (
            f"**Training data:** the {len(rows)} recordings of this project "
            f"({seconds:.0f} s of audio, `{project.manifest_path}`), split into train and "
            "eval when the run starts."
        )
    source = settings["train_source"] or "(no source typed yet)"
    evaluation = settings["eval_source"] or "a split of the source (manifests only)"
    return f"**Training data:** `{source}` · eval: `{evaluation}`"


def save_recording(project: Project, audio: str | None, text: str) -> str:
    if not audio:
        return "✗ Record the phrase (or upload a file) first."
    language = project.settings()["language"]
    try:
        row = project.add_clip(audio, text, language, name=Path(audio).name)
    except AsrtuneError as exc:
        return _error(exc)
    next_unrecorded(project)
    return f"✓ Saved {row['id']} ({row['duration']:.1f} s): {render.shorten(row['text'])}"


def add_uploads(project: Project, files: list[str] | None, transcripts: str) -> str:
    paths = [str(f) for f in files or []]
    if not paths:
        return "✗ Choose audio files first."
    added, problems = project.add_files(paths, transcripts, project.settings()["language"])
    lines = [f"✓ Added {len(added)} file(s)."] if added else []
    lines += [f"✗ {p}" for p in problems]
    return "\n\n".join(lines)


def language_problem(project: Project, language: str) -> str | None:
    """Why ``language`` cannot be used with the model chosen in the Train tab (with none
    chosen yet: the default family), or None."""
    return model_language_problem(str(saved_form(project)["model"] or ""), language)


def set_language(project: Project, code: str) -> str | None:
    """Make ``code`` the language of new recordings → None, or why it was refused."""
    code = (code or "").strip()
    if not code:
        return None
    problem = language_problem(project, code)
    if problem:
        return f"✗ Language {code!r} refused: {problem}"
    project.update_settings(language=code, phrase_index=0)
    return None


def save_row(project: Project, row_id: str | None, text: str, language: str) -> str:
    """Save the row editor: a row's transcript and language."""
    if not row_id:
        return "✗ Choose a row first."
    problem = language_problem(project, language)
    if problem:
        return f"✗ {row_id}: {problem}"
    try:
        project.update_text(row_id, text)
        row = project.update_language(row_id, language)
    except AsrtuneError as exc:
        return _error(exc)
    where = f" ({row['language']})" if row.get("language") else ""
    return f"✓ {row['id']}{where}: {render.shorten(row['text'])}"


def delete_row(project: Project, row_id: str | None) -> str:
    if not row_id:
        return "✗ Choose a row first."
    try:
        row = project.delete_row(row_id)
    except AsrtuneError as exc:
        return _error(exc)
    return f"✓ Deleted {row['id']} ({render.shorten(row['text'])}). Undo delete brings it back."


def undo_delete(project: Project) -> str:
    try:
        row = project.undo_delete()
    except AsrtuneError as exc:
        return _error(exc)
    return f"✓ Restored {row['id']} ({render.shorten(row['text'])})."


def load_row(project: Project, row_id: str | None) -> tuple[Any, str, str]:
    """(audio for the player, transcript, language) of a row."""
    if not row_id:
        return None, "", ""
    from asrtune.data.audio import SAMPLE_RATE, load_audio

    for row in project.rows():
        if row["id"] == row_id:
            language = row.get("language") or ""
            try:
                samples = load_audio(project.audio_file(row))
            except AsrtuneError:
                return None, row["text"], language
            pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
            return (SAMPLE_RATE, pcm), row["text"], language
    return None, "", ""


def save_source(
    project: Project, choice: str, train: str, evaluation: str, granary_root: str
) -> None:
    """Remember the training data choice: the recordings, or a named source."""
    project.update_settings(
        data_source=choice or "recordings",
        train_source=(train or "").strip(),
        eval_source=(evaluation or "").strip(),
        granary_audio_root=(granary_root or "").strip(),
    )


def use_source(
    project: Project, choice: str, train: str, evaluation: str, granary_root: str
) -> str:
    """Save the data choice and say what training will read (or what is wrong with it)."""
    from asrtune.data.sources import parse_source

    save_source(project, choice, train, evaluation, granary_root)
    settings = project.settings()
    if settings["data_source"] == "recordings":
        return f"✓ Training on this project's {len(project.rows())} recordings."
    lines = []
    for role, text in (("training", settings["train_source"]), ("eval", settings["eval_source"])):
        if not text:
            if role == "training":
                return "✗ Type a training source first."
            lines.append("eval: none typed (a local manifest is split by the eval fraction)")
            continue
        problem = source_problem(text, role, settings["granary_audio_root"])
        if problem:
            return f"✗ {problem}"
        spec = parse_source(text)
        lines.append(f"{role}: `{spec.label()}` ({_SOURCE_KINDS[spec.kind]})")
    return "✓ Source saved. " + " · ".join(lines)


_SOURCE_KINDS = {
    "manifest": "a manifest",
    "folder": "an audio folder",
    "hub": "a Hub dataset",
    "granary": "NVIDIA Granary",
}


def check_data(project: Project, with_model: bool, model: str, language: str | None) -> str:
    """Run the data check (every row decoded) on the training data, and on the eval
    source when one is typed; save and show it."""
    settings = project.settings()
    if settings["data_source"] == "recordings":
        if not project.rows():
            return "✗ No recordings yet."
        sources = [str(project.manifest_path)]
    else:
        sources = [settings["train_source"].strip(), settings["eval_source"].strip()]
        if not sources[0]:
            return "✗ Type a training source first."
    if with_model and not model:
        return "✗ Choose a model in the Train tab first (or untick the model check)."
    unreachable = hub_model_unreachable(model) if with_model else None
    if unreachable:
        return f"✗ {unreachable}."
    signature = data_signature(project)  # what the check reads, before a row can change
    reports = []
    for index, source in enumerate(sources):
        if not source:
            continue
        try:
            checked_model = model if with_model else None
            reports.append(_check_source(project, source, checked_model, language, index == 1))
        except USER_ERRORS as exc:
            return _error(exc)
    data = {**reports[0], "eval": reports[1] if len(reports) > 1 else None}
    data["data_signature"] = signature
    if settings["data_source"] == "recordings":
        _name_rows_by_id(data, [row["id"] for row in project.rows()])
    write_json_atomic(check_path(project), data)
    return _check_markdown(data)


def check_path(project: Project) -> Path:
    """Where the check of the current data choice is kept: one per choice (recordings, a
    named source), so switching between them shows each one's own check."""
    return project.root / "data" / f"check-{project.settings()['data_source']}.json"


def _name_rows_by_id(report: dict[str, Any], ids: list[str]) -> None:
    """Give each reported row of the recordings' manifest (one row per line) its id."""
    for key in ("problems", "over_limits", "warnings"):
        for item in report.get(key, []):
            line = int(item.get("line") or 0)
            if 1 <= line <= len(ids):
                item["id"] = ids[line - 1]


def _check_source(
    project: Project, source: str, model: str | None, language: str | None, eval_set: bool
) -> dict[str, Any]:
    """One source's data check; in an evaluation set (``eval_set``) rows without text are
    non-speech probes."""
    from asrtune.data.sources import HubOptions
    from asrtune.data.validate import check_manifest

    root = project.settings()["granary_audio_root"] or None
    report = check_manifest(
        source,
        model=model,
        language=language or None,
        progress=False,
        options=HubOptions(granary_audio_root=root),
        nonspeech_ok=eval_set,
    )
    return {**report.as_dict(), "source": source, "model": model}


def _check_markdown(data: dict[str, Any]) -> str:
    """A saved check: one verdict for everything, the training source's report, then the
    eval source's."""
    parts = [data, *([data["eval"]] if data.get("eval") else [])]
    text = render.check_verdict(parts) + "\n\n"
    text += render.check_report_markdown(data, data.get("source", ""))
    if data.get("eval"):
        eval_report = render.check_report_markdown(data["eval"], data["eval"].get("source", ""))
        text += f"\n\n**Eval source:** {eval_report}"
    return text


def data_signature(project: Project) -> str:
    """What a data check describes: the recordings' manifest (its bytes) or the typed
    training source; a check whose signature differs is out of date."""
    settings = project.settings()
    if settings["data_source"] != "recordings":
        named = (settings["train_source"], settings["eval_source"], settings["granary_audio_root"])
        return "source:" + "|".join(text.strip() for text in named)
    path = project.manifest_path
    content = path.read_bytes() if path.is_file() else b""
    return "recordings:" + hashlib.sha1(content).hexdigest()


def last_check(project: Project) -> str:
    """The saved data check, marked out of date when the data changed since."""
    data = read_json(check_path(project))
    if not data:
        return "No data check of this training data yet."
    report = _check_markdown(data)
    if data.get("data_signature") != data_signature(project):
        return (
            "⚠ **Out of date:** the data changed since this check; press Check data again."
            f"\n\n{report}"
        )
    return report


# ----- train -----------------------------------------------------------------------------


def make_tiny(project: Project, family: str) -> tuple[str | None, str]:
    """Write a tiny random model of ``family`` (a registered name) into PROJECT/models/
    (offline, for smoke runs) → (its folder or None, a message)."""
    try:
        path = family_spec(family).build_tiny(project.models_dir / f"tiny-{family}")
    except USER_ERRORS as exc:
        return None, _error(exc)
    return str(path), f"✓ Tiny random {family} model written to `{path}`."


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


def start_training(project: Project, form: dict[str, Any]) -> tuple[str, str | None]:
    """Prepare and start a run → (message, run id or None). The form is remembered for the
    next visit once its extra options parse (so a token typed there is never saved)."""
    try:
        jobs.parse_extra_options(form.get("extra", ""))
        project.update_settings(train_form=form)
        run_dir = jobs.prepare_run(
            project, {**form, "language": project.settings()["language"] or None}
        )
        jobs.start_run(run_dir)
    except AsrtuneError as exc:
        return _error(exc), None
    return f"✓ Started run {run_dir.name}.", run_dir.name


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


def stop_training(project: Project, run_id: str | None) -> str:
    run_dir = project.run_dir(run_id)
    if run_dir is None:
        return "✗ No run selected."
    return jobs.request_stop(run_dir)


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


# ----- evaluate and try ------------------------------------------------------------------


def _run_model(project: Project, run_id: str | None) -> tuple[Path, dict[str, Any]]:
    run_dir = project.run_dir(run_id)
    if run_dir is None:
        raise AsrtuneError("no run selected: train one first")
    spec = jobs.read_spec(run_dir)
    return run_dir, spec.get("options", {})


def _has_model(folder: Path) -> bool:
    return (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file()


def _read_utterances(report_path: Path) -> list[dict[str, Any]]:

    per_utt = report_path.with_name(report_path.stem + ".utterances.jsonl")
    if not per_utt.is_file():
        return []
    return [json.loads(x) for x in per_utt.read_text(encoding="utf-8").splitlines() if x]


def evaluation_view(project: Project, run_id: str | None, folder: Path | None = None) -> tuple:
    """(comparison Markdown, worst-utterances HTML) from the reports saved in ``folder``
    (default: the run's model folder, where training and the baseline write them)."""
    run_dir = project.run_dir(run_id)
    if run_dir is None:
        return "No run selected.", ""
    options = jobs.read_spec(run_dir).get("options", {})
    base_name = f"`{options.get('model', '')}`"
    shown = folder or run_dir / jobs.OUTPUT_DIR
    baseline = read_json(shown / "baseline_results.json")
    finetuned = read_json(shown / "eval_results.json")
    table = render.comparison_markdown(baseline, finetuned, base_name)
    worst = render.worst_utterances_html(
        _read_utterances(shown / "eval_results.json"),
        _read_utterances(shown / "baseline_results.json"),
    )
    if folder is None:  # the run's own view: every saved evaluation on another manifest too
        for other in sorted((run_dir / "evaluations").glob("*/eval_results.json")):
            report = read_json(other) or {}  # a report being written reads as nothing
            table += (
                f"\n\n**On `{report.get('manifest', other.parent.name)}`:**\n\n"
                + render.comparison_markdown(
                    read_json(other.parent / "baseline_results.json"), report, base_name
                )
            )
    return table, worst


def evaluate_run(
    project: Project, cache: ModelCache, run_id: str | None, manifest: str
) -> tuple[str, str]:
    """Evaluate the base and fine-tuned models (what is missing, for the run's eval split;
    both, for another manifest) and show the comparison."""
    from asrtune.api import evaluate
    from asrtune.evaluation import write_report
    from asrtune.inference import DecodingOptions

    try:
        run_dir, options = _run_model(project, run_id)
        if jobs.read_status(run_dir).get("state") in jobs.ACTIVE_STATES:
            raise AsrtuneError("the run is still training: evaluate when it has finished")
        out = run_dir / jobs.OUTPUT_DIR
        if not _has_model(out):
            raise AsrtuneError("this run has no fine-tuned model (it failed or was stopped early)")
        custom = (manifest or "").strip()
        target = out
        if custom:
            slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(custom).stem)[:40] or "manifest"
            target = run_dir / "evaluations" / slug
        manifest_path = custom or options.get("eval_manifest")
        if not manifest_path:
            raise AsrtuneError("this run has no eval split: type a manifest to evaluate on")
        decoding = DecodingOptions(language=options.get("language"))
        for name, model in (("baseline_results", options["model"]), ("eval_results", str(out))):
            report = target / f"{name}.json"
            if custom or not report.is_file():
                result = evaluate(cache.get(model), manifest_path, options=decoding)
                write_report(result, report, {"model": model, "manifest": manifest_path})
    except USER_ERRORS as exc:
        return _error(exc), ""
    return evaluation_view(project, run_id, target)


def transcribe_clip(
    project: Project, cache: ModelCache, run_id: str | None, which: str, audio: str | None
) -> tuple[str, str]:
    """Transcribe one clip with the run's fine-tuned model (or its base model) →
    (text, a line saying which model took how long)."""

    from asrtune.api import transcribe
    from asrtune.inference import DecodingOptions

    if not audio:
        return "", "✗ Record or upload a clip first."
    try:
        run_dir, options = _run_model(project, run_id)
        if which == "base":
            model, label = options["model"], "the base model"
        else:
            model, label = str(run_dir / jobs.OUTPUT_DIR), f"run {run_dir.name}'s fine-tuned model"
            if not _has_model(Path(model)):
                raise AsrtuneError("this run has no fine-tuned model yet: wait for it to finish")
        started = time.perf_counter()
        decoding = DecodingOptions(language=options.get("language"))
        text = transcribe(cache.get(model), [audio], decoding)[0]
    except USER_ERRORS as exc:
        return "", _error(exc)
    seconds = time.perf_counter() - started
    empty = " (nothing recognized)" if not text.strip() else ""
    return text, f"✓ Transcribed with {label} in {seconds:.1f} s{empty}."


# ----- publish ---------------------------------------------------------------------------


def upload_mode_problem(out: Path, mode: str) -> str | None:
    """Why the Publish tab's Upload choice cannot publish ``out``, in the page's terms (the
    library's message names the command line's flags)."""
    from asrtune.publish.bundle import describe, is_hub_id

    info = describe(out)
    if mode == "adapter" and not info.is_adapter:
        return "this run trained all weights (no LoRA adapter): choose Upload: auto"
    if mode == "adapter" and not is_hub_id(info.base_model):
        return (
            f"the adapter's base model ({info.base_model}) is a local folder that others "
            "cannot load: choose Upload: merged (or auto, which merges it)"
        )
    return None


def card_preview(project: Project, run_id: str | None) -> str:
    """The model card of the run's last dry run (OUT/upload/README.md) as the page shows
    it: the text, then its metadata (model-index) folded away."""
    run_dir = project.run_dir(run_id)
    card = run_dir / "upload" / "README.md" if run_dir else None
    if card is None or not card.is_file():
        return "No model card yet: a dry run of Push model writes it here first."
    text = card.read_text(encoding="utf-8")
    meta, body = "", text
    if text.startswith("---\n") and "\n---\n" in text[4:]:
        meta, body = text[4:].split("\n---\n", 1)
    folded = f"\n\n<details><summary>Metadata</summary>\n\n```yaml\n{meta}\n```\n</details>"
    return f"#### The model card (README.md)\n\n{body.strip()}" + (folded if meta else "")


def publish_model(
    project: Project,
    run_id: str | None,
    token: str,
    repo: str,
    private: bool,
    mode: str,
    dataset_repo: str,
    dry_run: bool,
) -> str:
    from asrtune.ui.hub import push_model

    repo, dataset_repo = (repo or "").strip(), (dataset_repo or "").strip()
    project.update_settings(
        model_repo=repo, dataset_repo=dataset_repo, publish_dry_run=bool(dry_run)
    )
    try:
        run_dir, _ = _run_model(project, run_id)
        out = run_dir / jobs.OUTPUT_DIR
        if not _has_model(out):
            raise AsrtuneError("this run has no model to publish yet")
        if not (repo or "").strip():
            raise AsrtuneError("type the model repository (namespace/name)")
        problem = upload_mode_problem(out, mode)
        if problem:
            raise AsrtuneError(problem)
        dry = run_dir / "upload" if dry_run else None
        result = push_model(
            out,
            repo.strip(),
            token,
            private=private,
            mode=mode,
            dataset_repo=(dataset_repo or "").strip() or None,
            dry_run_output=dry,
        )
    except AsrtuneError as exc:
        return f"✗ {scrub(str(exc), token)}"
    if dry_run:
        return f"✓ Dry run: the upload folder is `{result}` (nothing was uploaded)."
    return f"✓ Model uploaded: {result}"


def publish_dataset(
    project: Project, run_id: str | None, token: str, repo: str, private: bool, dry_run: bool
) -> str:
    from asrtune.ui.hub import push_dataset

    project.update_settings(dataset_repo=(repo or "").strip(), publish_dry_run=bool(dry_run))
    try:
        run_dir, _ = _run_model(project, run_id)
        data_dir = run_dir / "data"
        if not (data_dir / "train.jsonl").is_file():
            raise AsrtuneError("this run trained on a named source, not on the recordings")
        if not (repo or "").strip():
            raise AsrtuneError("type the dataset repository (namespace/name)")
        dry = run_dir / "dataset-upload" if dry_run else None
        result = push_dataset(data_dir, repo.strip(), token, private=private, dry_run_output=dry)
    except AsrtuneError as exc:
        return f"✗ {scrub(str(exc), token)}"
    if dry_run:
        return f"✓ Dry run: the dataset folder is `{result}` (nothing was uploaded)."
    return f"✓ Dataset uploaded: {result}"


def publish_demo(
    project: Project,
    run_id: str | None,
    token: str,
    model_repo: str,
    space: str,
    private: bool,
    dry_run: bool = False,
) -> str:
    """Write the run's demo app (and upload it to ``space``, unless ``dry_run``). The
    command it prints runs as printed, here and offline: after a dry run (or with no Space),
    ``MODEL_ID`` names the run's own model folder, since ``model_repo`` may not exist yet."""
    from asrtune.ui.hub import demo_app

    model_repo, space = (model_repo or "").strip(), (space or "").strip()
    project.update_settings(model_repo=model_repo, space_repo=space, publish_dry_run=bool(dry_run))
    try:
        run_dir, options = _run_model(project, run_id)
        out = run_dir / jobs.OUTPUT_DIR
        if not _has_model(out):
            raise AsrtuneError("this run has no model yet")
        app_dir, url = demo_app(
            out,
            run_dir / "space",
            model_id=model_repo or None,
            language=options.get("language"),
            space_id=None if dry_run else space or None,
            token=token,
            private=private,
        )
    except AsrtuneError as exc:
        return f"✗ {scrub(str(exc), token)}"
    model_env = f"MODEL_ID={shlex.quote(str(out))} " if model_repo and not url else ""
    command = f"cd {shlex.quote(str(app_dir))} && {model_env}python app.py"
    message = f"✓ Demo app written to `{app_dir}` (run it: `{command}`)."
    if dry_run and space:
        return message + f"\n\n✓ Dry run: nothing was uploaded to the Space {space}."
    return message + (f"\n\n✓ Space uploaded: {url}" if url else "")
