"""``asrtune data check`` (and the UI's check): a source validated row by row, optionally
against a model (its languages, vocabulary and limits), by training's admission rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from asrtune.data.sources import read_source
from asrtune.data.validate import ValidationReport, validate_rows


def check_manifest(
    path: str | Path,
    model: str | None = None,
    language: str | None = None,
    *,
    task: str = "transcribe",
    progress: bool = True,
    allow_pickle: bool = False,
    options: Any = None,
    nonspeech_ok: bool = False,
    allow_unknown_tokens: bool = False,
) -> ValidationReport:
    """Validate a source (manifest, audio folder, ``hf:`` dataset, ``granary:``), optionally
    against ``model``'s limits and tokenizer.

    ``language`` fills rows that have none (as ``asrtune train --language`` does, where
    the rows are read); ``nonspeech_ok``, ``allow_unknown_tokens``: see
    :func:`validate_rows`.
    """
    manifest = read_source(str(path), options, language)
    fit = None
    if model is not None:
        from asrtune.models import load_model  # only with a model: torch is slow to import
        from asrtune.models.fit import ModelFit

        loaded = load_model(model, allow_pickle=allow_pickle)
        if language:  # an unknown --language is a flag error, not one per row
            loaded.adapter.encode_labels(loaded, ["a"], language, task)
        fit = ModelFit(loaded, task, None, allow_unknown_tokens)
    return validate_rows(
        manifest.rows,
        manifest.bad_rows,
        fit,
        progress,
        source=str(manifest.path),
        nonspeech_ok=nonspeech_ok,
    )
