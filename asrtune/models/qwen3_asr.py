"""Qwen3-ASR (Alibaba's audio LLM, e.g. Qwen/Qwen3-ASR-1.7B-hf): loading, training rows,
generation. Same functions as ``asrtune/models/whisper.py`` (the contract is
:class:`asrtune.models.family.FamilyAdapter`).

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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asrtune.data.audio import SAMPLE_RATE, consecutive_pieces
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
    refuse_quantization,
    refuse_timestamps,
    require_transcribe,
    text_tokens,
    token_budget,
    weight_options,
)
from asrtune.transcripts import join_texts

log = logging.getLogger("asrtune")

FAMILY = "qwen3_asr"
LORA_TASK_TYPE = "CAUSAL_LM"
# The learning rate LoRA trains with unless told otherwise: NOT measured (no pretrained
# Qwen3-ASR offline); Voxtral's rate for LoRA on an audio LLM's language model.
LORA_LEARNING_RATE = 1e-4
LOSS_SHIFTS_LABELS = True  # logits at position i predict labels[i + 1] (a causal LM)
GPU_INFERENCE_DTYPE = "bfloat16"  # the dtype the checkpoints are released in
TRAINING_MIX: dict[str, Any] = {}  # none measured: plain windows of transcripts
LM_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
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


def load_processor(path: str, fallback: str | None = None) -> Any:
    """Qwen3ASRProcessor: the Qwen2 tokenizer, the chat template and the feature extractor."""
    from transformers import Qwen3ASRProcessor

    what = "Qwen3-ASR processor (tokenizer + chat template + feature extractor)"
    return processor_from_first(Qwen3ASRProcessor.from_pretrained, path, fallback, what)


def load(
    name_or_path: str,
    *,
    dtype: torch.dtype | None = None,
    device: str | None = None,
    allow_pickle: bool = False,
    quantization: str | None = None,
) -> LoadedModel:
    """Load a Qwen3-ASR checkpoint (Hub id or folder). Only safetensors unless
    ``allow_pickle``; ``dtype`` None keeps the checkpoint's (bf16 for the real ones). No
    quantized base (``quantization`` must be None)."""
    refuse_quantization(quantization, FAMILY)
    from transformers import Qwen3ASRForConditionalGeneration

    options = weight_options(dtype, allow_pickle)
    model = from_pretrained(Qwen3ASRForConditionalGeneration, name_or_path, "Qwen3-ASR", **options)
    if device is not None:
        model.to(device)
    return LoadedModel(model, load_processor(name_or_path), FAMILY, name_or_path)


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


def encode_labels(
    loaded: LoadedModel,
    texts: Sequence[str],
    language: str | None,
    task: str,
    spans: Sequence[tuple[float, float]] | None = None,
) -> list[int]:
    """The supervised part of a row: the texts' tokens (joined by spaces) and
    ``<|im_end|>``. The language is forced in the prompt, not in the labels; a row without
    one is an error (see the module docstring). No ``spans``: no timestamps."""
    require_transcribe(task, "Qwen3-ASR")
    refuse_timestamps(spans is not None, "Qwen3-ASR")
    if language is None:
        raise AsrtuneError(
            "Qwen3-ASR trains with the language forced in the prompt: "
            "add a 'language' column or pass --language"
        )
    language_name(language)
    ids = text_tokens(loaded, join_texts(texts))
    return [*ids, loaded.processor.tokenizer.eos_token_id]


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


def window_item(
    loaded: LoadedModel, window: Sequence[Example], task: str, plan: WindowPlan = PLAIN_WINDOW
) -> dict[str, Any]:
    """One training item from a window laid out by ``plan`` (see
    :func:`asrtune.data.windows.window_audio`; never with timestamps). Utterances without
    text add audio only.

    Returns ``{"input_ids": list[int], "labels": list[int], "input_features": (128, frames)
    float32, "input_features_mask": (frames,)}``: the transcription prompt (language
    forced) + text + ``<|im_end|>``, and labels that are -100 over the prompt.
    """
    refuse_timestamps(plan.timestamps, "Qwen3-ASR")
    audio, _ = window_audio(window, plan)
    language = window[0].language
    target = encode_labels(loaded, [ex.row.text for ex in window if ex.row.text], language, task)
    inputs = transcription_inputs(loaded, [audio], [language])
    prompt = inputs["input_ids"][0].tolist()
    return {
        "input_ids": prompt + target,
        "labels": [-100] * len(prompt) + target,
        "input_features": inputs["input_features"][0],
        "input_features_mask": inputs["input_features_mask"][0],
    }


def pack_item(
    loaded: LoadedModel, example: Example, task: str, timestamps: bool = False
) -> PackItem:
    """Packing size of an example: its seconds and its text tokens (``<|im_end|>``
    excluded). Capabilities.packing is off for this family: nothing packs unless that
    changes."""
    refuse_timestamps(timestamps, "Qwen3-ASR")
    duration = example.row.duration or MAX_AUDIO_SECONDS
    return PackItem(duration, example.num_tokens - 1, example.language or "")


def packer(loaded: LoadedModel, task: str, language: str | None) -> WindowPacker:
    """A packer for the training window (:data:`MAX_AUDIO_SECONDS`) and its label budget."""
    require_transcribe(task, "Qwen3-ASR")
    return WindowPacker(MAX_AUDIO_SECONDS, limits(loaded).max_label_tokens - 1)


def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Right-pad a batch of training items.

    Returns ``input_ids`` (B, L) int64 (padded with :data:`PAD_TOKEN_ID`),
    ``attention_mask`` (B, L) int64 (0 on padding), ``labels`` (B, L) int64 (-100 on the
    prompt and padding), ``input_features`` (B, 128, F) float32 (zeros after each row's
    frames) and ``input_features_mask`` (B, F) int64 (0 there).
    """
    longest = max(len(f["input_ids"]) for f in features)
    frames = max(f["input_features"].shape[-1] for f in features)
    bins = features[0]["input_features"].shape[0]
    batch = len(features)
    input_ids = torch.full((batch, longest), PAD_TOKEN_ID, dtype=torch.long)
    attention_mask = torch.zeros((batch, longest), dtype=torch.long)
    labels = torch.full((batch, longest), -100, dtype=torch.long)
    input_features = torch.zeros((batch, bins, frames), dtype=torch.float32)
    features_mask = torch.zeros((batch, frames), dtype=torch.long)
    for i, f in enumerate(features):
        n = len(f["input_ids"])
        input_ids[i, :n] = torch.tensor(f["input_ids"], dtype=torch.long)
        attention_mask[i, :n] = 1
        labels[i, :n] = torch.tensor(f["labels"], dtype=torch.long)
        m = f["input_features"].shape[-1]
        input_features[i, :, :m] = torch.as_tensor(f["input_features"], dtype=torch.float32)
        features_mask[i, :m] = torch.as_tensor(f["input_features_mask"], dtype=torch.long)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "input_features": input_features,
        "input_features_mask": features_mask,
    }


