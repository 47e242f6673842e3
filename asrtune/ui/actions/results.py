"""The Evaluate and Try it tabs' actions: base vs fine-tuned on a manifest, one clip
transcribed."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from asrtune.errors import AsrtuneError
from asrtune.terms import Term, TermList, parse_terms
from asrtune.ui import jobs, render
from asrtune.ui.actions.common import USER_ERRORS, error_text, refusal
from asrtune.ui.models import ModelCache
from asrtune.ui.phrases import parse_phrases
from asrtune.ui.project import Project, read_json
from asrtune.ui.result import Result

# ----- evaluate and try ------------------------------------------------------------------


def run_model(project: Project, run_id: str | None) -> tuple[Path, dict[str, Any]]:
    run_dir = project.run_dir(run_id)
    if run_dir is None:
        raise AsrtuneError("no run selected: train one first")
    spec = jobs.read_spec(run_dir)
    return run_dir, spec.get("options", {})


def has_model(folder: Path) -> bool:
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
    terms = render.term_table_markdown(baseline, finetuned)
    if terms:
        table += "\n\n**Your terms** (on the eval set):\n\n" + terms
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


def parse_term_box(text: str) -> TermList | None:
    """The Evaluate tab's terms (one per line, as in a term file; None when the box is
    empty); a mistake is a one-line :class:`AsrtuneError`."""
    if not (text or "").strip():
        return None
    return parse_terms(text.splitlines(), "your terms")


def _counts_terms(report_path: Path, terms: TermList | None) -> bool:
    """Whether the report at ``report_path`` counted exactly ``terms`` (None: no terms)."""
    counted = (read_json(report_path) or {}).get("terms")
    if terms is None:
        return True
    listed = [t["term"] for t in (counted or {}).get("per_term", [])]
    return listed == [t.term for t in terms.terms]


def evaluate_run(
    project: Project,
    cache: ModelCache,
    run_id: str | None,
    manifest: str,
    terms_text: str = "",
) -> tuple[str, str]:
    """Evaluate the base and fine-tuned models (what is missing, for the run's eval split;
    both, for another manifest) and show the comparison. With terms (one per line, the
    project remembers them), each report also counts them: a report that counted other
    terms is made again."""
    from asrtune.api import evaluate
    from asrtune.evaluation import write_report
    from asrtune.inference import DecodingOptions

    try:
        terms = parse_term_box(terms_text)
        project.update_settings(eval_terms=terms_text or "")
        run_dir, options = run_model(project, run_id)
        if jobs.read_status(run_dir).get("state") in jobs.ACTIVE_STATES:
            raise AsrtuneError("the run is still training: evaluate when it has finished")
        out = run_dir / jobs.OUTPUT_DIR
        if not has_model(out):
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
            if custom or not report.is_file() or not _counts_terms(report, terms):
                result = evaluate(cache.get(model), manifest_path, options=decoding, terms=terms)
                write_report(result, report, {"model": model, "manifest": manifest_path})
    except USER_ERRORS as exc:
        return error_text(exc), ""
    return evaluation_view(project, run_id, target)


def _latest_report(run_dir: Path) -> Path | None:
    """The run's newest fine-tuned report that counted terms (its eval split's or another
    manifest's), or None."""
    reports = [run_dir / jobs.OUTPUT_DIR / "eval_results.json"]
    reports += list((run_dir / "evaluations").glob("*/eval_results.json"))
    counted = [r for r in reports if r.is_file() and (read_json(r) or {}).get("terms")]
    return max(counted, key=lambda r: r.stat().st_mtime, default=None)


def missed_terms(report: dict[str, Any]) -> list[str]:
    """The terms a report's model missed at least once, most missed first."""
    per_term = report.get("terms", {}).get("per_term", [])
    missed = [t for t in per_term if t["recognized"] < t["occurrences"]]
    missed.sort(key=lambda t: t["recognized"] - t["occurrences"])
    return [t["term"] for t in missed]


def record_missed_terms(project: Project, run_id: str | None, per_term: int = 2) -> Result:
    """Add phrases that hold the terms the fine-tuned model still misses to the Data tab's
    own phrases (sentences of the eval set that hold a term, else carrier sentences of the
    project's language) and show the first one there, ready to record."""
    from asrtune.terms import term_sentences

    try:
        run_dir, _ = run_model(project, run_id)
        report_path = _latest_report(run_dir)
        if report_path is None:
            raise AsrtuneError(
                "no evaluation counted terms yet: type your terms and press Evaluate"
            )
        report = read_json(report_path) or {}
        missed = missed_terms(report)
        if not missed:
            return Result.done("The fine-tuned model recognized every term it heard.")
        chosen = TermList(tuple(Term(t) for t in missed))
        lines = [u["ref"] for u in _read_utterances(report_path) if u.get("ref")]
        settings = project.settings()
        pairs = term_sentences(chosen, lines, settings["language"], per_term)
    except USER_ERRORS as exc:
        return refusal(exc)
    phrases = (
        parse_phrases(settings["custom_phrases"]) if settings["phrase_source"] == "custom" else []
    )
    known = set(phrases)
    added = [s for s in dict.fromkeys(sentence for _, sentence in pairs) if s not in known]
    project.update_settings(
        phrase_source="custom",
        custom_phrases="\n".join(phrases + added),
        phrase_index=len(phrases),
    )
    return Result.done(
        f"{len(added)} phrases for {len(missed)} missed terms ({', '.join(missed[:5])}"
        f"{', ...' if len(missed) > 5 else ''}) added to the Data tab's own phrases: record them "
        "there and train again.",
        added=added,
    )


def transcribe_clip(
    project: Project,
    cache: ModelCache,
    run_id: str | None,
    which: str,
    audio: str | None,
    hotwords: str = "",
) -> tuple[str, str]:
    """Transcribe one clip with the run's fine-tuned model (or its base model) →
    (text, a line saying which model took how long). ``hotwords``: terms to boost, one
    per line (the term file format; a family that cannot boost says so)."""

    from asrtune.api import transcribe
    from asrtune.inference import DecodingOptions

    if not audio:
        return "", "✗ Record or upload a clip first."
    try:
        run_dir, options = run_model(project, run_id)
        if which == "base":
            model, label = options["model"], "the base model"
        else:
            model, label = str(run_dir / jobs.OUTPUT_DIR), f"run {run_dir.name}'s fine-tuned model"
            if not has_model(Path(model)):
                raise AsrtuneError("this run has no fine-tuned model yet: wait for it to finish")
        started = time.perf_counter()
        decoding = DecodingOptions(language=options.get("language"))
        boosted = parse_term_box(hotwords)
        text = transcribe(cache.get(model), [audio], decoding, hotwords=boosted)[0]
    except USER_ERRORS as exc:
        return "", error_text(exc)
    seconds = time.perf_counter() - started
    empty = " (nothing recognized)" if not text.strip() else ""
    return text, f"✓ Transcribed with {label} in {seconds:.1f} s{empty}."
