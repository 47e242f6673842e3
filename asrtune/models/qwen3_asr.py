"""Qwen3-ASR (Alibaba's audio LLM, e.g. Qwen/Qwen3-ASR-1.7B-hf): loading, training rows,
generation. An audio-LLM family (the contract is
:class:`asrtune.models.family.FamilyAdapter`): what it shares comes from
``asrtune/models/kinds/audio_llm.py``; this module holds what differs.

The model is ``model.model.{audio_tower, multi_modal_projector, language_model}`` +
``model.lm_head`` (tied to the embeddings): the audio encoder reads 128-bin log-mel
features in 1-s chunks (100 frames → 13 embeddings after three stride-2 convolutions;
attention over 8-s windows), so audio of any length gives about 13 embeddings per second,
which replace the ``<|audio_pad|>`` placeholders of the chat prompt that the processor's
``apply_transcription_request`` builds::

    <|im_start|>system\\n<|im_end|>\\n<|im_start|>user\\n
    <|audio_start|><|audio_pad|> x N<|audio_end|><|im_end|>\\n<|im_start|>assistant\\n
    [language English<asr_text>]

The model answers ``language English<asr_text>TRANSCRIPT<|im_end|>``: it names the language,
then the transcript. With a known language the prompt ends with that prefix already
(the processor's way of forcing a language) and the model writes only the transcript.

Training: a row is the prompt with the row's language forced + the transcript's tokens +
``<|im_end|>``; the labels are -100 over the prompt, then the transcript tokens and
``<|im_end|>`` (the model shifts them itself, :data:`LOSS_SHIFTS_LABELS`), so the model
learns to stop. The transcript is exactly what the model writes after ``<asr_text>`` at
inference, with or without a forced language: generating without one, the model first
writes the language line itself, and the transcript that follows is conditioned on the
same tokens as in training. A training row needs a language (``language`` column or
``--language``), as for a multilingual Whisper: the labels of a row whose language is
unknown would have to start with a ``language X`` line nobody knows.

Decoding: greedy or beam search with the model's own ``generate`` (each row's features
stay with its row), stopping at ``<|im_end|>`` or ``<|endoftext|>``; only the transcript is
returned (the text after ``<asr_text>``, never the language line).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from asrtune.data.audio import SAMPLE_RATE, consecutive_pieces
from asrtune.errors import AsrtuneError
from asrtune.models import (
    Limits,
    LoadedModel,
    Transcript,
    core_model,
    inference_precision,
    require_transcribe,
    token_budget,
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
from asrtune.models.kinds.common import loader, processor_loader
from asrtune.transcripts import join_texts

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

FAMILY = "qwen3_asr"
# The learning rate LoRA trains with unless told otherwise: NOT measured (no pretrained
# Qwen3-ASR offline); Voxtral's rate for LoRA on an audio LLM's language model.
LORA_LEARNING_RATE = 1e-4
GPU_INFERENCE_DTYPE = "bfloat16"  # the dtype the checkpoints are released in
TRAINING_MIX: dict[str, Any] = {}  # none measured: plain windows of transcripts
# Seconds of audio per training item. The encoder takes long audio (its attention is
# windowed, 8 s), but the text model attends over all of a row's audio tokens (13 per
# second): 30 s, Whisper's and Voxtral's window, keeps a row's cost bounded, and is also the
# longest VAD chunk and the line between short and long-form evaluation.
MAX_AUDIO_SECONDS = 30.0
# Longest audio generated in one prompt (the qwen-asr library's MAX_ASR_INPUT_SECONDS, 20
# min); longer audio is transcribed in consecutive pieces, joined with spaces.
MAX_GENERATE_SECONDS = 1200.0
# Prompt tokens besides the audio placeholders: the chat turns and a forced language line,
# with room to spare.
PROMPT_OVERHEAD = 32
# Tokens allowed for the "language X<asr_text>" line the model writes when the language is
# not forced (on top of the transcript's budget).
HEADER_TOKENS = 8
# Value that pads input_ids on the right in a training batch: masked out (attention and
# labels), any id but the audio placeholder's would do.
PAD_TOKEN_ID = 0
ASR_TEXT = "<asr_text>"


#: The processor: the Qwen2 tokenizer, the chat template and the feature extractor.
load_processor = processor_loader("Qwen3ASRProcessor")
#: A checkpoint (Hub id or folder); no quantized base.
load = loader("Qwen3ASRForConditionalGeneration", FAMILY, load_processor)


def window_seconds(loaded: LoadedModel) -> float:
    """A training window: :data:`MAX_AUDIO_SECONDS`."""
    return MAX_AUDIO_SECONDS


def training_language(language: str | None) -> None:
    """A training row needs a language Qwen3-ASR speaks (forced in the prompt; see the
    module docstring)."""
    if language is None:
        raise AsrtuneError(
            "Qwen3-ASR trains with the language forced in the prompt: "
            "add a 'language' column or pass --language"
        )
    language_name(language)


def sole_language(loaded: LoadedModel) -> str | None:
    """Qwen3-ASR is multilingual (30 languages): no language is implied."""
    return None


def _post_cnn_frames(frames: int) -> int:
    """Encoder positions from ``frames`` mel frames of one chunk (three stride-2 convs)."""
    for _ in range(3):
        frames = (frames - 1) // 2 + 1 if frames > 0 else 0
    return frames


def audio_token_count(loaded: LoadedModel, samples: int) -> int:
    """``<|audio_pad|>`` placeholders (= audio embeddings) for ``samples`` 16-kHz samples:
    13 per full 1-s chunk, and the rest's. The feature extractor zero-pads clips shorter
    than its ``min_length`` (0.5 s) to it."""
    extractor = loaded.processor.feature_extractor
    samples = max(samples, int(extractor.min_length))
    frames = samples // extractor.hop_length
    chunk = 2 * core_model(loaded.model).config.audio_config.n_window
    return (frames // chunk) * _post_cnn_frames(chunk) + _post_cnn_frames(frames % chunk)


def limits(loaded: LoadedModel) -> Limits:
    """:data:`MAX_AUDIO_SECONDS` of audio, and the rest of the text context for labels."""
    context = core_model(loaded.model).config.text_config.max_position_embeddings
    audio = audio_token_count(loaded, int(MAX_AUDIO_SECONDS * SAMPLE_RATE))
    return Limits(max_seconds=MAX_AUDIO_SECONDS, max_label_tokens=context - audio - PROMPT_OVERHEAD)


def language_name(language: str) -> str:
    """'en', 'EN', 'english', 'English' → 'English' (the name the model writes); raises
    unless Qwen3-ASR speaks it."""
    from transformers.models.qwen3_asr.processing_qwen3_asr import LANGUAGE_CODE_TO_NAME

    key = language.strip().lower()
    by_name = {name.lower(): name for name in LANGUAGE_CODE_TO_NAME.values()}
    name = LANGUAGE_CODE_TO_NAME.get(key) or by_name.get(key)
    if name is None:
        known = ", ".join(sorted(LANGUAGE_CODE_TO_NAME))
        raise AsrtuneError(f"Qwen3-ASR does not speak {language!r} (language codes: {known})")
    return name


def transcription_inputs(
    loaded: LoadedModel,
    audios: Sequence[np.ndarray],
    languages: Sequence[str | None],
    context: str | None = None,
) -> Any:
    """The processor's transcription request for (n_samples,) 16-kHz arrays, each row's
    language forced when given (None: the model names it); ``context`` (hotwords) is the
    system prompt's text (None: the system prompt stays empty).

    Returns ``input_ids`` / ``attention_mask`` (B, P), left-padded, ``input_features``
    (B, 128, frames) and ``input_features_mask`` (B, frames), frames a multiple of 100.
    """
    extra = {} if context is None else {"prompt": [context] * len(audios)}
    return loaded.processor.apply_transcription_request(
        audio=[np.asarray(a, dtype=np.float32) for a in audios],
        language=[language_name(lang) if lang else None for lang in languages],
        **extra,
    )


def audio_item(inputs: Any) -> dict[str, Any]:
    """A training item's audio: ``input_features`` (128, frames) float32 and
    ``input_features_mask`` (frames,)."""
    return {
        "input_features": inputs["input_features"][0],
        "input_features_mask": inputs["input_features_mask"][0],
    }


def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Right-pad a batch of training items: the kind's
    :func:`~asrtune.models.kinds.audio_llm.collate_prompts` (``input_ids`` padded with
    :data:`PAD_TOKEN_ID`, ``attention_mask``, ``labels``), ``input_features`` (B, 128, F)
    float32 (zeros after each row's frames) and ``input_features_mask`` (B, F) int64 (0
    there).
    """
    batch = collate_prompts(features, PAD_TOKEN_ID)
    frames = max(f["input_features"].shape[-1] for f in features)
    bins = features[0]["input_features"].shape[0]
    input_features = torch.zeros((len(features), bins, frames), dtype=torch.float32)
    features_mask = torch.zeros((len(features), frames), dtype=torch.long)
    for i, f in enumerate(features):
        m = f["input_features"].shape[-1]
        input_features[i, :, :m] = torch.as_tensor(f["input_features"], dtype=torch.float32)
        features_mask[i, :m] = torch.as_tensor(f["input_features_mask"], dtype=torch.long)
    batch["input_features"] = input_features
    batch["input_features_mask"] = features_mask
    return batch


