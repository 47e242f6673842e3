"""The model card (README.md with YAML front matter) of a published model.

The front matter carries base model, license, languages, datasets, library, pipeline tag
and a ``model-index`` with corpus WER/CER in percent (after fine-tuning, and before when a
baseline report exists); the body has the same results as a table, usage code that runs
for the model's family (its recipe, looked up by :mod:`asrtune.publish.families`), the
family's licence text when its recipe has one, the training hyperparameters from
``training_config.json``, and, when ``asrtune export`` compared exports with the model,
their WER and loops next to its own (``export_parity.json``).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from asrtune.data.manifest import read_manifest
from asrtune.errors import AsrtuneError
from asrtune.models import FAMILIES
from asrtune.publish.bundle import Bundle, ModelInfo, is_hub_id, read_json
from asrtune.publish.families import UsageContext, recipe_for

BASELINE_FILE = "baseline_results.json"
_MODEL_HYPERPARAMETERS = (
    "lora",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_target_modules",
    "freeze_encoder",
    "language",
    "task",
)
_TRAINING_HYPERPARAMETERS = (
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "weight_decay",
    "optim",
    "bf16",
    "fp16",
    "seed",
)
_TRAIN_RESULTS = (
    ("train_runtime", "training time (s)"),
    ("train_loss", "final training loss"),
    ("utterances", "training utterances"),
    ("audio_seconds_per_epoch", "audio seconds per epoch"),
    ("audio_seconds_per_second", "audio seconds trained per second"),
)


def front_matter(text: str) -> dict[str, Any]:
    """The YAML front matter of a README (``---`` ... ``---``), or {}."""
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        return {}
    try:
        data = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def base_license(*bases: str | None) -> str:
    """The base model's license: from the README of a base that is a local folder, else
    its family's (the publish recipe's ``licence``) for a base that is one of a family's
    released checkpoints, else ``other``. ``bases`` are names of the same base (a local
    path, its Hub id), best first."""
    for base in bases:
        readme = Path(base) / "README.md" if base else None
        if readme is not None and readme.is_file():
            license_ = front_matter(readme.read_text(encoding="utf-8")).get("license")
            if license_:
                return str(license_)
    for base in bases:
        for family in FAMILIES:
            license_ = recipe_for(family).licence_of(base)
            if license_:
                return license_
    return "other"


def _language_code(language: str) -> str:
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    key = language.strip().lower()
    return TO_LANGUAGE_CODE.get(key, key)


def languages_of(info: ModelInfo, explicit: list[str] | None = None) -> list[str]:
    """Language codes: ``explicit``, else the training language and the train manifest's."""
    if explicit:
        return sorted({_language_code(x) for x in explicit})
    found: set[str] = set()
    model_cfg = info.training_config.get("model", {})
    if model_cfg.get("language"):
        found.add(_language_code(model_cfg["language"]))
    manifest = info.training_config.get("data", {}).get("train_manifest")
    if manifest and Path(manifest).is_file():
        with contextlib.suppress(AsrtuneError, OSError):  # the card does without
            rows = read_manifest(manifest).rows
            found |= {_language_code(r.language) for r in rows if r.language}
    return sorted(found)


def load_baseline(info: ModelInfo, report: str | Path | None) -> dict[str, Any] | None:
    """The base model's eval report: ``report`` (must exist) or OUT/baseline_results.json."""
    if report is not None:
        data = read_json(Path(report))
        if data is None:
            raise AsrtuneError(f"baseline report not found: {report}")
        return data
    return read_json(info.path / BASELINE_FILE)


def _percent(value: Any) -> float | None:
    return None if value is None else round(100 * float(value), 2)


def _eval_dataset(info: ModelInfo, dataset_repo: str | None) -> dict[str, str]:
    if dataset_repo:
        return {"name": dataset_repo, "type": dataset_repo}
    manifest = (info.eval_results or {}).get("manifest") or info.training_config.get(
        "data", {}
    ).get("eval_manifest")
    name = Path(manifest).name if manifest else "evaluation set"
    return {"name": name, "type": "custom"}


def model_index(
    name: str,
    info: ModelInfo,
    baseline: dict[str, Any] | None,
    dataset_repo: str | None,
) -> list[dict[str, Any]]:
    """``model-index`` entries: corpus WER/CER in percent, the base's too when known."""
    if not info.eval_results:
        return []
    metrics = []
    keys = _rates_headline_first(info.eval_results)[:2]
    for key in keys:
        if info.eval_results.get(key) is not None:
            metrics.append(
                {"type": key, "value": _percent(info.eval_results[key]), "name": key.upper()}
            )
    for key in keys:
        label = key.upper()
        if baseline and baseline.get(key) is not None:
            metrics.append(
                {
                    "type": key,
                    "value": _percent(baseline[key]),
                    "name": f"{label} of the base model (before fine-tuning)",
                }
            )
    if not metrics:
        return []
    return [
        {
            "name": name,
            "results": [
                {
                    "task": {
                        "type": "automatic-speech-recognition",
                        "name": "Automatic Speech Recognition",
                    },
                    "dataset": _eval_dataset(info, dataset_repo),
                    "metrics": metrics,
                }
            ],
        }
    ]


