"""NVIDIA Canary (e.g. nvidia/canary-1b-v2): loading, training rows, generation. Same
functions as ``asrtune/models/whisper.py`` (the contract is
:class:`asrtune.models.family.FamilyAdapter`).

The model is ``model.model.{encoder, decoder}`` + ``model.proj_out`` (tied to the decoder's
embeddings): a FastConformer encoder (128 log-mel bins, 10-ms hop, 8x subsampling: one
encoder frame per 80 ms, audio of any length) and a Transformer decoder that reads it
through cross-attention. The decoder starts from the prompt that the processor's
``apply_transcription_request`` renders with the checkpoint's chat template::

    <|startofcontext|><|startoftranscript|><|emo:undefined|><|SRC|><|TGT|>
    <|pnc|><|noitn|><|notimestamp|><|nodiarize|>

``SRC`` is the language spoken, ``TGT`` the language written: the same for transcription,
English for the task ``translate`` (Canary-1B-v2 translates its 24 other languages to
English). ``<|pnc|>`` asks for punctuation and capitals, as the transcripts carry them.

Training: a row's decoder input is the prompt (the row's own language) + the transcript's
tokens, its labels the same sequence one step ahead (``<|endoftext|>`` last), -100 under
the prompt: exactly the processor's ``output_labels`` item for the conversation with the
transcript as the assistant's answer, with the prompt masked. The logits at position i
predict ``labels[i]`` (:data:`LOSS_SHIFTS_LABELS` is False). A row needs a language
(``language`` column or ``--language``): the prompt names it.

Decoding: greedy or beam search with the model's own ``generate`` from the prompt,
stopping at ``<|endoftext|>``; without a language the prompt says English (the processor's
default). Audio longer than :data:`MAX_AUDIO_SECONDS` is transcribed in consecutive pieces.
"""

from __future__ import annotations

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
    text_tokens,
    token_budget,
    weight_options,
)
from asrtune.models.kinds.encoder_decoder import KIND, summed_loss  # noqa: F401 (its kind)
from asrtune.transcripts import join_texts

FAMILY = "canary"
LORA_TASK_TYPE = None  # peft's SEQ_2_SEQ_LM wrapper passes input_ids, which Canary lacks
# The learning rate LoRA trains with unless told otherwise: NOT measured (no pretrained
# Canary offline); the rate asrtune uses for LoRA on Parakeet's FastConformer.
LORA_LEARNING_RATE = 1e-4
LOSS_SHIFTS_LABELS = False  # the decoder input is the labels shifted right: logits align
GPU_INFERENCE_DTYPE = "bfloat16"  # the dtype NVIDIA runs Canary in
TRAINING_MIX: dict[str, Any] = {}  # none measured: plain windows of transcripts
# The decoder's attention and MLP projections (self- and cross-attention), and the
# encoder's (conformer attention and both feed-forward modules).
DECODER_LORA_PATTERN = (
    r".*decoder\.layers\.\d+\.((self_attn|encoder_attn)\.(q_proj|k_proj|v_proj|o_proj)|mlp\.fc[12])"
)
ENCODER_LORA_PATTERN = (
    r".*encoder\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|o_proj)"
    r"|feed_forward[12]\.linear[12])"
)
# Seconds of audio per training item and per generated piece: Canary-1B-v2 was trained on
# segments of up to 40 s, and NVIDIA transcribes longer audio in chunks.
MAX_AUDIO_SECONDS = 40.0
# Tokens of the decoder prompt (start of context ... <|nodiarize|>).
PROMPT_TOKENS = 9
# The language the prompt names when none is given (CanaryProcessor's default).
DEFAULT_LANGUAGE = "en"
# The language translations are written in (task "translate").
TRANSLATION_TARGET = "en"


def load_processor(path: str, fallback: str | None = None) -> Any:
    """CanaryProcessor: the tokenizer, the chat template and the feature extractor."""
    from transformers import CanaryProcessor

    what = "Canary processor (tokenizer + chat template + feature extractor)"
    return processor_from_first(CanaryProcessor.from_pretrained, path, fallback, what)


def load(
    name_or_path: str,
    *,
    dtype: torch.dtype | None = None,
    device: str | None = None,
    allow_pickle: bool = False,
    quantization: str | None = None,
) -> LoadedModel:
    """Load a Canary checkpoint (Hub id or folder). Only safetensors unless
    ``allow_pickle``; ``dtype`` None keeps the checkpoint's. No quantized base."""
    refuse_quantization(quantization, FAMILY)
    from transformers import CanaryForConditionalGeneration

    options = weight_options(dtype, allow_pickle)
    model = from_pretrained(CanaryForConditionalGeneration, name_or_path, "Canary", **options)
    if device is not None:
        model.to(device)
    return LoadedModel(model, load_processor(name_or_path), FAMILY, name_or_path)


def sole_language(loaded: LoadedModel) -> str | None:
    """Canary-1B-v2 speaks 25 languages: none is implied."""
    return None


