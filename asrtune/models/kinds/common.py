"""What every kind of family uses: loading a checkpoint with a transformers model class and
a processor class, and saving."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from asrtune.models import (
    LoadedModel,
    from_pretrained,
    processor_from_first,
    refuse_quantization,
    weight_options,
)
from asrtune.models.family import family_spec


def processor_loader(processor_class: str) -> Callable[..., Any]:
    """The contract's ``load_processor``: transformers' ``processor_class`` of a folder,
    else of its fallback (a LoRA adapter's base)."""

    def load_processor(path: str, fallback: str | None = None) -> Any:
        import transformers

        build = getattr(transformers, processor_class).from_pretrained
        return processor_from_first(build, path, fallback, f"{processor_class} processor")

    return load_processor


def loader(
    model_class: str, family: str, load_processor: Callable[..., Any]
) -> Callable[..., LoadedModel]:
    """The contract's ``load`` of ``family``: a checkpoint as transformers' ``model_class``
    with ``load_processor``'s processor; no quantized base."""

    def load(
        name_or_path: str,
        *,
        dtype: Any = None,
        device: str | None = None,
        allow_pickle: bool = False,
        quantization: str | None = None,
    ) -> LoadedModel:
        refuse_quantization(quantization, family)
        import transformers

        model_type = getattr(transformers, model_class)
        label, options = family_spec(family).label, weight_options(dtype, allow_pickle)
        model = from_pretrained(model_type, name_or_path, label, **options)
        if device is not None:
            model.to(device)
        return LoadedModel(model, load_processor(name_or_path), family, name_or_path)

    load.__doc__ = (
        f"Load a {model_class} checkpoint (Hub id or folder). Only safetensors unless "
        "``allow_pickle``; no quantized base (``quantization`` must be None)."
    )
    return load


def save(loaded: LoadedModel, out_dir: str | Path) -> None:
    """Write the model (safetensors, with its generation config) and its processor to
    ``out_dir``."""
    loaded.model.save_pretrained(out_dir)
    loaded.processor.save_pretrained(out_dir)


def allow_empty_transcripts(loaded: LoadedModel) -> None:
    """Nothing to do: the family's generation may already end at its first step."""