def _rates_headline_first(report: dict[str, Any] | None) -> tuple[str, ...]:
    """The report's rates, its headline first (CER for languages written without spaces)."""
    if (report or {}).get("headline") == "cer":
        return ("cer", "wer", "wer_unnormalized")
    return ("wer", "cer", "wer_unnormalized")


_RATE_NAMES = {"wer": "WER", "cer": "CER", "wer_unnormalized": "WER on raw text"}


def _results_table(info: ModelInfo, baseline: dict[str, Any] | None) -> str:
    rows = [("base model (before fine-tuning)", baseline)] if baseline else []
    rows.append(("this model", info.eval_results))
    keys = _rates_headline_first(info.eval_results)
    lines = [
        f"| model | {' | '.join(_RATE_NAMES[k] for k in keys)} |",
        "| --- | --- | --- | --- |",
    ]
    for label, report in rows:
        cells = []
        for key in keys:
            value = _percent((report or {}).get(key))
            cells.append("–" if value is None else f"{value:.2f} %")
        lines.append(f"| {label} | {' | '.join(cells)} |")
    details = [line for label, report in rows if (line := _error_details(label, report))]
    if details:
        lines += ["", *details]
    report = info.eval_results or {}
    lines += [
        "",
        f"Corpus-level rates (total errors / total reference words) on "
        f"{report.get('num_samples', '?')} utterances ({report.get('reference_words', '?')} "
        "reference words), after text normalization (Whisper's English normalizer for "
        "English and translations; casefolding and punctuation removal that keeps accents "
        "and combining marks for other languages; in languages written without spaces each "
        "character counts as a word). Lower is better. The numbers are in "
        "`eval_results.json`.",
    ]
    return "\n".join(lines)