def transcript_of(raw: str, forced: bool) -> str:
    """The transcript in a decoded answer (special tokens skipped, ``<asr_text>`` kept):
    the text after ``<asr_text>``; without one, the whole answer when the language was
    forced, and nothing when the model was to name it and stopped within its language line
    (``language Engl``, cut by the token cap)."""
    if ASR_TEXT in raw:
        return raw.split(ASR_TEXT, 1)[1].replace(ASR_TEXT, "").strip()
    if not forced and raw.lstrip().lower().startswith("language"):
        return ""
    return raw.strip()


def _generate_batch(
    loaded: LoadedModel,
    audios: Sequence[np.ndarray],
    language: str | None,
    num_beams: int,
    max_new_tokens: int | None,
    precision: str,
    context: str | None = None,
) -> list[Transcript]:
    model = loaded.model
    tokenizer = loaded.processor.tokenizer
    inputs = transcription_inputs(loaded, audios, [language] * len(audios), context)
    seconds = max(len(a) for a in audios) / SAMPLE_RATE
    budget = token_budget(seconds, max_new_tokens) + (0 if language else HEADER_TOKENS)
    positions = core_model(model).config.text_config.max_position_embeddings
    prompt_length = inputs["input_ids"].shape[1]
    budget = max(1, min(budget, positions - prompt_length))
    param = next(model.parameters())
    inputs = inputs.to(param.device)
    inputs["input_features"] = inputs["input_features"].to(param.dtype)
    ended = [tokenizer.convert_tokens_to_ids("<|endoftext|>"), tokenizer.eos_token_id]
    with inference_precision(model, precision):
        ids = model.generate(
            **inputs,
            max_new_tokens=budget,
            num_beams=num_beams,
            do_sample=False,
            eos_token_id=ended,
            pad_token_id=tokenizer.eos_token_id,
        )
    if not isinstance(ids, torch.Tensor):
        ids = ids["sequences"]
    new = ids[:, prompt_length:]
    raw = tokenizer.batch_decode(new.tolist(), skip_special_tokens=True)
    capped = [new.shape[-1] >= budget and int(row[-1]) not in ended for row in new]
    return [
        Transcript(transcript_of(text, forced=language is not None), cap)
        for text, cap in zip(raw, capped, strict=True)
    ]


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
    """Transcribe a batch of (n_samples,) 16-kHz arrays of any length.

    Generation continues the transcription prompt until ``<|im_end|>``; only the transcript
    is returned. Without a language the model names it first (:data:`HEADER_TOKENS` more
    tokens are allowed for that line). Audio longer than :data:`MAX_GENERATE_SECONDS` is
    transcribed in pieces (a word on a cut may be split). ``max_new_tokens`` caps each
    piece's tokens (default: 32 + 25 per second); a capped transcript says so.
    ``precision``: see :func:`asrtune.models.inference_precision`.
    """
    require_transcribe(task, "Qwen3-ASR")
    return _generate(loaded, audios, language, num_beams, max_new_tokens, precision)


