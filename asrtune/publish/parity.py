"""Export parity: does the exported model transcribe like the transformers model it came from?

``asrtune export`` decodes a sample of rows with both (greedy, float32 on the transformers
side, the export in its own weight type) and scores both with :mod:`asrtune.metrics`:
corpus WER, CER and the number of hypotheses caught in a decoding loop. The sample is the
first ``--verify_samples`` rows of ``--verify_manifest``, else of the eval manifest the
model was trained with (``training_config.json``), as long as its audio files still exist;
rows longer than one model window are left out (the exported decoders take one window).

The figures go to ``export_parity.json`` in the export folder and, keyed by format (and
quantization), into ``export_parity.json`` of the model folder, where the model card finds
them. With ``--verify`` the export fails when the exported model's WER exceeds the
transformers model's by more than ``--max_wer_gap`` (absolute) or when it loops more often.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asrtune.data.manifest import Row
from asrtune.errors import AsrtuneError
from asrtune.metrics import CorpusScore

log = logging.getLogger("asrtune")

PARITY_FILE = "export_parity.json"
NO_SAMPLE = "no eval rows in the model folder; pass --verify_manifest"


@dataclass(frozen=True)
class VerifyOptions:
    """How ``asrtune export`` compares the export with the transformers model."""

    verify: bool = False  # fail the export on a gap
    manifest: str | None = None  # rows to decode; None: the training eval rows
    samples: int = 32  # rows decoded (the first ones); 0: no comparison
    max_wer_gap: float = 0.02  # allowed WER excess of the export, absolute (0.02 = 2 points)
    language: str | None = None  # for rows without one; None: the training language

    @classmethod
    def field_help(cls) -> dict[str, str]:
        return {
            "verify": "fail (exit 2) when the exported model's WER on the sample exceeds the "
            "transformers model's by more than --max_wer_gap or it loops more often; the "
            "export folder stays for inspection",
            "manifest": "JSONL/CSV manifest (or audio folder) to decode with both models "
            "(default: the eval rows the model was trained with, if their files exist)",
            "samples": "decode the first N rows (rows over 30 s are left out); 0 skips the "
            "comparison",
            "max_wer_gap": "WER the export may lose with --verify, absolute: 0.02 is 2 points",
            "language": "language of sample rows without one (default: the training language)",
        }


@dataclass(frozen=True)
class Sample:
    """Rows to decode and where they came from."""

    rows: list[Row]
    source: str


@dataclass(frozen=True)
class ParityReport:
    """Both models' scores on the same rows; rates are fractions (0.05 = 5 %)."""

    format: str
    quantization: str | None
    source: str
    hf: CorpusScore
    exported: CorpusScore
    hf_seconds: float = 0.0  # wall time of each side's decoding (features included)
    exported_seconds: float = 0.0

    @property
    def samples(self) -> int:
        return self.hf.num_samples

    @property
    def wer_gap(self) -> float:
        """Exported WER minus transformers WER (positive: the export is worse)."""
        return self.exported.wer - self.hf.wer

    @property
    def key(self) -> str:
        """``ct2``, ``ct2-int8``, ``onnx``: the entry in the model folder's file."""
        return f"{self.format}-{self.quantization}" if self.quantization else self.format

    def as_dict(self) -> dict[str, Any]:
        def side(score: CorpusScore, seconds: float) -> dict[str, Any]:
            rates = {"wer": score.wer, "cer": score.cer, "loops": score.loops}
            return {**rates, "seconds": round(seconds, 2)}

        return {
            "format": self.format,
            "quantization": self.quantization,
            "samples": self.samples,
            "source": self.source,
            "hf": side(self.hf, self.hf_seconds),
            "exported": side(self.exported, self.exported_seconds),
            "wer_gap": self.wer_gap,
        }

    def summary(self) -> str:
        """One line: both WERs, the gap and the loop counts."""
        return (
            f"parity on {self.samples} rows of {self.source}: WER {100 * self.hf.wer:.2f} % "
            f"(transformers) vs {100 * self.exported.wer:.2f} % ({self.key}), gap "
            f"{100 * self.wer_gap:+.2f} points; loops {self.hf.loops} vs {self.exported.loops}"
        )

    def failure(self, max_wer_gap: float) -> str | None:
        """Why the export fails the check, or None when it passes."""
        problems = []
        if self.wer_gap > max_wer_gap:
            problems.append(
                f"WER {100 * self.exported.wer:.2f} % vs {100 * self.hf.wer:.2f} % with "
                f"transformers (gap {100 * self.wer_gap:.2f} points > {100 * max_wer_gap:.2f})"
            )
        if self.exported.loops > self.hf.loops:
            problems.append(f"{self.exported.loops} looping transcripts vs {self.hf.loops}")
        if not problems:
            return None
        return f"{self.key} export fails the parity check on {self.samples} rows: " + "; ".join(
            problems
        )