def guard_table(report: dict[str, Any] | None) -> str | None:
    """The guard sets (``asrtune train --guard``): each one's rate on the base model and on
    this model, and the change; None when training had none."""
    guards = (report or {}).get("guards")
    if not guards or not guards.get("sets"):
        return None
    lines = [
        "| guard set | rows | base model | this model | change |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, entry in guards["sets"].items():
        key = entry.get("headline", "wer")
        before, after = _percent(entry.get(f"base_{key}")), _percent(entry.get(key))
        change = _percent(entry.get("change"))
        lines.append(
            f"| {name} | {entry.get('num_samples', '?')} | "
            f"{'–' if before is None else f'{before:.2f} %'} | "
            f"{'–' if after is None else f'{after:.2f} %'} {_RATE_NAMES[key]} | "
            f"{'–' if change is None else f'{change:+.2f} points'} |"
        )
    lines += [
        "",
        "Guard sets are speech outside the training data (other voices, other topics), "
        "scored like the evaluation above: a fine-tune should not make them worse.",
    ]
    if "within_limit" in guards:
        verdict = "within" if guards["within_limit"] else "**beyond**"
        lines.append(
            f"Checkpoints were chosen among those at most {100 * guards['max_regression']:.1f} "
            f"points worse on every guard set; this model is {verdict} that limit."
        )
    return "\n".join(lines)


def term_table(
    report: dict[str, Any] | None, baseline: dict[str, Any] | None = None, shown: int = 10
) -> str | None:
    """The user's terms (``asrtune eval/train --terms``): recall and false alarms of this
    model (and of the base model when its report has terms), then the ``shown`` terms
    missed most and what they were heard as; None when the report has no terms."""
    terms = (report or {}).get("terms")
    if not terms:
        return None
    lines = []
    for label, entry in (("base model", (baseline or {}).get("terms")), ("this model", terms)):
        if entry:
            recall = "–" if entry["recall"] is None else f"{100 * entry['recall']:.1f} %"
            lines.append(
                f"- {label}: term recall {recall} ({entry['recognized']} of "
                f"{entry['occurrences']} occurrences), {entry['false_alarms']} false alarm(s)"
            )
    missed = [t for t in terms["per_term"] if t["recognized"] < t["occurrences"]]
    missed.sort(key=lambda t: t["recognized"] - t["occurrences"])
    if missed:
        lines += ["", "| term | occurrences | recognized | heard as |", "| --- | --- | --- | --- |"]
        for t in missed[:shown]:
            heard = ", ".join(f"“{h}”" if h else "(nothing)" for h in t["misrecognized_as"])
            lines.append(f"| {t['term']} | {t['occurrences']} | {t['recognized']} | {heard} |")
    lines += [
        "",
        "Terms are counted on whole words after the same normalization as WER; a false "
        "alarm is a term said more often than the reference has it.",
    ]
    return "\n".join(lines)


def _error_details(label: str, report: dict[str, Any] | None) -> str | None:
    """One line of a report's word-error kinds, decoding loops and long-file WER."""
    if not report or "substitutions" not in report:
        return None
    parts = [
        f"{report['substitutions']} substituted, {report['deletions']} deleted and "
        f"{report['insertions']} inserted words",
        f"{report.get('loops', 0)} of {report.get('num_samples', '?')} transcripts caught in "
        "a repetition loop",
    ]
    longform = report.get("longform")
    if longform:
        parts.append(f"WER {_percent(longform['wer']):.2f} % on {longform['files']} long file(s)")
    nonspeech = report.get("nonspeech")
    if nonspeech:
        parts.append(
            f"{nonspeech['words']} word(s) said on {nonspeech['clips_with_words']} of "
            f"{nonspeech['clips']} clips without speech (silence, noise)"
        )
    return f"- {label}: " + "; ".join(parts) + "."


def _parity_table(info: ModelInfo) -> str | None:
    """The exports ``asrtune export`` compared with this model (export_parity.json), or None."""
    from asrtune.publish.parity import read_parity

    entries = read_parity(info.path)
    if not entries:
        return None
    lines = [
        "| export | rows | WER transformers | WER export | loops transformers | loops export |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for entry in entries:
        name = entry.get("format", "?") + (
            f" ({entry['quantization']})" if entry.get("quantization") else ""
        )
        hf, exported = entry.get("hf", {}), entry.get("exported", {})
        lines.append(
            f"| {name} | {entry.get('samples', '?')} | {_percent(hf.get('wer'))} % | "
            f"{_percent(exported.get('wer'))} % | {hf.get('loops', '?')} | "
            f"{exported.get('loops', '?')} |"
        )
    lines += [
        "",
        "The same rows transcribed greedily by this model (transformers, float32) and by its "
        "exports (`asrtune export`; ct2: CTranslate2 in its weight type, onnx: onnxruntime), "
        "scored like the evaluation above; loops: transcripts caught in a repetition loop. "
        "The numbers are in `export_parity.json`.",
    ]
    return "\n".join(lines)


def _hyperparameters(info: ModelInfo) -> str:
    cfg = info.training_config
    rows = []
    for key in _MODEL_HYPERPARAMETERS:
        value = cfg.get("model", {}).get(key)
        if key.startswith("lora_") and not cfg.get("model", {}).get("lora"):
            continue
        if value not in (None, False) or key == "lora":
            rows.append((key, value))
    if "pack" in cfg.get("data", {}):
        rows.append(("pack (several utterances per 30-s window)", cfg["data"]["pack"]))
    for key in _TRAINING_HYPERPARAMETERS:
        value = cfg.get("training", {}).get(key)
        if value is None or (key == "max_steps" and value <= 0):
            continue
        rows.append((key, value))
    lines = ["| hyperparameter | value |", "| --- | --- |"]
    lines += [f"| {key} | `{value}` |" for key, value in rows]
    results = [
        (label, info.train_results[key])
        for key, label in _TRAIN_RESULTS
        if info.train_results.get(key) is not None
    ]
    if results:
        lines += ["", "| training result | value |", "| --- | --- |"]
        lines += [
            f"| {label} | {round(value, 4) if isinstance(value, float) else value} |"
            for label, value in results
        ]
    return "\n".join(lines)


def _versions(adapter: bool) -> str:
    packages = ["asrtune", "transformers", *(["peft"] if adapter else []), "torch"]
    found = []
    for package in packages:
        try:
            found.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def base_hub_id(base: str | None) -> str | None:
    """The Hub id of the base model: ``base`` itself when it is one, else the
    ``_name_or_path`` a local base's config.json records (transformers writes it when it
    saves a model loaded from the Hub), else None."""
    if base is None or is_hub_id(base):
        return base
    config = read_json(Path(base) / "config.json") if Path(base).is_dir() else None
    recorded = str((config or {}).get("_name_or_path") or "")
    return recorded if is_hub_id(recorded) else None


def _base_link(base: str | None) -> str:
    """The base model as the card's first line names it: a link to its Hub page, or "a
    local model" (a path on the machine that published it means nothing to a reader)."""
    hub_id = base_hub_id(base)
    if hub_id:
        return f"[{hub_id}](https://huggingface.co/{hub_id})"
    return "a local model" if base else "a base model"


def dataset_exists(repo_id: str | None) -> bool:
    """Whether the Hub has the dataset ``repo_id`` (False when it cannot be asked: offline,
    or a dry run whose dataset was never uploaded). A card names only datasets that exist."""
    if not repo_id:
        return False
    from huggingface_hub import HfApi

    try:
        return bool(HfApi().repo_exists(repo_id, repo_type="dataset"))
    except Exception:  # offline mode, no network, a refused request
        return False


def build_card(
    bundle: Bundle,
    repo_id: str,
    *,
    dataset_repo: str | None = None,
    baseline: dict[str, Any] | None = None,
    languages: list[str] | None = None,
) -> str:
    """README.md for ``repo_id`` publishing ``bundle``; see the module docstring."""
    info = bundle.info
    recipe = recipe_for(info.family)
    langs = languages_of(info, languages)
    name = repo_id.rsplit("/", 1)[-1]
    hub_base = base_hub_id(bundle.base_model)
    dataset_repo = dataset_repo if dataset_exists(dataset_repo) else None
    meta: dict[str, Any] = {"license": base_license(info.base_model, bundle.base_model)}
    if hub_base:
        meta["base_model"] = hub_base
        meta["base_model_relation"] = {"adapter": "adapter", "merged": "merge"}.get(
            bundle.kind, "merge" if info.lora else "finetune"
        )
    if langs:
        meta["language"] = langs
    if dataset_repo:
        meta["datasets"] = [dataset_repo]
    meta["library_name"] = "peft" if bundle.kind == "adapter" else "transformers"
    meta["pipeline_tag"] = "automatic-speech-recognition"
    meta["tags"] = ["asrtune", info.family, *(["lora"] if info.lora else [])]
    if info.eval_results:
        meta["metrics"] = ["wer", "cer"]
        meta["model-index"] = model_index(name, info, baseline, dataset_repo)

    kind = "merged" if bundle.kind == "model" and info.lora else bundle.kind
    what = {
        "adapter": "A LoRA adapter for",
        "merged": "A LoRA fine-tune, merged into a standalone model, of",
        "model": "A fine-tuned version of",
    }[kind]
    lang_text = f" ({', '.join(langs)})" if langs else ""
    usage = recipe.usage(
        UsageContext(
            model_id=repo_id,
            base_model=bundle.base_model if bundle.kind == "adapter" else None,
            language=langs[0] if len(langs) == 1 else None,
            generation_config=bundle.generation_config,
            own_generation_config=bundle.kind == "adapter"
            and "generation_config.json" in bundle.files,
            language_adapter=language_adapter(bundle.files),
        )
    )
    packages = [
        "transformers",
        *(["peft"] if bundle.kind == "adapter" else []),
        "soundfile",
        "soxr",
        *recipe.requirements,
    ]
    pip = " ".join(f"'{p}'" if any(c in p for c in "[]<>=") else p for p in packages)
    trained_on = (
        f" on [{dataset_repo}](https://huggingface.co/datasets/{dataset_repo})"
        if dataset_repo
        else ""
    )
    parts = [
        "---",
        yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip(),
        "---",
        "",
        f"# {name}",
        "",
        f"{what} {_base_link(bundle.base_model)} for speech recognition{lang_text}, "
        f"trained with [asrtune](https://pypi.org/project/asrtune/){trained_on}.",
        "",
    ]
    if recipe.card_text:
        parts += [recipe.card_text, ""]
    if info.eval_results:
        parts += ["## Evaluation", "", _results_table(info, baseline), ""]
    terms = term_table(info.eval_results, baseline)
    if terms:
        parts += ["### Domain terms", "", terms, ""]
    guards = guard_table(info.eval_results)
    if guards:
        parts += ["### Guard sets: general speech, before and after", "", guards, ""]
    parity = _parity_table(info)
    if parity:
        parts += ["## Exported model parity", "", parity, ""]
    parts += [
        "## Usage",
        "",
        f"`pip install {pip}`, then:",
        "",
        "```python",
        usage.rstrip(),
        "```",
        "",
    ]
    if info.training_config or info.train_results:
        parts += ["## Training", "", _hyperparameters(info), ""]
    parts += ["## Framework versions", "", _versions(bundle.kind == "adapter"), ""]
    return "\n".join(parts)


_LANGUAGE_ADAPTER = re.compile(r"adapter\.([\w-]+)\.safetensors")


def language_adapter(files: Iterable[str]) -> str | None:
    """The language code of an MMS adapter file (``adapter.<code>.safetensors``), if any."""
    return next((m[1] for f in files if (m := _LANGUAGE_ADAPTER.fullmatch(f))), None)
