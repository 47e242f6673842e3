"""Voxtral (Mistral's audio LLM, e.g. mistralai/Voxtral-Mini-3B-2507): loading, training rows,
generation. Same functions as ``asrtune/models/whisper.py``.

The model is ``model.model.{audio_tower, multi_modal_projector, language_model}`` +
``model.lm_head``: a Whisper-like encoder turns each 30-s chunk of 128-bin log-mel
(3000 frames) into 375 embeddings, which replace the ``[AUDIO]`` placeholders of the prompt
that mistral-common's transcription request builds::

    <s> [INST] [BEGIN_AUDIO] [AUDIO] x 375 * n_chunks [/INST] (lang:xx) [TRANSCRIBE]

``lang:xx`` (plain text tokens) is there only when the language is known; without it the
model detects the language. A training row is that prompt + the transcript's tokens +
``</s>``; the labels are -100 over the prompt, then the transcript tokens and ``</s>``
(the model shifts them itself), so the model learns to stop.

Audio longer than one chunk gives several chunks: ``input_features`` is
(n_chunks, 128, 3000) per utterance, and a batch concatenates them in row order along the
first dimension, which is the order the model scatters the chunk embeddings into the
placeholders (row by row, left to right).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asrtune.data.audio import SAMPLE_RATE
from asrtune.data.batching import PackItem, WindowPacker
from asrtune.data.windows import PLAIN_WINDOW, Example, WindowPlan, window_audio
from asrtune.errors import AsrtuneError
from asrtune.models import (
    Limits,
    LoadedModel,
    Transcript,
    core_model,
    from_pretrained,
    inference_precision,
    processor_from_first,
    refuse_timestamps,
    require_transcribe,
    text_tokens,
    token_budget,
    weight_options,
)

log = logging.getLogger("asrtune")

FAMILY = "voxtral"
LORA_TASK_TYPE = "CAUSAL_LM"
# LoRA on a 3B+ language model: the shipped configs' rate (not measured here: no pretrained
# Voxtral offline)
LORA_LEARNING_RATE = 1e-4
LOSS_SHIFTS_LABELS = True  # logits at position i predict labels[i + 1] (a causal LM)
LM_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# Voxtral's documented limit for transcription (30 min), further capped by the text context.
MAX_AUDIO_SECONDS = 1800
# Prompt tokens besides the [AUDIO] placeholders: <s> [INST] [BEGIN_AUDIO] [/INST]
# lang:xx [TRANSCRIBE], with room to spare.
PROMPT_OVERHEAD = 32
# Value that pads input_ids on the right ("<pad>" in every tekken file; masked out anyway).
PAD_TOKEN_ID = 11
QUANTIZATIONS = ("4bit", "8bit")
GPU_INFERENCE_DTYPE = "bfloat16"  # the dtype Voxtral was trained and released in
TRAINING_MIX: dict[str, Any] = {}  # no defaults: plain windows of transcripts
# Kept in bf16 when the language model is quantized (QLoRA): the audio path and the output
# layer.
NOT_QUANTIZED = ["audio_tower", "multi_modal_projector", "lm_head"]


def _require_mistral_common() -> None:
    try:
        import mistral_common  # noqa: F401
    except ImportError as exc:
        raise AsrtuneError(
            "Voxtral's tokenizer needs mistral-common: pip install 'mistral-common[audio]'"
        ) from exc


def load_processor(path: str, fallback: str | None = None) -> Any:
    """VoxtralProcessor: the tekken tokenizer (mistral-common) + the Whisper feature extractor.

    Built from its parts, so that folders without config.json (LoRA adapters) load the
    tekken tokenizer too.
    """
    _require_mistral_common()
    from transformers import VoxtralProcessor, WhisperFeatureExtractor
    from transformers.tokenization_mistral_common import MistralCommonBackend

    def build(source: str) -> Any:
        return VoxtralProcessor(
            feature_extractor=WhisperFeatureExtractor.from_pretrained(source),
            tokenizer=MistralCommonBackend.from_pretrained(source),
        )

    what = "Voxtral processor (tekken.json + feature extractor)"
    return processor_from_first(build, path, fallback, what)


def quantization_config(quantization: str) -> Any:
    """bitsandbytes config for a 4-/8-bit language model (QLoRA); needs a CUDA GPU."""
    if quantization not in QUANTIZATIONS:
        raise AsrtuneError(f"--quantization must be one of {', '.join(QUANTIZATIONS)}")
    if not torch.cuda.is_available():
        raise AsrtuneError(
            f"--quantization {quantization} needs a CUDA GPU (bitsandbytes); none is available"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise AsrtuneError(
            f"--quantization {quantization} needs: pip install bitsandbytes"
        ) from exc
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=NOT_QUANTIZED)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
        llm_int8_skip_modules=NOT_QUANTIZED,
    )


def load(
    name_or_path: str,
    *,
    dtype: torch.dtype | None = None,
    device: str | None = None,
    allow_pickle: bool = False,
    quantization: str | None = None,
) -> LoadedModel:
    """Load a Voxtral checkpoint (Hub id or folder). Only safetensors unless ``allow_pickle``.

    ``dtype`` None keeps the checkpoint's (bf16 for Voxtral Mini). ``quantization`` "4bit" /
    "8bit" loads the language model with bitsandbytes on the GPU, ready for LoRA (QLoRA).
    """
    _require_mistral_common()
    from transformers import VoxtralForConditionalGeneration

    kwargs = weight_options(dtype, allow_pickle)
    if quantization is not None:
        kwargs["quantization_config"] = quantization_config(quantization)
        kwargs["device_map"] = {"": torch.cuda.current_device()}
        kwargs["dtype"] = dtype or torch.bfloat16
    model = from_pretrained(VoxtralForConditionalGeneration, name_or_path, "Voxtral", **kwargs)
    if quantization is not None:
        from peft import prepare_model_for_kbit_training

        # Trainer enables activation checkpointing itself when asked (--activation_checkpointing).
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    elif device is not None:
        model.to(device)
    return LoadedModel(model, load_processor(name_or_path), FAMILY, name_or_path)


def chunk_seconds(loaded: LoadedModel) -> float:
    """Seconds of audio per encoder chunk (30 for real checkpoints)."""
    extractor = loaded.processor.feature_extractor
    return extractor.n_samples / extractor.sampling_rate


def audio_tokens_per_chunk(model: torch.nn.Module) -> int:
    """[AUDIO] placeholders per chunk: encoder positions pooled by the projector (375)."""
    audio = core_model(model).config.audio_config
    return audio.max_source_positions * audio.hidden_size // audio.intermediate_size


def sole_language(loaded: LoadedModel) -> str | None:
    """Voxtral is multilingual: no language is implied."""
    return None


def limits(loaded: LoadedModel) -> Limits:
    """At most 30 min of audio, and no more than half the text context for the audio."""
    context = core_model(loaded.model).config.text_config.max_position_embeddings
    per_chunk = audio_tokens_per_chunk(loaded.model)
    chunk = chunk_seconds(loaded)
    max_chunks = min(int(MAX_AUDIO_SECONDS // chunk), context // 2 // per_chunk)
    return Limits(
        max_seconds=max_chunks * chunk,
        max_label_tokens=context - max_chunks * per_chunk - PROMPT_OVERHEAD,
    )


def language_code(language: str) -> str:
    """'en', 'EN', 'english' → 'en'; raises unless it is an ISO 639-1 (two-letter) code."""
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    key = language.strip().lower()
    key = TO_LANGUAGE_CODE.get(key, key)
    known = len(key) == 2 and key.isalpha()
    if known:
        try:
            import pycountry

            known = pycountry.languages.get(alpha_2=key) is not None
        except ImportError:  # pragma: no cover - mistral-common installs it
            pass
    if not known:
        raise AsrtuneError(
            f"Voxtral takes ISO 639-1 language codes (en, fr, ...), not {language!r}"
        )
    return key


def encode_labels(
    loaded: LoadedModel,
    texts: Sequence[str],
    language: str | None,
    task: str,
    spans: Sequence[tuple[float, float]] | None = None,
) -> list[int]:
    """The supervised part of a row: the texts' tokens (joined by spaces) and ``</s>``.

    The language goes into the prompt (``lang:xx``), not the labels; it is checked here so
    that a bad code fails before training starts. No ``spans``: Voxtral has no timestamps.
    """
    require_transcribe(task, "Voxtral")
    refuse_timestamps(spans is not None, "Voxtral")
    if language is not None:
        language_code(language)
    ids = text_tokens(loaded, " ".join(t.strip() for t in texts))
    return [*ids, loaded.processor.tokenizer.eos_token_id]


def transcription_inputs(
    loaded: LoadedModel, audios: Sequence[np.ndarray], languages: Sequence[str | None]
) -> Any:
    """The processor's transcription prompt for each (n_samples,) 16-kHz array.

    Returns ``input_ids`` / ``attention_mask`` (B, P), left-padded, and ``input_features``
    (total chunks, n_mels, frames per chunk), chunks of row 0 first.
    """
    extractor = loaded.processor.feature_extractor
    return loaded.processor.apply_transcription_request(
        audio=[np.asarray(a, dtype=np.float32) for a in audios],
        model_id=loaded.base or loaded.source,
        language=[language_code(lang) if lang else None for lang in languages],
        sampling_rate=SAMPLE_RATE,
        format=["wav"] * len(audios),
        return_tensors="pt",
        # the processor's defaults are the real model's 30-s chunks; a checkpoint's own
        # feature extractor says what its encoder takes
        audio_kwargs={
            "pad_to_multiple_of": int(extractor.n_samples),
            "max_source_positions": int(extractor.nb_max_frames),
        },
    )


def window_item(
    loaded: LoadedModel, window: Sequence[Example], task: str, plan: WindowPlan = PLAIN_WINDOW
) -> dict[str, Any]:
    """One training item from utterances sharing a window, laid out by ``plan`` (see
    :func:`asrtune.data.windows.window_audio`; Voxtral has no timestamps, so
    ``plan.timestamps`` is never set for it). Utterances without text add audio only.

    Returns ``{"input_ids": list[int], "labels": list[int], "input_features": (n_chunks,
    n_mels, frames) float32}``: the transcription prompt + text + ``</s>``, and labels that
    are -100 over the prompt (see the module docstring).
    """
    audio, _ = window_audio(window, plan)
    language = window[0].language
    inputs = transcription_inputs(loaded, [audio], [language])
    prompt = inputs["input_ids"][0].tolist()
    target = encode_labels(loaded, [ex.row.text for ex in window if ex.row.text], language, task)
    return {
        "input_ids": prompt + target,
        "labels": [-100] * len(prompt) + target,
        "input_features": inputs["input_features"],
    }


def pack_item(
    loaded: LoadedModel, example: Example, task: str, timestamps: bool = False
) -> PackItem:
    """Packing size of an example: its seconds and its text tokens (``</s>`` excluded).
    No ``timestamps``: Voxtral has none."""
    refuse_timestamps(timestamps, "Voxtral")
    duration = example.row.duration or chunk_seconds(loaded)
    return PackItem(duration, example.num_tokens - 1, example.language or "")


def packer(loaded: LoadedModel, task: str, language: str | None) -> WindowPacker:
    """Packs short utterances into one encoder chunk (30 s): every chunk costs the same,
    however much of it is padding. Longer utterances stay alone."""
    require_transcribe(task, "Voxtral")
    return WindowPacker(chunk_seconds(loaded), limits(loaded).max_label_tokens - 1)


def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Right-pad a batch of training items.

    Returns ``input_ids`` (B, L) int64 (padded with ``<pad>``), ``attention_mask`` (B, L)
    int64 (0 on padding), ``labels`` (B, L) int64 (-100 on the prompt and padding) and
    ``input_features`` (sum of the rows' chunks, n_mels, frames) float32, rows in order.
    """
    longest = max(len(f["input_ids"]) for f in features)
    batch = len(features)
    input_ids = torch.full((batch, longest), PAD_TOKEN_ID, dtype=torch.long)
    attention_mask = torch.zeros((batch, longest), dtype=torch.long)
    labels = torch.full((batch, longest), -100, dtype=torch.long)
    for i, f in enumerate(features):
        n = len(f["input_ids"])
        input_ids[i, :n] = torch.tensor(f["input_ids"], dtype=torch.long)
        attention_mask[i, :n] = 1
        labels[i, :n] = torch.tensor(f["labels"], dtype=torch.long)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "input_features": torch.cat([f["input_features"] for f in features]),
    }


