"""Guard sets: general speech a fine-tune must not forget, measured against the base model.

``--guard NAME=SOURCE`` (repeatable) names a set of rows outside the training domain
(other voices, other topics). Training evaluates each guard set on the base model before
the first step and again at every evaluation; a guard's *change* is the fine-tuned
model's headline rate (WER, or CER for languages written without spaces) minus the base
model's, in absolute terms (+0.02 = two points worse). ``--max_guard_regression X`` keeps
the best checkpoint among those whose every guard changed by at most ``X``: its metric
``guarded_<metric>`` is the eval metric when the guards hold, else infinity.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from asrtune.errors import AsrtuneError
from asrtune.evaluation import EvalResult

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
#: Prefix of the checkpoint metric that honours --max_guard_regression.
GUARDED = "guarded_"


def parse_guard(spec: str) -> tuple[str, str]:
    """``"NAME=SOURCE"`` → (name, source); the name becomes part of metric names, so it
    holds letters, digits, ``_`` and ``-`` only."""
    name, sep, source = spec.partition("=")
    name, source = name.strip(), source.strip()
    if not sep or not name or not source:
        raise AsrtuneError(f"--guard takes NAME=SOURCE (e.g. general=guard.jsonl), not {spec!r}")
    if not _NAME.match(name):
        raise AsrtuneError(f"--guard name {name!r}: use letters, digits, _ and - only")
    return name, source


def parse_guards(specs: list[str] | None) -> dict[str, str]:
    """Every ``--guard`` as {name: source}; a name given twice is an error."""
    guards: dict[str, str] = {}
    for spec in specs or []:
        name, source = parse_guard(spec)
        if name in guards:
            raise AsrtuneError(f"--guard {name} is given twice")
        guards[name] = source
    return guards


def change(result: EvalResult, base: EvalResult) -> float:
    """Headline rate after minus before (positive: the guard got worse)."""
    return result.score.headline_rate - base.score.headline_rate


def within_limit(
    results: Mapping[str, EvalResult], baseline: Mapping[str, EvalResult], limit: float
) -> bool:
    """Whether every guard's change is at most ``limit``."""
    return all(change(results[name], baseline[name]) <= limit + 1e-12 for name in results)


def guard_metrics(
    prefix: str, results: Mapping[str, EvalResult], baseline: Mapping[str, EvalResult]
) -> dict[str, float]:
    """``<prefix>_guard_<name>_<headline>`` and ``..._change`` for the trainer's log."""
    metrics = {}
    for name, result in results.items():
        key = f"{prefix}_guard_{name}"
        metrics[f"{key}_{result.score.headline}"] = result.score.headline_rate
        if name in baseline:
            metrics[f"{key}_change"] = change(result, baseline[name])
    return metrics


def guarded_value(value: float, within: bool) -> float:
    """The checkpoint metric under --max_guard_regression: ``value`` or infinity."""
    return value if within else math.inf


def guard_report(
    results: Mapping[str, EvalResult],
    baseline: Mapping[str, EvalResult],
    limit: float | None = None,
) -> dict[str, Any]:
    """For eval_results.json and the model card: each guard's rates now and before."""
    report: dict[str, Any] = {}
    for name, result in results.items():
        base = baseline.get(name)
        entry = {
            "headline": result.score.headline,
            "wer": result.score.wer,
            "cer": result.score.cer,
            "num_samples": result.score.num_samples,
        }
        if base is not None:
            entry |= {
                "base_wer": base.score.wer,
                "base_cer": base.score.cer,
                "change": change(result, base),
            }
        if result.nonspeech is not None:
            entry["nonspeech"] = result.nonspeech.as_dict()
        report[name] = entry
    if limit is not None and baseline:
        return {
            "sets": report,
            "max_regression": limit,
            "within_limit": within_limit(results, baseline, limit),
        }
    return {"sets": report}
