"""Model families: the registry (family name → :class:`~asrtune.models.family.Family`),
loading, and what inference shares across families.

A family is a module (``asrtune/models/whisper.py``, ``voxtral.py``, ...) that declares its
kind (``KIND``: ``asrtune/models/kinds/`` holds the shared work of encoder-decoders, audio
LLMs, CTC and transducer models) and writes what differs, so that it has the functions and
constants of :class:`~asrtune.models.family.FamilyAdapter`: ``load``,
``load_processor``, ``limits``, ``encode_labels``, ``pack_item``, ``packer`` and
``window_item`` (training items, see ``asrtune/data/windows.py``), ``collate``,
``generate`` (a :class:`Transcript` per input), ``sole_language`` (the one language an
English-only model speaks), ``default_lora_targets``, ``freeze_encoder``, ``save``,
``summed_loss`` (its loss), ``KIND``, ``LORA_TASK_TYPE``, ``LORA_LEARNING_RATE``,
``LOSS_SHIFTS_LABELS`` (whether logits at position i predict ``labels[i + 1]``),
``GPU_INFERENCE_DTYPE`` and ``TRAINING_MIX``; plus one registration in
``asrtune/models/registry.py`` that names its kind, declares its
:class:`~asrtune.models.family.Capabilities` and holds its UI sizes, make-tiny builder,
publish recipe and help texts. Code outside ``asrtune/models/`` never branches on a family
name.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from asrtune.errors import AsrtuneError
from asrtune.models import registry as _registry  # noqa: F401 (registers the families)
from asrtune.models.family import (  # noqa: F401 (the contract's types, exported here)
    FAMILIES,
    Capabilities,
    Family,
    Limits,
    LoadedModel,
    Transcript,
    family_spec,
)

# Generated tokens allowed per second of audio when the caller sets no cap: about 5x normal
# speech, enough for byte-heavy scripts, and it stops a looping hypothesis from holding a
# whole batch until the model's length limit.
TOKENS_PER_SECOND_CAP = 25


def token_budget(seconds: float, requested: int | None = None) -> int:
    """New tokens to allow for ``seconds`` of audio: ``requested``, or 32 + 25/s."""
    return requested or int(32 + TOKENS_PER_SECOND_CAP * seconds)


def core_model(model: Any) -> Any:
    """The transformers model inside a PeftModel (or the model itself)."""
    from peft import PeftModel

    return model.get_base_model() if isinstance(model, PeftModel) else model


def text_tokens(loaded: LoadedModel, text: str) -> list[int]:
    """The token ids of ``text`` (stripped), without special tokens."""
    return loaded.processor.tokenizer.encode(text.strip(), add_special_tokens=False)


def weight_options(dtype: Any, allow_pickle: bool) -> dict[str, Any]:
    """``from_pretrained`` options every family loads with: the dtype (None: the
    checkpoint's) and safetensors only unless pickle is allowed."""
    return {"dtype": dtype, "use_safetensors": None if allow_pickle else True}


def from_pretrained(model_class: Any, name_or_path: str, label: str, **kwargs: Any) -> Any:
    """``model_class.from_pretrained(name_or_path, **kwargs)``; an AsrtuneError naming the
    ``label`` model with the first line of the reason when it cannot load."""
    try:
        return model_class.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError, TypeError) as exc:
        text = str(exc).strip()
        first_line = text.splitlines()[0] if text else type(exc).__name__
        raise AsrtuneError(f"cannot load {label} model {name_or_path!r}: {first_line}") from exc


def refuse_quantization(quantization: str | None, family: str) -> None:
    """A family without a quantized base (``Capabilities.quantized_base``) loads none."""
    if quantization:
        raise AsrtuneError(f"--quantization is not supported for {family} models")


def require_transcribe(task: str, label: str) -> None:
    """A family without translation refuses any task but ``transcribe``."""
    if task != "transcribe":
        raise AsrtuneError(f"{label} models cannot {task}; use --task transcribe")


def refuse_timestamps(timestamps: bool, label: str) -> None:
    """A family without timestamps refuses timestamp labels."""
    if timestamps:
        raise AsrtuneError(f"{label} models are trained without timestamps")


def over_limit_reason(limits: Limits, seconds: float | None, num_labels: int) -> str | None:
    """Why an utterance of ``seconds`` of audio (None: not measured) and ``num_labels``
    label tokens does not fit ``limits``, or None when it fits. ``asrtune data check`` and
    training both say it in these words."""
    if seconds is not None and seconds > limits.max_seconds:
        return f"audio {seconds:.1f} s > {limits.max_seconds:g} s"
    if num_labels > limits.max_label_tokens:
        return f"{num_labels} label tokens > {limits.max_label_tokens}"
    return None


def processor_from_first(
    build: Callable[[str], Any], path: str, fallback: str | None, what: str
) -> Any:
    """``build(path)``, else ``build(fallback)`` (an adapter folder's base), the first that
    loads; an AsrtuneError naming ``what`` when neither does."""
    for source in (path, fallback):
        if source is None:
            continue
        try:
            return build(source)
        except (OSError, ValueError, TypeError):
            continue
    raise AsrtuneError(f"no {what} found in {path}")


