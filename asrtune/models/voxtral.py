"""Voxtral (Mistral's audio LLM, e.g. mistralai/Voxtral-Mini-3B-2507): loading, training rows,
generation. An audio-LLM family: what it shares comes from
``asrtune/models/kinds/audio_llm.py``; this module holds what differs (the tekken
processor, 30-s chunks, QLoRA, ISO 639-1 languages, generation from embeddings).

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
from typing import Any

import numpy as np
import torch

from asrtune.data.audio import SAMPLE_RATE
from asrtune.errors import AsrtuneError
from asrtune.models import (
    Limits,
    LoadedModel,
    Transcript,
    core_model,
    from_pretrained,
    inference_precision,
    processor_from_first,
    require_transcribe,
    token_budget,
    weight_options,
)
from asrtune.models.kinds.audio_llm import (  # the kind's shared work
    KIND,
    LM_LORA_TARGETS,
    LORA_TASK_TYPE,
    LOSS_SHIFTS_LABELS,
    allow_empty_transcripts,
    collate_prompts,
    default_lora_targets,
    encode_labels,
    freeze_encoder,
    pack_item,
    packer,
    save,
    summed_loss,
    window_item,
)

# the adapter's contract functions and constants that come from its kind
__all__ = [
    "KIND",
    "LM_LORA_TARGETS",
    "LORA_TASK_TYPE",
    "LOSS_SHIFTS_LABELS",
    "allow_empty_transcripts",
    "default_lora_targets",
    "encode_labels",
    "freeze_encoder",
    "pack_item",
    "packer",
    "save",
    "summed_loss",
    "window_item",
]

log = logging.getLogger("asrtune")

FAMILY = "voxtral"
# LoRA on a 3B+ language model: the shipped configs' rate (not measured here: no pretrained
# Voxtral offline)
LORA_LEARNING_RATE = 1e-4
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


def window_seconds(loaded: LoadedModel) -> float:
    """A training window: one encoder chunk (30 s): every chunk costs the same, however
    much of it is padding, so short utterances pack into one; longer ones stay alone."""
    return chunk_seconds(loaded)


def training_language(language: str | None) -> None:
    """A row's language: None (the model detects it) or an ISO 639-1 code."""
    if language is not None:
        language_code(language)


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


def audio_item(inputs: Any) -> dict[str, Any]:
    """A training item's audio: ``input_features`` (n_chunks, n_mels, frames) float32."""
    return {"input_features": inputs["input_features"]}


def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Right-pad a batch of training items (the kind's
    :func:`~asrtune.models.kinds.audio_llm.collate_prompts`: ``input_ids`` padded with
    ``<pad>``, ``attention_mask``, ``labels``) and ``input_features`` (sum of the rows'
    chunks, n_mels, frames) float32, rows in order.
    """
    batch = collate_prompts(features, PAD_TOKEN_ID)
    batch["input_features"] = torch.cat([f["input_features"] for f in features])
    return batch


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