@dataclass(frozen=True)
class ExportResult:
    """The export folder, the parity figures (None when not measured) and why not."""

    output: Path
    parity: ParityReport | None = None
    note: str | None = None

    def summary(self) -> str:
        return self.parity.summary() if self.parity else f"parity: {self.note}"


# --------------------------------------------------------------------------- the sample


def training_eval_manifest(out: str | Path) -> str | None:
    """The local eval manifest (or audio folder) the model in ``out`` was trained or
    evaluated with, if it still exists."""
    from asrtune.data.sources import parse_source
    from asrtune.publish.bundle import describe

    info = describe(out)
    candidates = [
        info.training_config.get("data", {}).get("eval_manifest"),
        (info.eval_results or {}).get("manifest"),
    ]
    for candidate in candidates:
        if not candidate or parse_source(str(candidate)).kind not in ("manifest", "folder"):
            continue  # Hub / Granary sources are not re-read here
        if Path(candidate).exists():
            return str(candidate)
    return None


def read_sample(source: str, count: int, language: str | None, strict: bool) -> list[Row]:
    """The first ``count`` usable rows of ``source``, each audio file decoded once.

    ``strict``: an invalid row among them is an error; otherwise it is left out (logged).
    """
    from asrtune.data.sources import read_source
    from asrtune.data.validate import validate_rows

    manifest = read_source(source, language=language)
    report = validate_rows(manifest.rows[:count], progress=False, source=Path(source).name)
    if report.problems:
        first = report.problems[0]
        message = (
            f"{len(report.problems)} unusable row(s) among the first {count} of {source}, "
            f"first: line {first.line}: {first.reason}"
        )
        if strict:
            raise AsrtuneError(message)
        log.warning("%s (left out)", message)
    return report.rows


def find_sample(out: str | Path, options: VerifyOptions) -> Sample | None:
    """``options.manifest``'s rows, else the model's eval rows; None when there are none."""
    if options.samples <= 0:
        return None
    source = options.manifest or training_eval_manifest(out)
    if source is None:
        return None
    language = options.language or _training(out).get("language")
    rows = read_sample(source, options.samples, language, strict=options.manifest is not None)
    if not rows:
        if options.manifest:
            raise AsrtuneError(f"{options.manifest} has no usable rows")
        return None
    return Sample(rows, source)


def _training(out: str | Path) -> dict[str, Any]:
    """The model section of the training config (language, task), {} when unknown."""
    from asrtune.publish.bundle import describe

    return describe(out).training_config.get("model", {}) or {}


# --------------------------------------------------------------------------- measuring