def row_labels(
    loaded: LoadedModel,
    text: str,
    language: str | None,
    task: str,
    seconds: float | None,
    timestamps: bool | None = None,
) -> list[int]:
    """The labels of a window holding one utterance alone: with ``timestamps`` (None: when
    the family trains some windows with timestamps by default) the text sits between its
    start and end timestamp tokens. ``asrtune data check`` and training count the same."""
    if timestamps is None:
        timestamps = loaded.spec.training_mix.get("timestamp_share", 0) > 0
    spans = [(0.0, seconds or 0.0)] if timestamps else None
    return loaded.adapter.encode_labels(loaded, [text], language, task, spans)


def get_family(name: str) -> ModuleType:
    """The adapter module of family ``name``."""
    return family_spec(name).module()


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
    for family in FAMILIES.values():
        if family.matches(model_type):
            return family.name
    raise AsrtuneError(f"cannot tell the model family of {model!r} (known: {', '.join(FAMILIES)})")


def inference_placement(adapter: ModuleType) -> dict[str, Any]:
    """``device``/``dtype`` for inference: the GPU in the family's half precision
    (``GPU_INFERENCE_DTYPE``), else the CPU in float32 (bf16 weights cost tiny.en 5 points
    of WER on a CPU, see docs/benchmarks.md)."""
    import torch

    if not torch.cuda.is_available():  # whatever dtype the checkpoint's config names
        return {"dtype": torch.float32}
    name = adapter.GPU_INFERENCE_DTYPE
    if name == "bfloat16" and not torch.cuda.is_bf16_supported():
        name = "float16"
    return {"device": "cuda", "dtype": getattr(torch, name)}


PRECISIONS = ("auto", "fp32", "bf16")


def computes_bf16_natively(device: Any) -> bool:
    """Whether ``device`` has bf16 matrix units: a CUDA GPU with bf16, or a CPU with
    AVX512-BF16 / AMX (where oneDNN runs bf16 matmuls faster than fp32)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def resolve_precision(model: Any, precision: str = "auto") -> str:
    """What generation will run in: ``bf16-autocast``, ``fp32``, or the dtype of a model
    that is already in half precision (``bfloat16``/``float16``)."""
    import torch

    if precision not in PRECISIONS:
        raise AsrtuneError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    param = next(model.parameters())
    if param.dtype != torch.float32:
        return str(param.dtype).removeprefix("torch.")
    if precision == "bf16" or (precision == "auto" and computes_bf16_natively(param.device)):
        return "bf16-autocast"
    return "fp32"


def inference_precision(model: Any, precision: str = "auto") -> contextlib.AbstractContextManager:
    """The context generation runs in (see :func:`resolve_precision`).

    A float32 model runs under bf16 autocast (matmuls in bf16; norms, softmax and the
    residual stream stay float32) when ``precision`` is ``bf16``, or ``auto`` and the device
    computes bf16 natively. Unlike casting the weights to bf16, autocast kept tiny.en's WER
    (see docs/benchmarks.md).

    Autocast keeps the bf16 copy of a weight for the whole context only when the weight is
    a leaf that requires grad, and not under ``inference_mode``; otherwise every decoding
    step casts every weight again (slower than float32). So call it under
    ``torch.no_grad()``, and frozen weights (a merged or LoRA model) are marked as requiring
    grad for the context's duration: no graph is built under ``no_grad``.
    """
    if resolve_precision(model, precision) != "bf16-autocast":
        return contextlib.nullcontext()
    return _autocast_with_weight_cache(model)


@contextlib.contextmanager
def _autocast_with_weight_cache(model: Any) -> Iterator[None]:
    import torch

    params = list(model.parameters())
    frozen = [p for p in params if not p.requires_grad and p.dtype == torch.float32]
    for param in frozen:
        param.requires_grad_(True)
    try:
        with torch.autocast(params[0].device.type, dtype=torch.bfloat16):
            yield
    finally:
        for param in frozen:
            param.requires_grad_(False)


def _use_adapter_generation_config(model: Any, folder: Path) -> None:
    """An adapter folder's generation_config.json (a fine-tune's decoding settings, e.g.
    an empty transcript allowed) replaces its base model's."""
    if (folder / "generation_config.json").is_file():
        from transformers import GenerationConfig

        model.generation_config = GenerationConfig.from_pretrained(str(folder))


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
    if kwargs.get("quantization") and not family_spec(family).capabilities.quantized_base:
        raise AsrtuneError(f"--quantization is not supported for {family} models")
    base = adapter_base(model)
    loaded = adapter.load(base or model, **kwargs)
    loaded.source = model
    if base is not None:
        from peft import PeftModel

        peft_model = PeftModel.from_pretrained(loaded.model, model, is_trainable=for_training)
        loaded.model = peft_model if for_training else peft_model.merge_and_unload()
        loaded.base = base
        _use_adapter_generation_config(loaded.model, Path(model))
        loaded.processor = adapter.load_processor(model, fallback=base)
    return loaded
