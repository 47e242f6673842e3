"""The families' publish recipes, and the helpers a recipe is written with.

Each :class:`~asrtune.models.family.FamilyRecipe` (a type of the family contract, with
:class:`~asrtune.models.family.UsageContext`) says how user-facing code loads and runs a
model of that family with plain transformers/peft (for the model card's usage snippet and
the demo app, which must not import asrtune), which extra packages that code needs, which
export formats exist, and the licence of the family's released checkpoints. A family's
registration (``asrtune/models/registry.py``) names its recipe: the five families' are here
(Whisper, Voxtral, Qwen3-ASR, Parakeet CTC and TDT); a new family's may live in its own
module under ``asrtune/models/`` and use :func:`preamble` and :func:`py_literal`. The
family owns its recipe: :mod:`asrtune.publish` looks it up through the registry
(:func:`asrtune.publish.families.recipe_for`) and never branches on a family name.
"""

from __future__ import annotations

import json

from asrtune.models.family import FamilyRecipe, UsageContext


def py_literal(value: str | None) -> str:
    """A Python literal, double-quoted like the rest of the snippet."""
    return "None" if value is None else json.dumps(value)


_READ_AUDIO = """\
audio, rate = sf.read("audio.wav", dtype="float32")
if audio.ndim > 1:  # to mono
    audio = audio.mean(axis=1)
if rate != 16000:  # to 16 kHz
    audio = soxr.resample(audio, rate, 16000)
"""


def _load_lines(recipe_model: str, recipe_processor: str, ctx: UsageContext) -> str:
    if ctx.base_model is None:
        lines = [
            f"model_id = {py_literal(ctx.model_id)}",
            f"processor = {recipe_processor}.from_pretrained(model_id)",
            f"model = {recipe_model}.from_pretrained(model_id)",
        ]
    else:  # a LoRA adapter: the processor is the base's
        lines = [
            f"model_id = {py_literal(ctx.model_id)}",
            f"base_id = {py_literal(ctx.base_model)}",
            f"processor = {recipe_processor}.from_pretrained(base_id)",
            f"model = {recipe_model}.from_pretrained(base_id)",
            "model = PeftModel.from_pretrained(model, model_id).merge_and_unload()  # LoRA",
        ]
        if ctx.own_generation_config:  # the fine-tune's decoding settings
            lines.append("model.generation_config = GenerationConfig.from_pretrained(model_id)")
    return "\n".join(lines) + "\n"


def _imports(*lines: str, adapter: bool, own_generation_config: bool = False) -> str:
    head = ["import soundfile as sf", "import soxr"]
    if adapter:
        head.append("from peft import PeftModel")
    if own_generation_config:
        head.append("from transformers import GenerationConfig")
    return "\n".join([*head, *lines]) + "\n"


def preamble(model_class: str, processor_class: str, ctx: UsageContext) -> str:
    """The usage code's imports, model and processor loading, and reading the audio into
    ``audio``, a (n,) float32 16-kHz array: what every family's code starts with."""
    return (
        _imports(
            f"from transformers import {', '.join(sorted({model_class, processor_class}))}",
            adapter=ctx.base_model is not None,
            own_generation_config=ctx.own_generation_config,
        )
        + "\n"
        + _load_lines(model_class, processor_class, ctx)
        + "\n"
        + _READ_AUDIO
    )


# --------------------------------------------------------------------------- Whisper


def _whisper_multilingual(ctx: UsageContext) -> bool:
    gen = ctx.generation_config or {}
    if "is_multilingual" in gen:
        return bool(gen["is_multilingual"])
    if gen:
        return "lang_to_id" in gen
    name = (ctx.base_model or ctx.model_id).rstrip("/")
    return not name.endswith(".en")


def _whisper_usage(ctx: UsageContext) -> str:
    kwargs = ""
    if _whisper_multilingual(ctx) and ctx.language:
        kwargs = f', language={py_literal(ctx.language)}, task="transcribe"'
    return (
        preamble("WhisperForConditionalGeneration", "WhisperProcessor", ctx)
        + 'features = processor(audio, sampling_rate=16000, return_tensors="pt").input_features\n'
        + f"ids = model.generate(features.to(model.dtype){kwargs})\n"
        + "print(processor.batch_decode(ids, skip_special_tokens=True)[0].strip())\n"
    )


