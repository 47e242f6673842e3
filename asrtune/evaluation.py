"""Generation-based evaluation of a model on manifest rows → corpus WER/CER report.

Under ``torchrun``/``accelerate launch`` the rows are shared out between the processes,
each decodes its share, and every process gets all hypotheses back in input order, so the
score equals a single-process evaluation of the same weights.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from asrtune.data.audio import load_row_audio
from asrtune.data.manifest import Row
from asrtune.inference import DEFAULT_DECODING, DecodingOptions, transcribe_lazily
from asrtune.metrics import (
    CorpusScore,
    NonspeechScore,
    UtteranceScore,
    corpus_score,
    is_nonspeech,
    nonspeech_score,
    score_corpus,
)
from asrtune.models import LoadedModel, resolve_precision
from asrtune.processes import all_processes, rank_and_world
from asrtune.terms import TermList, TermScore, score_terms


@dataclass(frozen=True)
class EvalResult:
    """Corpus score plus one score per utterance (in manifest order)."""

    score: CorpusScore
    utterances: list[UtteranceScore]
    seconds: float
    precision: str = "fp32"  # what generation ran in, see models.resolve_precision
    longform: CorpusScore | None = None  # the rows longer than one model window
    nonspeech: NonspeechScore | None = None  # the rows without text (non-speech probes)
    terms: TermScore | None = None  # the user's terms, when a term list was given

    def report(self) -> dict:
        report = {
            **self.score.as_dict(),
            "eval_seconds": round(self.seconds, 2),
            "precision": self.precision,
        }
        if self.longform is not None:
            long = self.longform
            report["longform"] = {"files": long.num_samples, "wer": long.wer, "cer": long.cer}
        if self.nonspeech is not None:
            report["nonspeech"] = self.nonspeech.as_dict()
        if self.terms is not None:
            report["terms"] = self.terms.as_dict()
        return report

    def utterance_dicts(self) -> list[dict]:
        """One dict per utterance (id, texts, rates), with its terms when a term list was given."""
        rows = [u.as_dict() for u in self.utterances]
        if self.terms is not None:
            for row, terms in zip(rows, self.terms.rows, strict=True):
                row["terms"] = terms.as_dict()
        return rows


def evaluate_rows(
    loaded: LoadedModel,
    rows: list[Row],
    options: DecodingOptions = DEFAULT_DECODING,
    progress: bool | str = True,
    terms: TermList | None = None,
) -> EvalResult:
    """Transcribe ``rows`` and score them against their texts; rows without text are
    non-speech probes, scored apart (words said on them, :class:`NonspeechScore`).
    ``progress``: show a progress bar (a string: with that label). With ``terms``, the
    result also counts them (:func:`asrtune.terms.score_terms`)."""
    start = time.perf_counter()
    was_training = loaded.model.training
    loaded.model.eval()
    languages = [r.language or options.language for r in rows]
    durations = [r.duration or 0.0 for r in rows]
    mine = rows_to_decode_here(durations)
    decoded = transcribe_lazily(
        loaded,
        [durations[i] for i in mine],
        lambda i: load_row_audio(rows[mine[i]]),
        options,
        [languages[i] for i in mine],
        progress,
    )
    hypotheses = gather_in_order(len(rows), mine, decoded)
    if was_training:
        loaded.model.train()
    references = [r.text for r in rows]
    scored_in = scoring_languages(loaded, rows, options.language)
    score, utterances = score_corpus(
        references, hypotheses, scored_in, [r.id for r in rows], task=options.task
    )
    term_score = None
    if terms is not None:
        term_score = score_terms(terms, references, hypotheses, scored_in, options.task)
    precision = resolve_precision(loaded.model, options.precision)
    window = loaded.adapter.limits(loaded).max_seconds
    long = [
        u
        for u, seconds in zip(utterances, durations, strict=True)
        if seconds > window and not is_nonspeech(u.reference)
    ]
    longform = corpus_score(long, score.headline) if long else None
    probes = [u for u in utterances if is_nonspeech(u.reference)]
    nonspeech = nonspeech_score(probes) if probes else None
    seconds = time.perf_counter() - start
    return EvalResult(score, utterances, seconds, precision, longform, nonspeech, term_score)


def spread_subset(rows: list[Row], size: int | None) -> list[Row]:
    """``size`` of ``rows`` spread evenly over them, in their order, keeping the share of
    non-speech probes (rows without text; at least one when there are any): the fixed
    sample that ``--eval_subset`` scores at each evaluation during training. All rows when
    ``size`` is None, 0 or not smaller than ``len(rows)``."""
    if not size or size >= len(rows):
        return rows
    probes = [i for i, row in enumerate(rows) if is_nonspeech(row.text)]
    speech = [i for i, row in enumerate(rows) if not is_nonspeech(row.text)]
    n_probes = min(len(probes), max(1 if probes else 0, round(size * len(probes) / len(rows))))
    if speech:
        n_probes = min(n_probes, size - 1)
    picked = _evenly_spaced(probes, n_probes) + _evenly_spaced(speech, size - n_probes)
    return [rows[i] for i in sorted(picked)]


def _evenly_spaced(items: list[int], count: int) -> list[int]:
    """``count`` of ``items``, one from the middle of each of ``count`` equal stretches."""
    return [items[(2 * k + 1) * len(items) // (2 * count)] for k in range(count)]


def scoring_languages(
    loaded: LoadedModel, rows: list[Row], language: str | None = None
) -> list[str | None]:
    """The language each row is scored in, which picks its normalizer
    (:func:`asrtune.metrics.normalizer_for`): the row's own (``--language`` fills rows
    without one where they are read), else ``language`` (decoding's), else the model's
    sole language (an English-only checkpoint's, ``sole_language``), else None: unknown,
    scored with the multilingual normalizer. The same rule for every family, so the same
    rows score alike whichever model transcribed them."""
    implied = language or loaded.adapter.sole_language(loaded)
    return [row.language or implied for row in rows]


def rows_to_decode_here(durations: list[float]) -> list[int]:
    """The row indices this process decodes: every ``world``-th of the rows sorted by
    duration, so each process gets a similar amount of audio."""
    rank, world = rank_and_world()
    by_length = sorted(range(len(durations)), key=lambda i: (-durations[i], i))
    return sorted(by_length[rank::world])


def gather_in_order(count: int, mine: list[int], decoded: list[str]) -> list[str]:
    """All processes' hypotheses in input order (``all_gather_object``), in every process."""
    texts = [""] * count
    for share in all_processes(list(zip(mine, decoded, strict=True))):
        for index, text in share:
            texts[index] = text
    return texts


def write_report(result: EvalResult, path: str | Path, extra: dict | None = None) -> Path:
    """Write report.json and, beside it, ``<stem>.utterances.jsonl`` (id, ref, hyp, wer;
    terms found/missed/false alarms when the result has terms)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {**result.report(), **(extra or {})}
    per_utt = path.with_name(path.stem + ".utterances.jsonl")
    report["utterances_file"] = per_utt.name
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    with open(per_utt, "w", encoding="utf-8") as handle:
        for row in result.utterance_dicts():
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
