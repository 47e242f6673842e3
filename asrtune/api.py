"""The Python API: the same functions the CLI and the UI call.

>>> import asrtune
>>> result = asrtune.train(model="openai/whisper-small", train_manifest="train.jsonl",
...                        eval_manifest="dev.jsonl", output_dir="out", lora=True)
>>> asrtune.evaluate("out", "test.jsonl").score.wer
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asrtune.config import train_job_from_kwargs
from asrtune.data.rows import load_rows
from asrtune.errors import AsrtuneError
from asrtune.evaluation import EvalResult, evaluate_rows, write_report
from asrtune.inference import (
    DEFAULT_DECODING,
    DecodingOptions,
    file_transcripts,
    gives_timestamps,
    transcribe_files,
)
from asrtune.models import LoadedModel, load_model
from asrtune.processes import is_main_process, join_launched_run
from asrtune.terms import TermList, read_terms
from asrtune.training import TrainResult

if TYPE_CHECKING:
    from asrtune.publish.parity import ExportResult
from asrtune.transcripts import FileTranscript


def train(trainer_hook: Callable[[Any], None] | None = None, **options: Any) -> TrainResult:
    """Train with the options of ``asrtune train`` (underscore names) as keyword arguments.

    ``trainer_hook(trainer)`` runs once the Trainer is built (e.g. to add callbacks).
    """
    from asrtune.training import train as run_train

    return run_train(train_job_from_kwargs(**options), trainer_hook)


Hotwords = str | Path | TermList | Sequence[str] | None


def with_hotwords(options: DecodingOptions, hotwords: Hotwords) -> DecodingOptions:
    """``options`` with ``hotwords`` (a term file, a :class:`TermList` or the terms; their
    first spellings) replacing its own; ``None`` leaves them as they are."""
    if hotwords is None:
        return options
    if isinstance(hotwords, (str, Path)):
        hotwords = read_terms(hotwords)
    if isinstance(hotwords, TermList):
        hotwords = [term.term for term in hotwords.terms]
    return replace(options, hotwords=tuple(hotwords))


def _loaded(model: str | LoadedModel, allow_pickle: bool) -> LoadedModel:
    return model if isinstance(model, LoadedModel) else load_model(model, allow_pickle=allow_pickle)


def evaluate(
    model: str | LoadedModel,
    manifest: str | Path,
    output: str | Path | None = None,
    max_samples: int | None = None,
    options: DecodingOptions = DEFAULT_DECODING,
    allow_pickle: bool = False,
    terms: str | Path | TermList | None = None,
    hotwords: Hotwords = None,
) -> EvalResult:
    """Corpus WER/CER of ``model`` on ``manifest``; writes the report when ``output`` is set.

    ``terms`` (a term file, see :mod:`asrtune.terms`, or a parsed :class:`TermList`) adds
    term recall and false alarms: ``result.terms``, the report's ``terms``, and each
    utterance's terms found, missed and falsely said in the per-utterance file.
    ``hotwords`` (a term file, a :class:`TermList` or a list of terms) biases decoding
    toward them where the family can (``Capabilities.hotwords``; else an AsrtuneError).

    Under ``torchrun``/``accelerate launch`` the processes share the rows out and every
    process gets the whole result; only the main one writes the report.
    """
    join_launched_run()
    options = with_hotwords(options, hotwords)
    term_list = read_terms(terms) if isinstance(terms, (str, Path)) else terms
    rows = load_rows(manifest, options.language, nonspeech_ok=True)
    if rows.invalid:
        first = rows.invalid[0]
        raise AsrtuneError(
            f"{len(rows.invalid)} invalid row(s) in {manifest}, first: line {first.line}: "
            f"{first.reason}"
        )
    loaded = _loaded(model, allow_pickle)
    result = evaluate_rows(loaded, rows.rows[:max_samples], options, terms=term_list)
    if output is not None and is_main_process():
        extra = {"model": str(model), "manifest": str(manifest)}
        if options.hotwords:
            extra["hotwords"] = list(options.hotwords)
        write_report(result, output, extra)
    return result


def export(
    model: str | Path,
    fmt: str,
    output: str | Path,
    quantization: str | None = None,
    **verify: Any,
) -> ExportResult:
    """Export ``model`` (a folder; LoRA merged first) to ``output`` as ``fmt`` ("ct2",
    "onnx") and compare the export with the transformers model on a sample of rows.

    ``verify`` takes the fields of :class:`~asrtune.publish.parity.VerifyOptions`
    (``verify=True`` fails on a gap, ``manifest``, ``samples``, ``max_wer_gap``,
    ``language``). ``result.parity`` holds both models' WER/CER/loops (None when no rows
    were found: ``result.note`` says why).
    """
    from dataclasses import fields

    from asrtune.publish.parity import VerifyOptions, export_with_parity

    known = [f.name for f in fields(VerifyOptions)]
    unknown = sorted(set(verify) - set(known))
    if unknown:
        raise AsrtuneError(
            f"unknown export option(s) {', '.join(unknown)} (known: {', '.join(known)})"
        )
    return export_with_parity(model, fmt, output, quantization, VerifyOptions(**verify))


def transcribe(
    model: str | LoadedModel,
    files: list[str],
    options: DecodingOptions = DEFAULT_DECODING,
    allow_pickle: bool = False,
    hotwords: Hotwords = None,
) -> list[str]:
    """The text of each audio file, in order; ``hotwords`` as for :func:`evaluate`."""
    options = with_hotwords(options, hotwords)
    return transcribe_files(_loaded(model, allow_pickle), files, options)


def transcribe_segments(
    model: str | LoadedModel,
    files: list[str],
    options: DecodingOptions = DEFAULT_DECODING,
    allow_pickle: bool = False,
    require_timestamps: bool = True,
) -> list[FileTranscript]:
    """Each file's text, duration (s) and timed segments (start/end in seconds), in order.

    A family that gives no timestamps (Voxtral) raises an AsrtuneError, or, with
    ``require_timestamps=False``, gets its text with ``segments=None``.
    """
    loaded = _loaded(model, allow_pickle)
    timestamps = require_timestamps or gives_timestamps(loaded)
    return file_transcripts(loaded, files, options, timestamps=timestamps)