def default_lora_targets(freeze_encoder: bool) -> str:
    """The language model's attention and MLP projections only (a regex): the audio tower
    and projector stay frozen unless --lora_target_modules names them."""
    return rf".*language_model\..*\.({'|'.join(LM_LORA_TARGETS)})"


def freeze_encoder(model: torch.nn.Module) -> None:
    """Freeze the audio tower and the projector (--freeze_encoder / --freeze_audio_tower)."""
    inner = core_model(model).model
    inner.audio_tower.requires_grad_(False)
    inner.multi_modal_projector.requires_grad_(False)


def prompt_embeddings(model: torch.nn.Module, inputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt embeddings (B, P, hidden) with the audio chunks' embeddings in the [AUDIO]
    slots, and the attention mask (B, P) — what the model's forward does on its first step.

    Generating from embeddings keeps each row's chunks together under beam search
    (``generate`` would repeat ``input_features`` chunk by chunk, not row by row).
    """
    core = core_model(model)
    embed = core.get_input_embeddings()
    ids = inputs["input_ids"].to(embed.weight.device)
    embeds = embed(ids)
    audio = core.get_audio_features(inputs["input_features"], return_dict=True).pooler_output
    slots = (ids == core.config.audio_token_id).unsqueeze(-1).expand_as(embeds)
    if slots.sum() != audio.numel():
        raise AsrtuneError(
            f"{int(slots.sum()) // embeds.shape[-1]} [AUDIO] tokens but "
            f"{audio.shape[0]} audio embeddings: the processor does not match the model"
        )
    embeds = embeds.masked_scatter(slots, audio.to(embeds.device, embeds.dtype))
    return embeds, inputs["attention_mask"].to(embeds.device)


def _token_budget(
    loaded: LoadedModel, audios: Sequence[np.ndarray], prompt_len: int, requested: int | None
) -> int:
    seconds = max(len(a) for a in audios) / SAMPLE_RATE
    budget = token_budget(seconds, requested)
    room = core_model(loaded.model).config.text_config.max_position_embeddings - prompt_len
    return max(1, min(budget, room))


@torch.no_grad()  # not inference_mode: it turns off autocast's weight cache
def generate(
    loaded: LoadedModel,
    audios: Sequence[np.ndarray],
    language: str | None,
    task: str,
    num_beams: int = 1,
    max_new_tokens: int | None = None,
    precision: str = "auto",
) -> list[Transcript]:
    """Transcribe a batch of (n_samples,) 16-kHz arrays of any length (up to the limits).

    Generation continues the transcription prompt until ``</s>``; only the new tokens are
    decoded. Without a language the model detects it. ``precision``: see
    :func:`asrtune.models.inference_precision`.
    """
    require_transcribe(task, "Voxtral")
    longest = max(len(a) for a in audios) / SAMPLE_RATE
    if longest > MAX_AUDIO_SECONDS:
        log.warning(
            "%.0f s of audio in one prompt: Voxtral transcribes up to %d s; split longer files",
            longest,
            MAX_AUDIO_SECONDS,
        )
    inputs = transcription_inputs(loaded, audios, [language] * len(audios))
    tokenizer = loaded.processor.tokenizer
    with inference_precision(loaded.model, precision):
        embeds, attention_mask = prompt_embeddings(loaded.model, inputs)
        budget = _token_budget(loaded, audios, embeds.shape[1], max_new_tokens)
        ids = loaded.model.generate(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            max_new_tokens=budget,
            num_beams=num_beams,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    if not isinstance(ids, torch.Tensor):
        ids = ids["sequences"]
    # from embeddings alone, generate returns only the new tokens
    texts = tokenizer.batch_decode(ids.tolist(), skip_special_tokens=True)
    ended = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    capped = [ids.shape[-1] >= budget and int(row[-1]) not in ended for row in ids]
    return [Transcript(t.strip(), cap) for t, cap in zip(texts, capped, strict=True)]


def allow_empty_transcripts(loaded: LoadedModel) -> None:
    """Nothing to do: Voxtral's generation may end at its first step."""


def save(loaded: LoadedModel, out_dir: str | Path) -> None:
    """Write model (safetensors), generation config and processor (tekken.json) to ``out_dir``."""
    loaded.model.save_pretrained(out_dir)
    loaded.processor.save_pretrained(out_dir)
