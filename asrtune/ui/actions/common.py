"""The Train form's defaults and what every action shares: the user errors shown as a
message, and how they read."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from asrtune.config import LEARNING_RATES, TRAINING_DEFAULTS, ModelConfig
from asrtune.errors import AsrtuneError
from asrtune.models import FAMILIES
from asrtune.ui.project import Project
from asrtune.ui.result import Result

_MODEL_DEFAULTS = {f.name: f.default for f in fields(ModelConfig)}
#: The Train tab's values when the project has none: asrtune's own defaults.
FORM_DEFAULTS: dict[str, Any] = {
    "model": "",
    "lora": False,
    "num_train_epochs": TRAINING_DEFAULTS["num_train_epochs"],
    "learning_rate": None,  # empty: the default for the method and model (LEARNING_RATE_HINT)
    "per_device_train_batch_size": TRAINING_DEFAULTS["per_device_train_batch_size"],
    "lora_r": _MODEL_DEFAULTS["lora_r"],
    "lora_alpha": _MODEL_DEFAULTS["lora_alpha"],
    "freeze_encoder": _MODEL_DEFAULTS["freeze_encoder"],
    "eval_fraction": 0.1,
    "logging_steps": TRAINING_DEFAULTS["logging_steps"],
    "max_steps": -1,
    "report_to": TRAINING_DEFAULTS["report_to"],
    "baseline": True,
    "guard": "",  # NAME=SOURCE lines: general speech measured against the base model
    "max_guard_regression": None,
    "extra": "",
}


#: What an empty Learning rate field trains with.
LEARNING_RATE_HINT = (
    f"Empty: {LEARNING_RATES['full']:g} for full fine-tuning; for LoRA "
    + ", ".join(f"{family.lora_learning_rate:g} ({family.label})" for family in FAMILIES.values())
)


def saved_form(project: Project) -> dict[str, Any]:
    """The Train tab's last values (asrtune's defaults for what was never set)."""
    return {**FORM_DEFAULTS, **(project.settings().get("train_form") or {})}


#: Failures shown on the page as a message: asrtune's own, and what loading a model or a
#: file can raise (a Hub id that cannot be downloaded, a missing optional package).
USER_ERRORS = (AsrtuneError, OSError, ValueError, ImportError)


def refusal(exc: Exception, **details: Any) -> Result:
    """A user error as a refused :class:`Result`: asrtune's message as it is; another
    error's type and first line."""
    if isinstance(exc, AsrtuneError):
        return Result.refused(str(exc), **details)
    lines = str(exc).strip().splitlines()
    return Result.refused(f"{type(exc).__name__}: {lines[0] if lines else ''}", **details)


def error_text(exc: Exception) -> str:
    if isinstance(exc, AsrtuneError):
        return f"✗ {exc}"
    lines = str(exc).strip().splitlines()
    return f"✗ {type(exc).__name__}: {lines[0] if lines else ''}"
