"""Pieces of the usage code that model cards print (a family's
:class:`~asrtune.models.family.FamilyRecipe` ``usage``): the imports, loading a model or a
LoRA adapter onto its base with plain transformers/peft, and reading ``audio.wav`` into a
(n,) float32 16-kHz array ``audio``. Family modules under ``asrtune/models/`` write their
recipes with these (models/ does not import publish/).
"""

from __future__ import annotations

import json

from asrtune.models.family import UsageContext

READ_AUDIO = """\
audio, rate = sf.read("audio.wav", dtype="float32")
if audio.ndim > 1:  # to mono
    audio = audio.mean(axis=1)
if rate != 16000:  # to 16 kHz
    audio = soxr.resample(audio, rate, 16000)
"""


def py_literal(value: str | None) -> str:
    """A Python literal, double-quoted like the rest of the snippet."""
    return "None" if value is None else json.dumps(value)


def _load_lines(model_class: str, processor_class: str, ctx: UsageContext) -> list[str]:
    lines = [f"model_id = {py_literal(ctx.model_id)}"]
    if ctx.base_model is None:
        return [
            *lines,
            f"processor = {processor_class}.from_pretrained(model_id)",
            f"model = {model_class}.from_pretrained(model_id)",
        ]
    lines += [  # a LoRA adapter: the processor is the base's
        f"base_id = {py_literal(ctx.base_model)}",
        f"processor = {processor_class}.from_pretrained(base_id)",
        f"model = {model_class}.from_pretrained(base_id)",
        "model = PeftModel.from_pretrained(model, model_id).merge_and_unload()  # LoRA",
    ]
    if ctx.own_generation_config:  # the fine-tune's decoding settings
        lines.append("model.generation_config = GenerationConfig.from_pretrained(model_id)")
    return lines


def preamble(model_class: str, processor_class: str, ctx: UsageContext) -> str:
    """The usage code's imports, model and processor loading, and reading the audio into
    ``audio``, a (n,) float32 16-kHz array: what every family's code starts with."""
    imports = ["import soundfile as sf", "import soxr"]
    if ctx.base_model is not None:
        imports.append("from peft import PeftModel")
    if ctx.own_generation_config:
        imports.append("from transformers import GenerationConfig")
    imports.append(f"from transformers import {', '.join(sorted({model_class, processor_class}))}")
    loading = _load_lines(model_class, processor_class, ctx)
    return "\n".join(imports) + "\n\n" + "\n".join(loading) + "\n\n" + READ_AUDIO