def limits(loaded: LoadedModel) -> Limits:
    """:data:`MAX_AUDIO_SECONDS` of audio; the decoder's positions less the prompt for
    labels (the transcript and ``<|endoftext|>``)."""
    context = core_model(loaded.model).config.decoder_config.max_position_embeddings
    return Limits(max_seconds=MAX_AUDIO_SECONDS, max_label_tokens=context - PROMPT_TOKENS)


def language_code(language: str) -> str:
    """'de', 'DE', 'german', 'German' → 'de' (the prompt's language token); raises unless
    Canary speaks it."""
    from transformers.models.canary.processing_canary import LANGUAGE_CODE_TO_NAME

    key = language.strip().lower()
    by_name = {name.lower(): code for code, name in LANGUAGE_CODE_TO_NAME.items()}
    code = key if key in LANGUAGE_CODE_TO_NAME else by_name.get(key)
    if code is None:
        known = ", ".join(sorted(LANGUAGE_CODE_TO_NAME))
        raise AsrtuneError(f"Canary does not speak {language!r} (language codes: {known})")
    return code


def _target(source: str, task: str) -> str:
    """The language written for ``task``: the spoken one, or English for ``translate``."""
    if task == "transcribe":
        return source
    if task == "translate":
        return TRANSLATION_TARGET
    raise AsrtuneError(f"Canary models cannot {task}; use --task transcribe or translate")


def encode_labels(
    loaded: LoadedModel,
    texts: Sequence[str],
    language: str | None,
    task: str,
    spans: Sequence[tuple[float, float]] | None = None,
) -> list[int]:
    """The supervised part of a row: the texts' tokens (joined by spaces) and
    ``<|endoftext|>``. The languages are in the prompt, not in the labels; a row without a
    language is an error (see the module docstring). No ``spans``: no timestamps."""
    refuse_timestamps(spans is not None, "Canary")
    if language is None:
        raise AsrtuneError(
            "Canary trains with the spoken language named in its prompt: "
            "add a 'language' column or pass --language"
        )
    _target(language_code(language), task)
    ids = text_tokens(loaded, join_texts(texts))
    return [*ids, loaded.processor.tokenizer.eos_token_id]


def transcription_inputs(
    loaded: LoadedModel, audios: Sequence[np.ndarray], language: str | None, task: str
) -> Any:
    """The processor's transcription request for (n_samples,) 16-kHz arrays.

    Returns ``input_features`` (B, frames, 128) float32, ``attention_mask`` (B, frames)
    (10-ms frames, 0 after each row's audio) and ``decoder_input_ids`` (B,
    :data:`PROMPT_TOKENS`).
    """
    source = language_code(language or DEFAULT_LANGUAGE)
    return loaded.processor.apply_transcription_request(
        audio=[np.asarray(a, dtype=np.float32) for a in audios],
        source_language=source,
        target_language=_target(source, task),
        punctuation=True,
    )


def window_item(
    loaded: LoadedModel, window: Sequence[Example], task: str, plan: WindowPlan = PLAIN_WINDOW
) -> dict[str, Any]:
    """One training item from a window laid out by ``plan`` (see
    :func:`asrtune.data.windows.window_audio`; never with timestamps). Utterances without
    text add audio only.

    Returns ``{"input_features": (frames, 128) float32, "attention_mask": (frames,) int64,
    "decoder_input_ids": list[int], "labels": list[int]}``: the prompt + text, and the
    same one step ahead with ``<|endoftext|>`` last and -100 under the prompt.
    """
    refuse_timestamps(plan.timestamps, "Canary")
    audio, _ = window_audio(window, plan)
    language = window[0].language
    target = encode_labels(loaded, [ex.row.text for ex in window if ex.row.text], language, task)
    inputs = transcription_inputs(loaded, [audio], language, task)
    prompt = inputs["decoder_input_ids"][0].tolist()
    return {
        "input_features": inputs["input_features"][0],
        "attention_mask": inputs["attention_mask"][0],
        "decoder_input_ids": prompt + target[:-1],
        "labels": [-100] * (len(prompt) - 1) + target,
    }


def pack_item(
    loaded: LoadedModel, example: Example, task: str, timestamps: bool = False
) -> PackItem:
    """Packing size of an example: its seconds and its text tokens (``<|endoftext|>``
    excluded). Capabilities.packing is off for this family: nothing packs unless that
    changes."""
    refuse_timestamps(timestamps, "Canary")
    duration = example.row.duration or MAX_AUDIO_SECONDS
    return PackItem(duration, example.num_tokens - 1, example.language or "")


def packer(loaded: LoadedModel, task: str, language: str | None) -> WindowPacker:
    """A packer for the training window (:data:`MAX_AUDIO_SECONDS`) and its label budget."""
    return WindowPacker(MAX_AUDIO_SECONDS, limits(loaded).max_label_tokens - 1)


