"""Model-family registry: a family name → the adapter module that knows that architecture.

Every adapter module exposes the same functions (see ``asrtune/models/whisper.py``):
``load``, ``load_processor``, ``limits``, ``encode_labels``, ``pack_item``, ``packer`` and
``window_item`` (training items, see ``asrtune/data/windows.py``), ``collate``,
``generate``, ``default_lora_targets``, ``LORA_TASK_TYPE``, ``freeze_encoder`` and
``save``. Code outside this package never branches on a family name.
"""

from __future__ import annotations

import importlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from asrtune.errors import AsrtuneError

FAMILIES: dict[str, str] = {
    "whisper": "asrtune.models.whisper",
    "voxtral": "asrtune.models.voxtral",
}


# Generated tokens allowed per second of audio when the caller sets no cap: about 5x normal
# speech, enough for byte-heavy scripts, and it stops a looping hypothesis from holding a
# whole batch until the model's length limit.
TOKENS_PER_SECOND_CAP = 25


def token_budget(seconds: float, requested: int | None = None) -> int:
    """New tokens to allow for ``seconds`` of audio: ``requested``, or 32 + 25/s."""
    return requested or int(32 + TOKENS_PER_SECOND_CAP * seconds)


@dataclass(frozen=True)
class Limits:
    """What one training item may hold: seconds of audio and label tokens."""

    max_seconds: float
    max_label_tokens: int


@dataclass
class LoadedModel:
    """A model ready to train or generate, its processor, and where it came from.

    ``base`` is the base model's id/path when ``source`` is a LoRA adapter folder.
    """

    model: Any
    processor: Any
    family: str
    source: str
    base: str | None = None

    @property
    def adapter(self) -> ModuleType:
        return get_family(self.family)


def get_family(name: str) -> ModuleType:
    if name not in FAMILIES:
        raise AsrtuneError(f"unknown model family {name!r} (known: {', '.join(FAMILIES)})")
    return importlib.import_module(FAMILIES[name])


def _read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def adapter_base(model: str) -> str | None:
    """The base model of a LoRA adapter folder, or None when ``model`` is no adapter."""
    config = Path(model) / "adapter_config.json"
    if not config.is_file():
        return None
    return _read_json(config)["base_model_name_or_path"]


def detect_family(model: str) -> str:
    """Family of a local folder (from config.json's model_type) or of a Hub id."""
    base = adapter_base(model)
    if base is not None:
        return detect_family(base)
    config = Path(model) / "config.json"
    if config.is_file():
        model_type = _read_json(config).get("model_type", "")
    elif Path(model).exists():
        raise AsrtuneError(f"{model} is not a model folder (no config.json)")
    else:
        model_type = model.lower()
    for family in FAMILIES:
        if family in model_type:
            return family
    raise AsrtuneError(f"cannot tell the model family of {model!r} (known: {', '.join(FAMILIES)})")


def inference_placement(adapter: ModuleType) -> dict[str, Any]:
    """``device``/``dtype`` for inference: the GPU in the family's half precision
    (``GPU_INFERENCE_DTYPE``), else the CPU in float32 (bf16 weights cost tiny.en 5 points
    of WER on a CPU, see docs/benchmarks.md)."""
    import torch

    if not torch.cuda.is_available():
        return {}
    name = getattr(adapter, "GPU_INFERENCE_DTYPE", "bfloat16")
    if name == "bfloat16" and not torch.cuda.is_bf16_supported():
        name = "float16"
    return {"device": "cuda", "dtype": getattr(torch, name)}


def load_model(model: str, *, for_training: bool = False, **kwargs: Any) -> LoadedModel:
    """Load a model folder, Hub id or LoRA adapter folder with its family's adapter.

    For inference an adapter is merged into its base; for training it stays a PeftModel
    (and the Trainer places it). Inference models go to the GPU when there is one, in the
    family's half precision, unless ``device`` / ``dtype`` say otherwise.
    """
    family = detect_family(model)
    adapter = get_family(family)
    if not for_training:
        kwargs = {**inference_placement(adapter), **kwargs}
    accepted = inspect.signature(adapter.load).parameters
    if kwargs.get("quantization") and "quantization" not in accepted:
        raise AsrtuneError(f"--quantization is not supported for {family} models")
    base = adapter_base(model)
    loaded = adapter.load(base or model, **kwargs)
    loaded.source = model
    if base is not None:
        from peft import PeftModel

        peft_model = PeftModel.from_pretrained(loaded.model, model, is_trainable=for_training)
        loaded.model = peft_model if for_training else peft_model.merge_and_unload()
        loaded.base = base
        loaded.processor = adapter.load_processor(model, fallback=base)
    return loaded