def _generate(
    loaded: LoadedModel,
    audios: Sequence[np.ndarray],
    language: str | None,
    num_beams: int,
    max_new_tokens: int | None,
    precision: str,
    context: str | None = None,
) -> list[Transcript]:
    """:func:`generate`'s work, with ``context`` as the system prompt (None: empty)."""
    pieces = [consecutive_pieces(a, MAX_GENERATE_SECONDS) for a in audios]
    flat = [piece for row in pieces for piece in row]
    texts = _generate_batch(loaded, flat, language, num_beams, max_new_tokens, precision, context)
    out: list[Transcript] = []
    position = 0
    for row in pieces:
        mine = texts[position : position + len(row)]
        position += len(row)
        out.append(Transcript(join_texts(mine), any(t.capped for t in mine)))
    return out


# ----- hotwords: the terms as the system prompt's context ------------------------------------


def hotword_context(hotwords: Sequence[str]) -> str | None:
    """The system prompt that carries ``hotwords`` (None for none: the prompt stays empty),
    as the processor's ``prompt`` (context) argument takes it."""
    return ", ".join(hotwords) if hotwords else None


@torch.no_grad()
def generate_boosted(
    loaded: LoadedModel,
    audios: Sequence[np.ndarray],
    language: str | None,
    task: str,
    hotwords: Sequence[str],
    num_beams: int = 1,
    max_new_tokens: int | None = None,
    precision: str = "auto",
) -> list[Transcript]:
    """:func:`generate` with ``hotwords`` as context in the system prompt (Qwen3-ASR's own
    way of biasing toward words). No hotwords: exactly :func:`generate`."""
    require_transcribe(task, "Qwen3-ASR")
    context = hotword_context(hotwords)
    return _generate(loaded, audios, language, num_beams, max_new_tokens, precision, context)
