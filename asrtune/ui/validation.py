"""What the page refuses before a run starts: the Train tab's numbers, the model, the
training sources, the language. Each check returns a problem for the page (a string) or
None, never raises; :func:`form_problems` runs them all. The CLI's own checks
(:func:`asrtune.config.train_job_from_kwargs`) run after these in
:func:`asrtune.ui.jobs.prepare_run`, so the page refuses at least what the CLI refuses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asrtune.errors import AsrtuneError
from asrtune.models.languages import language_problem

#: Suffixes of the manifests :func:`asrtune.data.manifest.read_manifest` reads.
MANIFEST_SUFFIXES = (".jsonl", ".json", ".ndjson", ".csv", ".tsv")


@dataclass(frozen=True)
class NumberRule:
    """A numeric field of the Train tab: its label on the page and its allowed range
    (``above``: strictly greater than; ``at_least``: greater or equal)."""

    label: str
    integer: bool = False
    above: float | None = None
    at_least: float | None = None
    at_most: float | None = None
    optional: bool = False  # empty means "the default"


#: The form's numbers (keys of the form dict) and what each may be.
NUMBER_RULES: dict[str, NumberRule] = {
    "num_train_epochs": NumberRule("Epochs", above=0),
    "learning_rate": NumberRule("Learning rate", above=0, at_most=1, optional=True),
    "per_device_train_batch_size": NumberRule("Batch size", integer=True, at_least=1),
    "lora_r": NumberRule("LoRA r", integer=True, at_least=1),
    "lora_alpha": NumberRule("LoRA alpha", integer=True, at_least=1),
    "eval_fraction": NumberRule("Recordings held out for eval", at_least=0, at_most=0.5),
    "logging_steps": NumberRule("Log every N steps", integer=True, at_least=1),
    "max_steps": NumberRule("Max steps", integer=True, at_least=-1),  # -1 or 0: by epochs
    "max_guard_regression": NumberRule("Max guard regression", at_least=0, optional=True),
}


def number_problem(rule: NumberRule, value: Any) -> str | None:
    """Why ``value`` does not fit ``rule`` (None: it does)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None if rule.optional else f"{rule.label}: type a number"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return f"{rule.label}: {value!r} is not a number"
    if not math.isfinite(number):
        return f"{rule.label}: {value!r} is not a finite number"
    if rule.integer and number != int(number):
        return f"{rule.label}: a whole number, not {value}"
    if rule.above is not None and number <= rule.above:
        return f"{rule.label}: more than {rule.above:g}, not {number:g}"
    if rule.at_least is not None and number < rule.at_least:
        return f"{rule.label}: at least {rule.at_least:g}, not {number:g}"
    if rule.at_most is not None and number > rule.at_most:
        return f"{rule.label}: at most {rule.at_most:g}, not {number:g}"
    return None


def number_problems(form: dict[str, Any]) -> list[str]:
    """The form's numbers that are missing or out of range (LoRA's only with LoRA)."""
    problems = []
    for key, rule in NUMBER_RULES.items():
        if key.startswith("lora_") and not form.get("lora"):
            continue
        problem = number_problem(rule, form.get(key))
        if problem:
            problems.append(problem)
    return problems


def model_family(model: str) -> tuple[str | None, str | None]:
    """(registered family, None) of a model folder or Hub id, or (None, why not)."""
    from asrtune.models import detect_family

    if not model:
        return None, "choose a model (a size, or a local folder)"
    path = Path(model).expanduser()
    looks_like_path = model.startswith((".", "/", "~")) or path.exists()
    if looks_like_path and not path.is_dir():
        return None, f"model folder {model}: no such folder"
    try:
        return detect_family(model), None
    except AsrtuneError as exc:
        return None, f"model folder {model}: {exc}"
    except (OSError, ValueError) as exc:
        return None, f"model folder {model}: {type(exc).__name__}: {exc}"


def model_language_problem(model: str, language: str | None) -> str | None:
    """Why the chosen ``model`` (or, with none yet, the default family) cannot take
    ``language``."""
    from asrtune.models import FAMILIES

    family, _ = model_family(model)
    return language_problem(family or next(iter(FAMILIES)), language)


def source_problem(text: str, role: str, granary_root: str = "") -> str | None:
    """Why a typed source (``role``: training or eval) cannot be read: a manifest that is
    missing, unreadable or of an unknown format, a missing folder, a Hub dataset that does
    not exist (or cannot be reached when not downloaded), Granary without its audio root."""
    from asrtune.data.sources import parse_source
    from asrtune.ui.models import hub_dataset_unreachable

    try:
        spec = parse_source(text)
    except AsrtuneError as exc:
        return f"{role} source: {exc}"
    path = Path(spec.name).expanduser()
    if spec.kind == "manifest":
        if not path.is_file():
            return f"{role} source: no such manifest file: {spec.name}"
        if path.suffix.lower() not in MANIFEST_SUFFIXES:
            known = ", ".join(MANIFEST_SUFFIXES)
            return f"{role} source: {spec.name} is not a manifest ({known})"
        try:
            with open(path, "rb") as handle:
                handle.read(1)
        except OSError as exc:
            return f"{role} source: cannot read {spec.name}: {exc.strerror or exc}"
    if spec.kind == "hub":
        problem = hub_dataset_unreachable(spec.name)
        if problem:
            return f"{role} source: {problem}"
    if spec.kind == "granary":
        if not granary_root:
            return "Granary holds manifests only: type the Granary audio root."
        if not Path(granary_root).expanduser().is_dir():
            return f"Granary audio root: no such folder: {granary_root}"
    return None


def settings_source_problems(settings: dict[str, Any]) -> list[str]:
    """The saved named sources' problems (none when training on the recordings)."""
    if settings["data_source"] == "recordings":
        return []
    train, evaluation = settings["train_source"].strip(), settings["eval_source"].strip()
    if not train:
        return ["no training source: type one in the Data tab"]
    root = settings.get("granary_audio_root") or ""
    problems = [source_problem(train, "training", root)]
    if evaluation:
        problems.append(source_problem(evaluation, "eval", root))
    return [p for p in problems if p]


def form_problems(
    form: dict[str, Any], settings: dict[str, Any], row_languages: dict[str, str] | None = None
) -> list[str]:
    """Everything wrong with starting a run of ``form`` on the project's ``settings``:
    numbers, model, languages (the project's, and ``row_languages``: language → the id of
    a row with it), sources. Empty when the run may start."""
    problems = number_problems(form)
    family, problem = model_family(str(form.get("model") or ""))
    if problem:
        problems.append(problem)
    elif family:
        languages = {settings.get("language") or "": "", **(row_languages or {})}
        for language, row_id in languages.items():
            problem = language_problem(family, language)
            if problem:
                where = f"row {row_id}" if row_id else "language"
                problems.append(f"{where}: {problem}")
    return problems + settings_source_problems(settings)