def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Right-pad a batch of training items.

    Returns ``input_features`` (B, F, 128) float32 (zeros after each row's frames),
    ``attention_mask`` (B, F) int64 (0 there), ``decoder_input_ids`` (B, L) int64 (padded
    with the decoder start token, masked), ``decoder_attention_mask`` (B, L) int64 and
    ``labels`` (B, L) int64 (-100 under the prompt and on padding).
    """
    frames = max(f["input_features"].shape[0] for f in features)
    bins = features[0]["input_features"].shape[-1]
    longest = max(len(f["decoder_input_ids"]) for f in features)
    batch = len(features)
    input_features = torch.zeros((batch, frames, bins), dtype=torch.float32)
    attention_mask = torch.zeros((batch, frames), dtype=torch.long)
    start = features[0]["decoder_input_ids"][0]
    decoder_input_ids = torch.full((batch, longest), start, dtype=torch.long)
    decoder_attention_mask = torch.zeros((batch, longest), dtype=torch.long)
    labels = torch.full((batch, longest), -100, dtype=torch.long)
    for i, f in enumerate(features):
        m = f["input_features"].shape[0]
        input_features[i, :m] = torch.as_tensor(f["input_features"], dtype=torch.float32)
        attention_mask[i, :m] = torch.as_tensor(f["attention_mask"], dtype=torch.long)
        n = len(f["decoder_input_ids"])
        decoder_input_ids[i, :n] = torch.tensor(f["decoder_input_ids"], dtype=torch.long)
        decoder_attention_mask[i, :n] = 1
        labels[i, :n] = torch.tensor(f["labels"], dtype=torch.long)
    return {
        "input_features": input_features,
        "attention_mask": attention_mask,
        "decoder_input_ids": decoder_input_ids,
        "decoder_attention_mask": decoder_attention_mask,
        "labels": labels,
    }


def default_lora_targets(freeze_encoder: bool) -> str:
    """The decoder's attention and MLP projections, and the encoder's attention and
    feed-forward projections unless the encoder is frozen (a regex)."""
    if freeze_encoder:
        return DECODER_LORA_PATTERN
    return f"({DECODER_LORA_PATTERN})|({ENCODER_LORA_PATTERN})"


def freeze_encoder(model: torch.nn.Module) -> None:
    """Freeze the FastConformer encoder (--freeze_encoder): only the decoder trains. Its
    batch norms then normalize with their running statistics in training too."""
    core_model(model).model.encoder.requires_grad_(False)


def _generate_batch(
    loaded: LoadedModel,
    audios: Sequence[np.ndarray],
    language: str | None,
    task: str,
    num_beams: int,
    max_new_tokens: int | None,
    precision: str,
) -> list[Transcript]:
    model = loaded.model
    tokenizer = loaded.processor.tokenizer
    inputs = transcription_inputs(loaded, audios, language, task)
    seconds = max(len(a) for a in audios) / SAMPLE_RATE
    context = core_model(model).config.decoder_config.max_position_embeddings
    prompt_length = inputs["decoder_input_ids"].shape[1]
    budget = max(1, min(token_budget(seconds, max_new_tokens), context - prompt_length))
    param = next(model.parameters())
    inputs = inputs.to(param.device)
    inputs["input_features"] = inputs["input_features"].to(param.dtype)
    with inference_precision(model, precision):
        ids = model.generate(
            **inputs,
            max_new_tokens=budget,
            num_beams=num_beams,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    if not isinstance(ids, torch.Tensor):
        ids = ids["sequences"]
    new = ids[:, prompt_length:]
    texts = tokenizer.batch_decode(new.tolist(), skip_special_tokens=True)
    ended = tokenizer.eos_token_id
    capped = [new.shape[-1] >= budget and ended not in row.tolist() for row in new]
    return [Transcript(t.strip(), cap) for t, cap in zip(texts, capped, strict=True)]


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
    """Transcribe (or translate to English) a batch of (n_samples,) 16-kHz arrays of any
    length.

    Generation continues the decoder prompt until ``<|endoftext|>``. Audio longer than
    :data:`MAX_AUDIO_SECONDS` is transcribed in consecutive pieces joined with spaces (a
    word on a cut may be split). ``max_new_tokens`` caps each piece's tokens (default:
    32 + 25 per second); a capped transcript says so. ``precision``: see
    :func:`asrtune.models.inference_precision`.
    """
    pieces = [consecutive_pieces(a, MAX_AUDIO_SECONDS) for a in audios]
    flat = [piece for row in pieces for piece in row]
    texts = _generate_batch(loaded, flat, language, task, num_beams, max_new_tokens, precision)
    out: list[Transcript] = []
    position = 0
    for row in pieces:
        mine = texts[position : position + len(row)]
        position += len(row)
        out.append(Transcript(join_texts(mine), any(t.capped for t in mine)))
    return out


def allow_empty_transcripts(loaded: LoadedModel) -> None:
    """Nothing to do: Canary's generation may end at its first step (``<|endoftext|>``
    right after the prompt)."""


def save(loaded: LoadedModel, out_dir: str | Path) -> None:
    """Write model (safetensors), generation config and processor (tokenizer, chat template,
    feature extractor) to ``out_dir``."""
    loaded.model.save_pretrained(out_dir)
    loaded.processor.save_pretrained(out_dir)
