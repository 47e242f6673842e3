"""What a user of a fine-tuned model needs from an ``asrtune train`` output folder.

:func:`describe` reads the facts the model card and the demo app are built from;
:func:`model_bundle` picks the files to publish: safetensors weights, configs (model,
generation, adapter) and processor files. Checkpoints, optimizer/scheduler/RNG state,
``training_args.bin`` (a pickle) and row lists with local paths are never part of it.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asrtune.errors import AsrtuneError
from asrtune.models import adapter_base, detect_family

log = logging.getLogger("asrtune")

CONFIG_FILES = frozenset({"config.json", "generation_config.json", "adapter_config.json"})
# Files a processor (feature extractor + tokenizer) may be saved as, for every family.
PROCESSOR_FILES = frozenset(
    {
        "processor_config.json",
        "preprocessor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.json",
        "merges.txt",
        "normalizer.json",
        "chat_template.json",
        "chat_template.jinja",
        "tekken.json",
        "tokenizer.model",
    }
)
MODES = ("auto", "adapter", "merged")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AsrtuneError(f"cannot read {path}: {exc}") from exc


def is_hub_id(name: str | None) -> bool:
    """True for ``openai/whisper-small``-like names that are no local path."""
    return bool(name) and not Path(name).exists() and bool(_HUB_ID.fullmatch(name))


def model_files(folder: Path) -> dict[str, Path]:
    """The files of ``folder`` (top level only) that make up a loadable model/adapter."""
    files = {}
    for path in sorted(folder.iterdir()):
        name = path.name
        wanted = (
            name.endswith((".safetensors", ".safetensors.index.json"))
            or name in CONFIG_FILES
            or name in PROCESSOR_FILES
        )
        if wanted and path.is_file():
            files[name] = path
    return files


@dataclass(frozen=True)
class ModelInfo:
    """An output folder of ``asrtune train`` (or any model/adapter folder).

    ``base_model`` is what was fine-tuned: the adapter's base, else the training config's
    ``model``; ``None`` when unknown.
    """

    path: Path
    family: str
    is_adapter: bool
    base_model: str | None
    training_config: dict[str, Any]
    train_results: dict[str, Any]
    eval_results: dict[str, Any] | None

    @property
    def lora(self) -> bool:
        return self.is_adapter or bool(self.training_config.get("model", {}).get("lora"))


def describe(out: str | Path) -> ModelInfo:
    out = Path(out)
    if not out.is_dir():
        raise AsrtuneError(f"{out} is not a folder")
    if not (out / "config.json").is_file() and not (out / "adapter_config.json").is_file():
        raise AsrtuneError(f"{out} holds no model (no config.json or adapter_config.json)")
    base = adapter_base(str(out))
    # OUT/merged of a LoRA run: the run's reports and base are in OUT
    run = out
    if not (out / "training_config.json").is_file() and adapter_base(str(out.parent)):
        run = out.parent
    training_config = read_json(run / "training_config.json") or {}
    return ModelInfo(
        path=out,
        family=detect_family(str(out)),
        is_adapter=base is not None,
        base_model=base
        or (adapter_base(str(run)) if run != out else None)
        or training_config.get("model", {}).get("model"),
        training_config=training_config,
        train_results=read_json(run / "train_results.json") or {},
        eval_results=read_json(run / "eval_results.json"),
    )


@dataclass
class Bundle:
    """Files to publish (``path in repo → source file or content``) and what they hold.

    ``kind`` is ``adapter`` (LoRA weights + processor, loaded onto ``base_model``),
    ``merged`` (a LoRA adapter merged into its base) or ``model`` (a full model).
    ``base_model`` is the base's Hub id, or its local path when no Hub id is known.
    """

    kind: str
    files: dict[str, Path | bytes]
    info: ModelInfo
    base_model: str | None
    generation_config: dict[str, Any] | None


def _resolve_kind(info: ModelInfo, mode: str, hub_base: str | None) -> str:
    if mode not in MODES:
        raise AsrtuneError(f"unknown mode {mode!r} (known: {', '.join(MODES)})")
    if not info.is_adapter:
        if mode == "adapter":
            raise AsrtuneError(f"{info.path} is a full model, not a LoRA adapter")
        return "model"
    if mode == "merged":
        return "merged"
    if hub_base is not None:
        return "adapter"
    if mode == "adapter":
        raise AsrtuneError(
            f"the adapter's base model {info.base_model} is a local folder that others cannot "
            "load: pass --base-model with its Hub id, or publish --merged"
        )
    log.info("the adapter's base %s is a local folder: publishing a merged model", info.base_model)
    return "merged"


@contextmanager
def model_bundle(
    out: str | Path, mode: str = "auto", base_model: str | None = None
) -> Iterator[Bundle]:
    """The files to publish from ``out``; a merge, when needed, lives until the block ends.

    ``mode``: ``adapter`` publishes a LoRA adapter as is, ``merged`` merges it into its
    base first, ``auto`` publishes the adapter when its base is on the Hub (or
    ``base_model`` names it there) and merges otherwise. Full models are published as is.
    """
    info = describe(out)
    hub_base = base_model or (info.base_model if is_hub_id(info.base_model) else None)
    kind = _resolve_kind(info, mode, hub_base)
    with tempfile.TemporaryDirectory(prefix="asrtune-merge-") as tmp:
        folder = info.path
        if kind == "merged":
            prebuilt = info.path / "merged"
            if (prebuilt / "config.json").is_file():
                folder = prebuilt
            else:
                from asrtune.publish.merge import merge_adapter

                folder = merge_adapter(info.path, Path(tmp) / "merged")
        files: dict[str, Path | bytes] = dict(model_files(folder))
        if kind == "adapter":
            config = read_json(info.path / "adapter_config.json") or {}
            if config.get("base_model_name_or_path") != hub_base:
                config["base_model_name_or_path"] = hub_base
                files["adapter_config.json"] = (json.dumps(config, indent=2) + "\n").encode()
        elif "model.safetensors" not in files and not any(
            name.endswith(".safetensors") for name in files
        ):
            raise AsrtuneError(f"{folder} holds no safetensors weights")
        generation = read_json(folder / "generation_config.json")
        if generation is None and info.base_model and Path(info.base_model).is_dir():
            generation = read_json(Path(info.base_model) / "generation_config.json")
        yield Bundle(kind, files, info, hub_base or info.base_model, generation)


def write_files(files: dict[str, Path | bytes], dst: str | Path) -> Path:
    """Write ``files`` (see :class:`Bundle`) into ``dst``, which must be new or empty."""
    import shutil

    dst = Path(dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise AsrtuneError(f"{dst} already exists and is not empty")
    for name, source in sorted(files.items()):
        target = dst / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, bytes):
            target.write_bytes(source)
        else:
            shutil.copyfile(source, target)
    return dst
