"""The Data tab's actions: phrases to record, recordings and uploads, rows, the training
source and the data check."""

from __future__ import annotations

import hashlib
import html
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

from asrtune.errors import AsrtuneError
from asrtune.ui import render
from asrtune.ui.actions.common import USER_ERRORS, error_text, refusal, saved_form
from asrtune.ui.models import hub_model_unreachable
from asrtune.ui.phrases import bundled_phrases, parse_phrases
from asrtune.ui.project import Project, read_json, write_json_atomic
from asrtune.ui.result import Result
from asrtune.ui.validation import model_language_problem, source_problem

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


def save_recording(project: Project, audio: str | None, text: str) -> Result:
    if not audio:
        return Result.refused("Record the phrase (or upload a file) first.")
    language = project.settings()["language"]
    try:
        row = project.add_clip(audio, text, language, name=Path(audio).name)
    except AsrtuneError as exc:
        return refusal(exc)
    next_unrecorded(project)
    return Result.done(
        f"Saved {row['id']} ({row['duration']:.1f} s): {render.shorten(row['text'])}"
    )


def add_uploads(project: Project, files: list[str] | None, transcripts: str) -> Result:
    """Add uploaded files with their transcripts; refused (with what was added) when any
    file was not added."""
    paths = [str(f) for f in files or []]
    if not paths:
        return Result.refused("Choose audio files first.")
    added, problems = project.add_files(paths, transcripts, project.settings()["language"])
    if not problems:
        return Result.done(f"Added {len(added)} file(s).", added=len(added))
    done = f"Added {len(added)} file(s); not added: " if added else "Nothing added: "
    return Result.refused(done + " · ".join(problems), added=len(added))


def language_problem(project: Project, language: str) -> str | None:
    """Why ``language`` cannot be used with the model chosen in the Train tab (with none
    chosen yet: the default family), or None."""
    return model_language_problem(str(saved_form(project)["model"] or ""), language)


def set_language(project: Project, code: str) -> Result:
    """Make ``code`` the language of new recordings (refused when the model cannot take it)."""
    code = (code or "").strip()
    if not code:
        return Result.refused("Type or choose a language code.")
    problem = language_problem(project, code)
    if problem:
        return Result.refused(f"Language {code!r} refused: {problem}")
    project.update_settings(language=code, phrase_index=0)
    return Result.done(f"New recordings are in {code}.")


def save_row(project: Project, row_id: str | None, text: str, language: str) -> Result:
    """Save the row editor: a row's transcript and language."""
    if not row_id:
        return Result.refused("Choose a row first.")
    problem = language_problem(project, language)
    if problem:
        return Result.refused(f"{row_id}: {problem}")
    try:
        project.update_text(row_id, text)
        row = project.update_language(row_id, language)
    except AsrtuneError as exc:
        return refusal(exc)
    where = f" ({row['language']})" if row.get("language") else ""
    return Result.done(f"{row['id']}{where}: {render.shorten(row['text'])}")


def delete_row(project: Project, row_id: str | None) -> Result:
    if not row_id:
        return Result.refused("Choose a row first.")
    try:
        row = project.delete_row(row_id)
    except AsrtuneError as exc:
        return refusal(exc)
    text = render.shorten(row["text"])
    return Result.done(f"Deleted {row['id']} ({text}). Undo delete brings it back.")


def undo_delete(project: Project) -> Result:
    try:
        row = project.undo_delete()
    except AsrtuneError as exc:
        return refusal(exc)
    return Result.done(f"Restored {row['id']} ({render.shorten(row['text'])}).")


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
) -> Result:
    """Save the data choice and say what training will read (or what is wrong with it)."""
    from asrtune.data.sources import parse_source

    save_source(project, choice, train, evaluation, granary_root)
    settings = project.settings()
    if settings["data_source"] == "recordings":
        return Result.done(f"Training on this project's {len(project.rows())} recordings.")
    lines = []
    for role, text in (("training", settings["train_source"]), ("eval", settings["eval_source"])):
        if not text:
            if role == "training":
                return Result.refused("Type a training source first.")
            lines.append("eval: none typed (a local manifest is split by the eval fraction)")
            continue
        problem = source_problem(text, role, settings["granary_audio_root"])
        if problem:
            return Result.refused(problem)
        spec = parse_source(text)
        lines.append(f"{role}: `{spec.label()}` ({_SOURCE_KINDS[spec.kind]})")
    return Result.done("Source saved. " + " · ".join(lines))


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
            return error_text(exc)
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
    from asrtune.data_check import check_manifest

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