def measure_parity(
    out: str | Path,
    export_dir: str | Path,
    fmt: str,
    quantization: str | None,
    sample: Sample,
    language: str | None = None,
) -> ParityReport:
    """Decode ``sample`` with the model in ``out`` (transformers, fp32, greedy) and with
    its ``fmt`` export in ``export_dir``; score both."""
    from asrtune.data.audio import load_row_audio
    from asrtune.evaluation import evaluate_rows, scoring_languages
    from asrtune.inference import DecodingOptions
    from asrtune.metrics import score_corpus
    from asrtune.models import load_model, token_budget
    from asrtune.publish.families import recipe_for

    training = _training(out)
    language = language or training.get("language")
    task = training.get("task") or "transcribe"
    loaded = load_model(str(out))
    decode = recipe_for(loaded.family).export_decoder(fmt)
    window = loaded.adapter.limits(loaded).max_seconds
    rows = [row for row in sample.rows if (row.duration or 0.0) <= window]
    if len(rows) < len(sample.rows):
        log.info("parity: %d row(s) over %.0f s left out", len(sample.rows) - len(rows), window)
    if not rows:
        raise AsrtuneError(f"no row of {sample.source} fits one {window:.0f}-s window")
    requested = token_budget(max(row.duration or 0.0 for row in rows))
    languages = [row.language or language for row in rows]
    audios = [load_row_audio(row) for row in rows]
    start = time.perf_counter()
    hypotheses = decode(loaded, Path(export_dir), audios, languages, task, requested)
    exported_seconds = time.perf_counter() - start
    options = DecodingOptions(
        language=language, task=task, num_beams=1, max_new_tokens=requested, precision="fp32"
    )
    hf_result = evaluate_rows(loaded, rows, options, progress=False)
    exported, _ = score_corpus(
        [row.text for row in rows],
        hypotheses,
        scoring_languages(loaded, rows, language),  # as evaluate_rows scores
        [row.id for row in rows],
        task=task,
    )
    return ParityReport(
        fmt,
        quantization,
        sample.source,
        hf_result.score,
        exported,
        hf_result.seconds,
        exported_seconds,
    )


def write_parity(report: ParityReport, export_dir: str | Path, out: str | Path) -> Path:
    """``export_parity.json`` in the export folder; the model folder's file gets (or
    replaces) the entry ``report.key`` with the export folder's path added."""
    from asrtune.publish.bundle import describe, read_json

    path = Path(export_dir) / PARITY_FILE
    path.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    model_file = describe(out).path / PARITY_FILE
    try:
        entries = read_json(model_file) or {}
    except AsrtuneError:
        entries = {}
    entries = entries if isinstance(entries, dict) else {}
    entries[report.key] = {**report.as_dict(), "output": str(Path(export_dir).resolve())}
    try:
        model_file.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        log.warning("cannot write %s: %s", model_file, exc)
    return path


def read_parity(folder: str | Path) -> list[dict[str, Any]]:
    """The model folder's parity entries (for the model card), sorted by key; [] if none."""
    from asrtune.publish.bundle import read_json

    try:
        entries = read_json(Path(folder) / PARITY_FILE) or {}
    except AsrtuneError:
        return []
    if not isinstance(entries, dict):
        return []
    return [entries[key] for key in sorted(entries) if isinstance(entries[key], dict)]


# --------------------------------------------------------------------------- the command


def export_with_parity(
    out: str | Path,
    fmt: str,
    output: str | Path,
    quantization: str | None = None,
    options: VerifyOptions = VerifyOptions(),
) -> ExportResult:
    """Export (see :func:`asrtune.publish.export.export_model`), then compare the export
    with the transformers model on a sample (see the module docstring).

    Raises :class:`AsrtuneError` when ``options.verify`` is set and there is no sample or
    the export fails the check (the export folder is kept).
    """
    from asrtune.publish.export import check_export, export_model

    if options.verify and options.samples <= 0:
        raise AsrtuneError("--verify needs --verify_samples of 1 or more")
    check_export(out, fmt, output, quantization)  # user errors before any decoding
    sample = find_sample(out, options)
    if sample is None and options.verify:
        raise AsrtuneError(f"--verify has nothing to decode: {NO_SAMPLE}")
    path = export_model(out, fmt, output, quantization=quantization)
    if sample is None:
        note = "not measured (--verify_samples 0)" if options.samples <= 0 else NO_SAMPLE
        return ExportResult(path, None, note)
    try:
        report = measure_parity(out, path, fmt, quantization, sample, options.language)
    except AsrtuneError as exc:
        if options.verify:
            raise AsrtuneError(f"{exc} (the export is in {path})") from exc
        return ExportResult(path, None, f"not measured: {exc}")
    write_parity(report, path, out)
    failure = report.failure(options.max_wer_gap)
    if options.verify and failure:
        raise AsrtuneError(f"{failure}; the export stays in {path} for inspection")
    return ExportResult(path, report)
