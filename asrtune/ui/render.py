"""What the page shows, as plain functions of the state on disk: progress bar, metric
tables, data-check report, before/after table and word-level diffs. No Gradio here, so all of
it is unit-tested without a browser."""

from __future__ import annotations

import difflib
import html
import time
from typing import Any

import pandas as pd

MAX_REPORT_ITEMS = 50


def duration(seconds: float | None) -> str:
    """``75`` → ``'1:15'``, ``3725`` → ``'1:02:05'``; ``None`` → ``'–'``."""
    if seconds is None:
        return "–"
    seconds = round(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def shorten(text: str, limit: int = 80) -> str:
    """``text`` for a one-line message: at most ``limit`` characters, cut at a word."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",.;:") + " …"


def percent(rate: float | None) -> str:
    return "–" if rate is None else f"{100 * rate:.1f}%"


# ----- training ------------------------------------------------------------------------


def progress_html(status: dict[str, Any], now: float | None = None) -> str:
    """A progress bar with step, epoch, elapsed time and ETA, and the run's state."""
    if not status:
        return '<div id="run-state" data-state="none">No training run yet.</div>'
    now = now or time.time()
    state = status.get("state", "starting")
    step, total = int(status.get("step") or 0), int(status.get("max_steps") or 0)
    fraction = 1.0 if state == "done" else (step / total if total else 0.0)
    # from the worker's start, not the first training step: elapsed never jumps back
    started = status.get("started") or status.get("created") or status.get("train_started")
    end = status.get("finished") or now
    elapsed = (end - started) if started else None
    eta = status.get("eta_seconds") if state in ("starting", "running") else None
    parts = [f"step {step}/{total}" if total else ""]
    if status.get("num_train_epochs"):
        parts.append(f"epoch {float(status.get('epoch') or 0):.2f}/{status['num_train_epochs']:g}")
    parts.append(f"elapsed {duration(elapsed)}")
    if state in ("starting", "running"):
        parts.append(f"ETA {duration(eta)}")
    headline = status.get("headline") or "wer"
    if status.get(f"last_eval_{headline}") is not None:
        parts.append(f"eval {headline.upper()} {percent(status[f'last_eval_{headline}'])}")
    phase = status.get("message") or status.get("phase") or ""
    phase = "" if phase == state else f" · {phase}"
    error = status.get("error")
    detail = f'<div class="run-error">{html.escape(error)}</div>' if error else ""
    return (
        f'<div id="run-state" data-state="{html.escape(state)}">'
        f'<div class="run-head"><b class="state-{html.escape(state)}">'
        f"{html.escape(state)}</b>{html.escape(phase)}</div>"
        f'<div class="bar"><div class="fill" style="width:{100 * fraction:.1f}%"></div></div>'
        f'<div class="run-meta">{html.escape(" · ".join(p for p in parts if p))}</div>'
        f"{detail}</div>"
    )


def loss_frame(metrics: list[dict[str, Any]]) -> pd.DataFrame:
    """Training loss by step (Trainer logs that carry ``loss``)."""
    points = [
        {"step": int(m["step"]), "loss": round(float(m["loss"]), 4)}
        for m in metrics
        if "loss" in m and m.get("step") is not None
    ]
    # numeric dtypes even when empty: the plot's axes are typed from its first value
    return pd.DataFrame(points, columns=["step", "loss"]).astype(
        {"step": "int64", "loss": "float64"}
    )


def eval_frame(metrics: list[dict[str, Any]]) -> pd.DataFrame:
    """Eval WER/CER as they arrive, with transcripts in a loop, words said on non-speech
    probes and each guard set's WER (its change from the base model in brackets); the
    baseline (base model) first. The final model's row names the checkpoint it is when the
    best one was reloaded (its step and epoch)."""
    guards = sorted(
        {k[len("eval_guard_") : -len("_change")] for m in metrics for k in m if _is_change(k)}
    )
    rows = []
    trained = False  # the Trainer's summary log (train_runtime) comes before the final eval
    best: dict[str, Any] | None = None
    for m in metrics:
        if m.get("event") == "baseline":
            said = (m.get("nonspeech") or {}).get("words", "–")
            rows.append(
                ["base model", "–", percent(m.get("wer")), percent(m.get("cer")),
                 m.get("loops", "–"), said, *["–"] * len(guards)]
            )  # fmt: skip
        elif m.get("event") == "best_checkpoint":
            best = m
        elif "train_runtime" in m:
            trained = True
        elif "eval_wer" in m:
            epoch = (best or m).get("epoch") if trained else m.get("epoch")
            label = str(m.get("step"))
            if trained:
                label = f"final model (best: step {best['step']})" if best else "final model"
            rows.append(
                [
                    label,
                    f"{epoch:.2f}" if isinstance(epoch, (int, float)) else "–",
                    percent(m.get("eval_wer")),
                    percent(m.get("eval_cer")),
                    m.get("eval_loops", "–"),
                    m.get("eval_nonspeech_words", "–"),
                    *[_guard_cell(m, name) for name in guards],
                ]
            )
    columns = ["step", "epoch", "WER", "CER", "in a loop", "words on non-speech"]
    return pd.DataFrame(rows, columns=[*columns, *[f"guard {name}" for name in guards]])


def _is_change(key: str) -> bool:
    return key.startswith("eval_guard_") and key.endswith("_change")


def _guard_cell(metrics: dict[str, Any], name: str) -> str:
    """A guard set's rate at one evaluation and its change from the base model."""
    rate = metrics.get(f"eval_guard_{name}_wer", metrics.get(f"eval_guard_{name}_cer"))
    change = metrics.get(f"eval_guard_{name}_change")
    if rate is None:
        return "–"
    return percent(rate) + (f" ({100 * change:+.1f})" if change is not None else "")


def log_html(text: str) -> str:
    """The log in a box that stays scrolled to its newest line (column-reverse)."""
    if not text:
        return '<div class="log-box empty">The log appears here once a run starts.</div>'
    return f'<div class="log-box"><pre>{html.escape(text)}</pre></div>'


# ----- data ------------------------------------------------------------------------------


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    data = [
        [
            r["id"],
            r.get("language") or "",
            r["text"],
            f"{float(r.get('duration') or 0):.1f}",
            r["audio_path"],
        ]
        for r in rows
    ]
    return pd.DataFrame(data, columns=["id", "language", "text", "seconds", "file"])


def _issue_table(title: str, items: list[dict[str, Any]]) -> str:
    if not items:
        return ""
    lines = [f"**{title}** ({len(items)})", "", "| row | file | reason |", "| --- | --- | --- |"]
    for item in items[:MAX_REPORT_ITEMS]:
        name = str(item.get("audio_path") or "").rsplit("/", 1)[-1]
        reason = str(item.get("reason", "")).replace("|", "\\|")
        row = item.get("id") or f"line {item.get('line', '?')}"
        lines.append(f"| {row} | `{name}` | {reason} |")
    if len(items) > MAX_REPORT_ITEMS:
        lines.append(f"| … | | {len(items) - MAX_REPORT_ITEMS} more |")
    return "\n".join(lines) + "\n"


def check_verdict(reports: list[dict[str, Any]]) -> str:
    """One line over all ``reports``: ✓ only when no row is invalid, over the limits or
    warned about."""
    invalid = sum(int(r.get("num_invalid") or 0) for r in reports)
    flagged = sum(len(r.get("over_limits", [])) + len(r.get("warnings", [])) for r in reports)
    if invalid:
        return f"✗ **{invalid} invalid row(s)**: fix or delete them (see below)."
    if flagged:
        return f"⚠ **{flagged} row(s) to look at** (left out or kept with a warning, below)."
    return "✓ **Every row can be used.**"


def check_report_markdown(report: dict[str, Any] | None, source: str = "") -> str:
    """A data check (``ValidationReport.as_dict()``) as Markdown: a verdict and tables."""
    if not report:
        return "No data check yet."
    head = (
        f"**{report['num_rows']} rows: {report['num_valid']} valid, "
        f"{report['num_invalid']} invalid, {len(report.get('over_limits', []))} over the "
        f"model's limits, {len(report.get('warnings', []))} warnings**"
    )
    if source:
        head += f" — `{source}`"
    parts = [
        head,
        _issue_table("Invalid rows (cannot be used)", report.get("problems", [])),
        _issue_table(
            "Over the model's limits (left out of training)", report.get("over_limits", [])
        ),
        _issue_table("Warnings (kept)", report.get("warnings", [])),
    ]
    return "\n\n".join(p for p in parts if p)


# ----- evaluation -------------------------------------------------------------------------


def nonspeech_cell(nonspeech: dict[str, Any] | None) -> str:
    """Words said on the non-speech probes: "3 (2 of 12 clips)", or "–" without probes."""
    if not nonspeech:
        return "–"
    clips = f"{nonspeech['clips_with_words']} of {nonspeech['clips']} clips"
    return f"{nonspeech['words']} ({clips})"


def comparison_markdown(
    baseline: dict[str, Any] | None, finetuned: dict[str, Any] | None, base_name: str = ""
) -> str:
    """Base model vs fine-tuned: WER, CER, raw WER and the change."""
    if not baseline and not finetuned:
        return "No evaluation yet: train with an eval split, or press Evaluate."
    lines = [
        "| model | WER | CER | raw WER | utterances | in a loop | long files' WER "
        "| words on non-speech |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, report in ((f"base model {base_name}".strip(), baseline), ("fine-tuned", finetuned)):
        if report:
            longform = report.get("longform") or {}
            lines.append(
                f"| {name} | {percent(report.get('wer'))} | {percent(report.get('cer'))} | "
                f"{percent(report.get('wer_unnormalized'))} | {report.get('num_samples', '–')} | "
                f"{report.get('loops', '–')} | {percent(longform.get('wer'))} | "
                f"{nonspeech_cell(report.get('nonspeech'))} |"
            )
        else:
            lines.append(f"| {name} | – | – | – | not evaluated | – | – | – |")
    if baseline and finetuned:
        key = finetuned.get("headline") or "wer"  # CER for languages written without spaces
        change = 100 * (finetuned[key] - baseline[key])
        lines.append(f"\n{key.upper()} change: **{change:+.1f} points** (negative is better).")
    from asrtune.publish.card import guard_table

    guards = guard_table(finetuned)
    if guards:
        lines += ["", "**Guard sets** (general speech, before and after training):", "", guards]
    return "\n".join(lines)


def term_table_markdown(
    baseline: dict[str, Any] | None, finetuned: dict[str, Any] | None, shown: int = 30
) -> str:
    """The user's terms, per term: occurrences in the references, how many each model
    recognized and what the fine-tuned model heard instead (most missed first, at most
    ``shown`` rows), under a line of term recall and false alarms; "" when no report
    counted terms."""
    base_terms = (baseline or {}).get("terms")
    tuned_terms = (finetuned or {}).get("terms")
    main = tuned_terms or base_terms
    if not main:
        return ""
    summary = []
    for name, terms in (("base model", base_terms), ("fine-tuned", tuned_terms)):
        if terms:
            summary.append(
                f"{name}: recall **{percent(terms.get('recall'))}** "
                f"({terms['recognized']}/{terms['occurrences']}), "
                f"false alarms {terms['false_alarms']}"
            )
    base_by_term = {t["term"]: t for t in (base_terms or {}).get("per_term", [])}
    rows = sorted(main["per_term"], key=lambda t: t["recognized"] - t["occurrences"])
    lines = [
        " · ".join(summary),
        "",
        "| term | occurrences | recognized (base) | recognized (fine-tuned) | heard as |",
        "| --- | --- | --- | --- | --- |",
    ]
    for term in rows[:shown]:
        base = base_by_term.get(term["term"])
        tuned = term if tuned_terms else None
        heard = ", ".join(f"“{h}”" if h else "(nothing)" for h in term["misrecognized_as"][:3])
        lines.append(
            f"| {term['term']} | {term['occurrences']} | "
            f"{base['recognized'] if base else '–'} | {tuned['recognized'] if tuned else '–'} | "
            f"{heard or '–'} |"
        )
    if len(rows) > shown:
        lines.append(f"\n{len(rows) - shown} more terms in the report.")
    return "\n".join(lines)


def word_diff_html(reference: str, hypothesis: str) -> str:
    """Word-level diff: substituted/deleted reference words struck through, inserted or
    substituted hypothesis words highlighted."""
    ref, hyp = reference.split(), hypothesis.split()
    out = []
    matcher = difflib.SequenceMatcher(a=ref, b=hyp, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        old = html.escape(" ".join(ref[i1:i2]))
        new = html.escape(" ".join(hyp[j1:j2]))
        if op == "equal":
            out.append(f'<span class="ok">{old}</span>')
        if op in ("replace", "delete"):
            out.append(f'<del class="{"sub" if op == "replace" else "del"}">{old}</del>')
        if op in ("replace", "insert"):
            out.append(f'<ins class="{"sub" if op == "replace" else "ins"}">{new}</ins>')
    return " ".join(out) if out else '<span class="ok"></span>'


def worst_utterances_html(
    finetuned: list[dict[str, Any]], baseline: list[dict[str, Any]] | None = None, n: int = 10
) -> str:
    """The ``n`` utterances with the highest fine-tuned WER, each with its diff (and the base
    model's hypothesis when known)."""
    if not finetuned:
        return ""
    base_by_id = {u["id"]: u for u in baseline or []}
    worst = sorted(finetuned, key=lambda u: (-float(u.get("wer") or 0), u["id"]))[:n]
    items = []
    for utt in worst:
        ref = utt.get("ref_normalized") or utt.get("ref", "")
        rows = [
            f'<div class="utt-head"><code>{html.escape(str(utt["id"]))}</code> · fine-tuned WER '
            f"{percent(utt.get('wer'))}</div>",
            f'<div class="utt-ref">reference: {html.escape(utt.get("ref", ""))}</div>',
            '<div class="utt-line"><span class="who">fine-tuned</span> '
            f"{word_diff_html(ref, utt.get('hyp_normalized') or utt.get('hyp', ''))}</div>",
        ]
        base = base_by_id.get(utt["id"])
        if base is not None:
            hyp = base.get("hyp_normalized") or base.get("hyp", "")
            rows.append(
                f'<div class="utt-line"><span class="who">base ({percent(base.get("wer"))})'
                f"</span> {word_diff_html(ref, hyp)}</div>"
            )
        items.append(f'<div class="utt">{"".join(rows)}</div>')
    legend = (
        '<div class="legend">words compared after normalization: '
        '<del class="sub">missed or wrong</del> <ins class="sub">heard instead</ins> '
        '<ins class="ins">inserted</ins></div>'
    )
    return f'<div class="worst">{legend}{"".join(items)}</div>'
