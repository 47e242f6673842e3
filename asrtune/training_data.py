"""Training data for ``asrtune train``: sources → checked rows → admitted examples → dataset.

Nothing is dropped silently: invalid rows stop training (or, with --drop_invalid, go to
OUT/dropped.jsonl); rows the model cannot take (over its limits, unknown tokens: the
admission rule, :mod:`asrtune.data.admission`) go to OUT/skipped.jsonl. Under several
processes every process reads the same rows; only the main one writes those files.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from asrtune.config import TrainJob, eval_source, hub_options, training_sources
from asrtune.data.admission import Refusal, admit
from asrtune.data.manifest import Row, skip_record
from asrtune.data.nonspeech import noise_files
from asrtune.data.rows import LoadedRows, combine, load_rows
from asrtune.data.sources import stream_source
from asrtune.data.streaming import Stream, StreamingWindows
from asrtune.data.windows import Example, TrainingMix
from asrtune.dataset import WindowDataset
from asrtune.errors import AsrtuneError
from asrtune.guards import parse_guards
from asrtune.models import LoadedModel
from asrtune.models.fit import ModelFit
from asrtune.processes import all_processes, is_main_process
from asrtune.terms import TermList, find_occurrences, read_terms, spelling_tokens, tokens

log = logging.getLogger("asrtune")


def check_rows(sources: list[LoadedRows], drop_invalid: bool, out_dir: Path) -> int:
    """Stop on invalid rows unless ``drop_invalid``; then list them in OUT/dropped.jsonl.

    Returns the number of rows dropped.
    """
    invalid = [(lr.source, bad) for lr in sources for bad in lr.invalid]
    if not invalid:
        return 0
    for source, bad in invalid[:10]:
        log.warning("%s line %s: %s (%s)", source, bad.line, bad.reason, bad.audio_path)
    if not drop_invalid:
        raise AsrtuneError(
            f"{len(invalid)} invalid row(s) in {', '.join(lr.source for lr in sources)} "
            "(listed above); fix them or pass --drop_invalid"
        )
    _write_jsonl(out_dir / "dropped.jsonl", [{"source": src, **b.as_dict()} for src, b in invalid])
    log.warning("dropped %d invalid row(s): see %s", len(invalid), out_dir / "dropped.jsonl")
    return len(invalid)


def _write_jsonl(path: Path, records: list[dict]) -> None:
    """Write records as JSON lines (in the main process only)."""
    if not is_main_process():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def admit_row(
    loaded: LoadedModel,
    row: Row,
    task: str,
    timestamps: bool = False,
    allow_unknown_tokens: bool = False,
) -> Example | str:
    """The family's Example for a row, or the reason the model cannot take it (the
    admission rule, :func:`asrtune.data.admission.admit`); an AsrtuneError when the row is
    invalid for the model (a language it does not know, or none).

    Its labels are those of a window holding the row alone: with ``timestamps`` (some
    windows are trained with timestamps, see :func:`build_finite_dataset`) they include the
    timestamp tokens around the text.
    """
    admitted = admit(row, ModelFit(loaded, task, timestamps, allow_unknown_tokens))
    if isinstance(admitted, Refusal):
        if admitted.invalid:
            raise AsrtuneError(admitted.reason)
        return admitted.reason
    return admitted.example


def admit_rows(
    loaded: LoadedModel,
    rows: list[Row],
    task: str,
    timestamps: bool = False,
    allow_unknown_tokens: bool = False,
) -> tuple[list[Example], list[dict[str, Any]]]:
    """Split rows into trainable examples and the skip records (with reasons) of those the
    model cannot take; ``timestamps`` and ``allow_unknown_tokens`` as for :func:`admit_row`.
    Rows kept despite unknown tokens are counted in a warning."""
    examples, skipped, kept_unknown = [], [], 0
    fit = ModelFit(loaded, task, timestamps, allow_unknown_tokens)
    for row in rows:
        admitted = admit(row, fit)
        if isinstance(admitted, Refusal) and admitted.invalid:
            raise AsrtuneError(admitted.reason)
        if isinstance(admitted, Refusal):
            skipped.append(skip_record(row, admitted.reason))
            continue
        examples.append(admitted.example)
        kept_unknown += bool(admitted.notes)
    if kept_unknown:
        log.warning(
            "--allow_unknown_tokens: %d training row(s) hold characters the tokenizer has no "
            "token for; the model learns its unknown token for them",
            kept_unknown,
        )
    return examples, skipped


def load_training_rows(job: TrainJob, out: Path) -> tuple[list[Row], int]:
    """Rows of every training source, checked, mixed by weight; and how many were dropped."""
    specs = training_sources(job.data)
    loaded = [load_rows(spec, job.model.language, hub_options(job.data)) for spec in specs]
    dropped = check_rows(loaded, job.data.drop_invalid, out)
    return combine(loaded, specs, job.training.seed), dropped


def load_eval_rows(job: TrainJob, out: Path) -> list[Row]:
    spec = eval_source(job.data)
    if spec is None:
        return []
    loaded = load_rows(
        spec,
        job.model.language,
        hub_options(job.data),
        limit=job.data.max_eval_samples,
        nonspeech_ok=True,
    )
    check_rows([loaded], job.data.drop_invalid, out / "eval")
    return loaded.rows[: job.data.max_eval_samples]


def load_guard_rows(job: TrainJob, out: Path) -> dict[str, list[Row]]:
    """Each ``--guard NAME=SOURCE``'s rows (checked like the eval rows), by name."""
    guards = {}
    for name, source in parse_guards(job.data.guard).items():
        loaded = load_rows(source, job.model.language, hub_options(job.data), nonspeech_ok=True)
        check_rows([loaded], job.data.drop_invalid, out / "guards" / name)
        if not loaded.rows:
            raise AsrtuneError(f"--guard {name}: {source} has no usable rows")
        guards[name] = loaded.rows
    return guards


