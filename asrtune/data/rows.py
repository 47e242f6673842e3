"""Turn sources into usable rows: read, probe audio, split off what cannot be used.

Nothing is dropped silently: every row left out comes back with a reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from asrtune.data.manifest import BadRow, Manifest, Row
from asrtune.data.sources import (
    HubOptions,
    SourceSpec,
    mix_rows,
    parse_source,
    read_source,
    stream_source,
)
from asrtune.data.validate import NONSPEECH_NOTE, validate_rows

log = logging.getLogger("asrtune")


@dataclass(frozen=True)
class LoadedRows:
    """Rows with measured durations, and the lines that could not be used."""

    source: str
    rows: list[Row]
    invalid: list[BadRow]

    def summary(self) -> str:
        return f"{self.source}: {len(self.rows)} usable rows, {len(self.invalid)} invalid"


def load_rows(
    source: str | Path | SourceSpec,
    language: str | None = None,
    options: HubOptions | None = None,
    limit: int | None = None,
    nonspeech_ok: bool = False,
) -> LoadedRows:
    """Read a source (``language`` filling the rows without one), and decode every file once
    (:func:`~asrtune.data.validate.validate_rows`: the same check as ``asrtune data check``).

    With ``options.streaming`` only the first ``limit`` rows (default 500) are read.
    ``nonspeech_ok``: an evaluation set, where rows without text are non-speech probes.
    """
    spec = source if isinstance(source, SourceSpec) else parse_source(str(source))
    options = options or HubOptions()
    parsed = (
        read_stream_head(spec, options, limit or 500, language)
        if options.streaming
        else read_source(spec, options, language)
    )
    report = validate_rows(
        parsed.rows, parsed.bad_rows, source=Path(spec.name).name, nonspeech_ok=nonspeech_ok
    )
    probes = sum(w.reason == NONSPEECH_NOTE for w in report.warnings)
    if probes:
        log.info("%s: %d non-speech probe(s) (rows without text)", spec.label(), probes)
    others = [w for w in report.warnings if w.reason != NONSPEECH_NOTE]
    if others:
        log.warning(
            "%s: %d warning(s), e.g. line %s: %s (asrtune data check lists all)",
            spec.label(),
            len(others),
            others[0].line,
            others[0].reason,
        )
    return LoadedRows(spec.label(), report.rows, report.problems)


def read_stream_head(
    spec: SourceSpec, options: HubOptions, limit: int, language: str | None = None
) -> Manifest:
    """The first ``limit`` rows of a streamed source (``language`` fills rows without one)."""
    records, to_row = stream_source(spec, options, language)
    items = [to_row(record, i) for i, record in enumerate(islice(records, limit), start=1)]
    return Manifest(
        Path(spec.name),
        [r for r in items if isinstance(r, Row)],
        [b for b in items if isinstance(b, BadRow)],
    )


def combine(loaded: list[LoadedRows], specs: list[SourceSpec], seed: int) -> list[Row]:
    """One source's rows as they are; several sources mixed by weight."""
    if len(loaded) == 1:
        return loaded[0].rows
    return mix_rows([(lr.rows, spec.weight) for lr, spec in zip(loaded, specs, strict=True)], seed)