def default_lora_targets(freeze_encoder: bool) -> str:
    """The language model's attention and MLP projections only (a regex): the audio encoder
    and projector stay frozen unless --lora_target_modules names them."""
    return rf".*language_model\..*\.({'|'.join(LM_LORA_TARGETS)})"


def freeze_encoder(model: torch.nn.Module) -> None:
    """Freeze the audio encoder and the projector (--freeze_encoder / --freeze_audio_tower):
    only the language model trains."""
    inner = core_model(model).model
    inner.audio_tower.requires_grad_(False)
    inner.multi_modal_projector.requires_grad_(False)


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
    context = core_model(model).config.text_config.max_position_embeddings
    prompt_length = inputs["input_ids"].shape[1]
    budget = max(1, min(budget, context - prompt_length))
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


def allow_empty_transcripts(loaded: LoadedModel) -> None:
    """Nothing to do: Qwen3-ASR's generation may end at its first step (``<|im_end|>``
    right after a forced language line; ``language None<asr_text>`` otherwise)."""


def save(loaded: LoadedModel, out_dir: str | Path) -> None:
    """Write model (safetensors), generation config and processor (tokenizer, chat template,
    feature extractor) to ``out_dir``."""
    loaded.model.save_pretrained(out_dir)
    loaded.processor.save_pretrained(out_dir)