class SkipLog:
    """Rows left out of a stream: each process (and its dataloader workers) appends to a
    file of its own, OUT/skipped.rank<R>.jsonl; :meth:`finish` gathers every process's
    records into OUT/skipped.jsonl, written by the main process."""

    def __init__(self, out_dir: Path, rank: int = 0) -> None:
        self.final = out_dir / "skipped.jsonl"
        self.path = out_dir / f"skipped.rank{rank}.jsonl"
        out_dir.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def add(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    def records(self) -> list[dict[str, Any]]:
        """This process's records."""
        return [json.loads(x) for x in self.path.read_text(encoding="utf-8").splitlines()]

    def finish(self) -> list[dict[str, Any]]:
        """Every process's records (a collective call under several processes), written
        to OUT/skipped.jsonl; the per-process files are removed."""
        shares = all_processes(self.records())
        # a row left out again in a later pass over the stream is still one row
        unique = {json.dumps(r, sort_keys=True): r for share in shares for r in share}
        records = list(unique.values())
        self.path.unlink(missing_ok=True)
        _write_jsonl(self.final, records)
        return records


def build_stream_dataset(job: TrainJob, loaded: LoadedModel, skips: SkipLog) -> Any:
    """--streaming: rows are read, admitted, packed and featurized as training goes."""
    adapter, task, language = loaded.adapter, job.model.task, job.model.language
    mix = training_mix(job, loaded)
    timestamps = mix.timestamp_share > 0
    fit = ModelFit(loaded, task, timestamps, job.data.allow_unknown_tokens)
    streams = []
    for spec in training_sources(job.data):
        records, to_row = stream_source(spec, hub_options(job.data), language)
        records = records.shuffle(seed=job.training.seed, buffer_size=job.data.shuffle_buffer)
        streams.append(Stream(records, to_row, spec.weight))

    def admit_streamed(row: Row) -> tuple[Example, Any] | str:
        admitted = admit(row, fit)
        if isinstance(admitted, Refusal) and admitted.language:  # not one row's problem
            raise AsrtuneError(admitted.reason)
        if isinstance(admitted, Refusal):  # broken or unfit rows are skipped as they come
            return admitted.reason
        example = admitted.example
        return example, adapter.pack_item(loaded, example, task, timestamps)

    return StreamingWindows(
        streams,
        admit=admit_streamed,
        make_item=lambda window, plan: adapter.window_item(loaded, window, task, plan=plan),
        packer=adapter.packer(loaded, task, language) if packs(job, loaded) else None,
        on_skip=skips.add,
        seed=job.training.seed,
        rank=job.training.process_index,
        world_size=job.training.world_size,
        mix=mix,
        max_seconds=adapter.limits(loaded).max_seconds,
    )


def training_mix(job: TrainJob, loaded: LoadedModel) -> TrainingMix:
    """The job's :class:`TrainingMix`: each option as given, else the family's default
    (``TRAINING_MIX``; nothing for a family without one). Timestamps for a family without
    them are an error."""
    defaults = loaded.spec.training_mix
    data = job.data

    def value(name: str, off: Any) -> Any:
        given = getattr(data, name)
        return defaults.get(name, off) if given is None else given

    mix = TrainingMix(
        timestamp_share=value("timestamp_share", 0.0),
        nonspeech_share=value("nonspeech_share", 0.0),
        single_share=value("single_share", 0.0) if packs(job, loaded) else 0.0,
        natural_gaps=value("natural_gaps", False),
        noise_files=tuple(noise_files(data.noise_dir)),
        **prompt_mix(job, loaded),
    )
    if mix.timestamp_share and not loaded.capabilities.timestamps:
        raise AsrtuneError(f"--timestamp_share: {loaded.family} models have no timestamps")
    if data.noise_dir and not mix.noise_files:
        raise AsrtuneError(f"--noise_dir {data.noise_dir} holds no audio files")
    return mix


def prompt_mix(job: TrainJob, loaded: LoadedModel) -> dict[str, Any]:
    """``--prompt_share`` and its terms for :class:`TrainingMix` ({} when off); one-line
    errors without --terms, for a family without prompt training, or when streaming."""
    share = job.data.prompt_share
    if not share:
        return {}
    if not job.data.terms:
        raise AsrtuneError("--prompt_share needs --terms FILE (the terms prompts are made of)")
    if not loaded.capabilities.prompt_training:
        raise AsrtuneError(f"--prompt_share: {loaded.family} models cannot train with prompts")
    if job.data.streaming:
        raise AsrtuneError("--prompt_share does not stream yet: leave out --streaming")
    return {"prompt_share": share, "prompt_terms": read_terms(job.data.terms)}


def packs(job: TrainJob, loaded: LoadedModel) -> bool:
    """Whether training packs several utterances per window: ``--pack`` (the default), for a
    family that packs (``Capabilities.packing``)."""
    return job.data.pack and loaded.capabilities.packing


def build_finite_dataset(
    job: TrainJob, loaded: LoadedModel, rows: list[Row], out: Path
) -> tuple[Any, list[dict[str, Any]]]:
    mix = training_mix(job, loaded)
    # with any window trained with timestamps, every utterance's label budget counts its
    # two timestamp tokens
    timestamps = mix.timestamp_share > 0
    examples, skipped = admit_rows(
        loaded, rows, job.model.task, timestamps, job.data.allow_unknown_tokens
    )
    if skipped:
        _write_jsonl(out / "skipped.jsonl", skipped)
        log.warning(
            "left out %d row(s) the model cannot take, e.g. %s (%s): see %s",
            len(skipped),
            skipped[0]["id"],
            skipped[0]["reason"],
            out / "skipped.jsonl",
        )
    if not examples:
        raise AsrtuneError("no training rows left after the checks")
    dataset = WindowDataset(
        loaded,
        examples,
        job.model.task,
        packs(job, loaded),
        job.training.seed,
        timestamps,
        mix,
    )
    log.info(
        "%d utterances (%.0f s of audio) in %d training items (%s)",
        len(examples),
        dataset.audio_seconds(),
        len(dataset),
        mix.summary(),
    )
    return dataset, skipped


# ----- --term_oversample ---------------------------------------------------------------------


def rows_per_term(
    rows: list[Row], terms: TermList, language: str | None, task: str = "transcribe"
) -> list[list[int]]:
    """For each term (file order), the indices of the ``rows`` whose text holds it."""
    held: list[list[int]] = [[] for _ in terms.terms]
    for index, row in enumerate(rows):
        words = tokens(row.text, row.language or language, task)
        for slot, term in enumerate(terms.terms):
            spellings = spelling_tokens(term, row.language or language, task)
            if find_occurrences(words, spellings):
                held[slot].append(index)
    return held


def oversample_terms(
    rows: list[Row],
    terms: TermList,
    target: int,
    language: str | None = None,
    task: str = "transcribe",
) -> tuple[list[Row], dict[str, Any]]:
    """``rows`` plus repeats of the rows that hold a rare term: one held by ``0 < n <
    target`` rows, each of whose rows then appears ``ceil(target / n)`` times in all (a row
    with several rare terms: the largest). Repeats follow the originals, with ids
    ``<id>#term<k>``, the same in every process. Returns the rows and a report:
    ``{"target", "rare_terms": {term: rows holding it}, "added_rows"}``."""
    held = rows_per_term(rows, terms, language, task)
    copies = [1] * len(rows)
    rare: dict[str, int] = {}
    for term, indices in zip(terms.terms, held, strict=True):
        if 0 < len(indices) < target:
            rare[term.term] = len(indices)
            for index in indices:
                copies[index] = max(copies[index], -(-target // len(indices)))
    extra = [
        replace(row, id=f"{row.id}#term{k}")
        for row, n in zip(rows, copies, strict=True)
        for k in range(1, n)
    ]
    report = {"target": target, "rare_terms": rare, "added_rows": len(extra)}
    return rows + extra, report