_WHISPER_APP_DECODE = """\
    extractor = processor.feature_extractor
    long_form = len(samples) > extractor.n_samples  # over 30 s: sequential long-form decoding
    inputs = processor(
        samples,
        sampling_rate=SAMPLE_RATE,
        return_tensors="pt",
        return_attention_mask=True,
        **({"truncation": False, "padding": "longest"} if long_form else {}),
    )
    kwargs = {"attention_mask": inputs.attention_mask.to(model.device)}
    gen = model.generation_config
    if getattr(gen, "is_multilingual", None) or getattr(gen, "lang_to_id", None):
        kwargs["task"] = "transcribe"
        if language:
            kwargs["language"] = language
    if long_form:
        kwargs["return_timestamps"] = True
    else:  # one window, one pass (no re-decoding after a pair of timestamps)
        kwargs["force_unique_generate_call"] = True
    # about 5x normal speech per 30-s window; stops a looping output early
    window_seconds = min(len(samples), extractor.n_samples) / SAMPLE_RATE
    budget = min(int(32 + 25 * window_seconds), model.config.max_target_positions - 4)
    kwargs["max_length"] = budget + 4  # the decoder prompt: at most 4 tokens
    features = inputs.input_features.to(model.device, model.dtype)
    ids = model.generate(features, **kwargs)
    return processor.batch_decode(ids, skip_special_tokens=True)[0].strip()
"""


# --------------------------------------------------------------------------- Voxtral


def _voxtral_usage(ctx: UsageContext) -> str:
    return (
        preamble("VoxtralForConditionalGeneration", "AutoProcessor", ctx)
        + "extractor = processor.feature_extractor  # its chunks: 30 s for Voxtral\n"
        + "inputs = processor.apply_transcription_request(\n"
        + "    audio=audio,\n"
        + "    model_id=model_id,\n"
        + f"    language={py_literal(ctx.language)},\n"
        + "    sampling_rate=16000,\n"
        + '    format=["wav"],\n'
        + '    return_tensors="pt",\n'
        + "    audio_kwargs={\n"
        + '        "pad_to_multiple_of": int(extractor.n_samples),\n'
        + '        "max_source_positions": int(extractor.nb_max_frames),\n'
        + "    },\n"
        + ")\n"
        + "inputs = inputs.to(model.device, dtype=model.dtype)\n"
        + "ids = model.generate(**inputs, max_new_tokens=500)\n"
        + 'prompt_length = inputs["input_ids"].shape[1]\n'
        + "print(processor.batch_decode(ids[:, prompt_length:], skip_special_tokens=True)[0])\n"
    )


_VOXTRAL_APP_DECODE = """\
    extractor = processor.feature_extractor  # its chunk length: 30 s for Voxtral
    inputs = processor.apply_transcription_request(
        audio=samples,
        model_id=MODEL_ID,
        language=language,
        sampling_rate=SAMPLE_RATE,
        format=["wav"],
        return_tensors="pt",
        audio_kwargs={
            "pad_to_multiple_of": int(extractor.n_samples),
            "max_source_positions": int(extractor.nb_max_frames),
        },
    )
    inputs = inputs.to(model.device, dtype=model.dtype)
    # about 5x normal speech; stops a looping output early
    max_new_tokens = int(32 + 25 * len(samples) / SAMPLE_RATE)
    ids = model.generate(**inputs, max_new_tokens=max_new_tokens)
    prompt_length = inputs["input_ids"].shape[1]
    return processor.batch_decode(ids[:, prompt_length:], skip_special_tokens=True)[0].strip()
"""


# ----------------------------------------------------------------- Parakeet CTC and TDT


def _parakeet_usage(model_class: str, generate: str, ctx: UsageContext) -> str:
    """A Parakeet family's usage code: ``generate`` is the line that sets ``ids``."""
    return (
        preamble(model_class, "AutoProcessor", ctx)
        + 'inputs = processor(audio, sampling_rate=16000, return_tensors="pt")\n'
        + "inputs = inputs.to(model.device)\n"
        + 'inputs["input_features"] = inputs["input_features"].to(model.dtype)\n'
        + f"{generate}\n"
        + "print(processor.batch_decode(ids, skip_special_tokens=True)[0].strip())\n"
    )


def _parakeet_ctc_usage(ctx: UsageContext) -> str:
    generate = "ids = model.generate(**inputs)  # greedy CTC: one token or blank per frame"
    return _parakeet_usage("ParakeetForCTC", generate, ctx)


def _parakeet_tdt_usage(ctx: UsageContext) -> str:
    # each step: a token or the blank, and how many frames to advance
    generate = "ids = model.generate(**inputs).sequences  # greedy TDT; blanks are special"
    return _parakeet_usage("ParakeetForTDT", generate, ctx)


def _parakeet_app_decode(kind: str, generate: str) -> str:
    """A Parakeet family's demo-app decoding: ``generate`` is the expression of ``ids``."""
    return f"""\
    # greedy {kind} over pieces of at most 30 s (attention over a whole long file is costly)
    size = 30 * SAMPLE_RATE
    texts = []
    for start in range(0, max(len(samples), 1), size):
        inputs = processor(
            samples[start : start + size], sampling_rate=SAMPLE_RATE, return_tensors="pt"
        )
        inputs = inputs.to(model.device)
        inputs["input_features"] = inputs["input_features"].to(model.dtype)
        ids = {generate}
        texts.append(processor.batch_decode(ids, skip_special_tokens=True)[0].strip())
    return " ".join(t for t in texts if t)
"""


# NVIDIA releases the Parakeet checkpoints under CC-BY-4.0, which asks for attribution.
_PARAKEET_CARD_TEXT = (
    "The base model is NVIDIA's, released under the Creative Commons Attribution 4.0 "
    "licence (CC-BY-4.0): when you use or share this model, credit NVIDIA's base model "
    "(linked above) and say that it was fine-tuned."
)

_PARAKEET_CTC_APP_DECODE = _parakeet_app_decode("CTC", "model.generate(**inputs)")
_PARAKEET_TDT_APP_DECODE = _parakeet_app_decode("TDT", "model.generate(**inputs).sequences")


WHISPER_RECIPE = FamilyRecipe(
    family="whisper",
    model_class="WhisperForConditionalGeneration",
    processor_class="WhisperProcessor",
    usage=_whisper_usage,
    app_decode=_WHISPER_APP_DECODE,
    exports={
        "ct2": "asrtune.publish.export:whisper_to_ct2",
        "onnx": "asrtune.publish.onnx:whisper_to_onnx",
    },
    export_decoders={
        "ct2": "asrtune.publish.exported:transcribe_ct2",
        "onnx": "asrtune.publish.exported:transcribe_onnx",
    },
    licence="apache-2.0",
    licence_ids=("openai/whisper-",),
)

VOXTRAL_RECIPE = FamilyRecipe(
    family="voxtral",
    model_class="VoxtralForConditionalGeneration",
    processor_class="AutoProcessor",
    usage=_voxtral_usage,
    app_decode=_VOXTRAL_APP_DECODE,
    requirements=("mistral-common[audio]>=1.8",),
    licence="apache-2.0",
    licence_ids=("mistralai/voxtral-",),
)


# --------------------------------------------------------------------------- Qwen3-ASR


def _qwen3_asr_usage(ctx: UsageContext) -> str:
    return (
        preamble("Qwen3ASRForConditionalGeneration", "AutoProcessor", ctx)
        + f"language = {py_literal(ctx.language)}  # None: the model names the language itself\n"
        + "inputs = processor.apply_transcription_request(audio=audio, language=language)\n"
        + "inputs = inputs.to(model.device, model.dtype)\n"
        + "ids = model.generate(**inputs, max_new_tokens=500)\n"
        + 'new_tokens = ids[:, inputs["input_ids"].shape[1] :]\n'
        + "# the answer is 'language English<asr_text>...' unless the language was given\n"
        + 'print(processor.decode(new_tokens, return_format="transcription_only")[0])\n'
    )


_QWEN3_ASR_APP_DECODE = """\
    inputs = processor.apply_transcription_request(audio=samples, language=language)
    inputs = inputs.to(model.device, model.dtype)
    # about 5x normal speech (and the language line when the model names it); stops a
    # looping output early
    max_new_tokens = int(32 + 25 * len(samples) / SAMPLE_RATE) + (0 if language else 8)
    ids = model.generate(**inputs, max_new_tokens=max_new_tokens)
    new_tokens = ids[:, inputs["input_ids"].shape[1] :]
    text = processor.batch_decode(new_tokens, skip_special_tokens=True)[0]
    if "<asr_text>" in text:  # "language English<asr_text>...": the model named the language
        return text.split("<asr_text>", 1)[1].replace("<asr_text>", "").strip()
    if language is None and text.lstrip().lower().startswith("language"):
        return ""  # cut off within the language line
    return text.strip()
"""

QWEN3_ASR_RECIPE = FamilyRecipe(
    family="qwen3_asr",
    model_class="Qwen3ASRForConditionalGeneration",
    processor_class="AutoProcessor",
    usage=_qwen3_asr_usage,
    app_decode=_QWEN3_ASR_APP_DECODE,
    licence="apache-2.0",
    licence_ids=("qwen/qwen3-asr-",),
)

PARAKEET_CTC_RECIPE = FamilyRecipe(
    family="parakeet_ctc",
    model_class="ParakeetForCTC",
    processor_class="AutoProcessor",
    usage=_parakeet_ctc_usage,
    app_decode=_PARAKEET_CTC_APP_DECODE,
    licence="cc-by-4.0",
    licence_ids=("nvidia/parakeet-",),
    card_text=_PARAKEET_CARD_TEXT,
)

PARAKEET_TDT_RECIPE = FamilyRecipe(
    family="parakeet_tdt",
    model_class="ParakeetForTDT",
    processor_class="AutoProcessor",
    usage=_parakeet_tdt_usage,
    app_decode=_PARAKEET_TDT_APP_DECODE,
    licence="cc-by-4.0",
    licence_ids=("nvidia/parakeet-",),
    card_text=_PARAKEET_CARD_TEXT,
)
