"""Parakeet CTC (NVIDIA's FastConformer encoder + CTC head, e.g. nvidia/parakeet-ctc-0.6b):
loading, training items, greedy CTC decoding. Same functions as ``asrtune/models/whisper.py``
(the contract is :class:`asrtune.models.family.FamilyAdapter`).

The model is ``model.encoder`` (8x convolutional subsampling of 80-bin log-mel features,
10-ms hop, then conformer blocks: feed-forward, relative-position self-attention,
convolution, feed-forward) + ``model.ctc_head`` (a 1x1 convolution to the vocabulary).
Every encoder frame (80 ms in the real models) gets a distribution over the tokens and the
blank, which is the tokenizer's pad token (``config.pad_token_id``, the last id).

Training: an item is the window's log-mel features (frames, 80) and the token ids of its
text (no blank, no special tokens: CTC targets); a batch pads the features with zeros (with
an ``attention_mask``) and the labels with -100, which ``ParakeetForCTC``'s loss drops.
The loss is transformers' CTC loss (``ForCTCLoss``); asrtune's trainer takes it per
utterance and divides by the label tokens of the global batch (see
``asrtune/trainer.py``).

Decoding: greedy, the model's own ``generate`` (frame-wise argmax, padding frames set to the
blank), then the repeats are collapsed and the blanks dropped (the tokenizer's CTC decode).
Audio longer than :data:`MAX_AUDIO_SECONDS` is cut into consecutive pieces that are decoded
separately and joined with spaces (a word on a cut may be split).
"""

from __future__ import annotations

import itertools
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
    inference_precision,
    processor_from_first,
)

log = logging.getLogger("asrtune")

FAMILY = "parakeet_ctc"
LORA_TASK_TYPE = None  # a plain LoRA wrapper: no generation head to wrap
# The learning rate LoRA trains with unless told otherwise: NOT measured (no pretrained
# Parakeet offline); the usual rate for LoRA on a 0.6-1.1B encoder.
LORA_LEARNING_RATE = 1e-4
# Not used by the loss: CTC aligns frames and labels itself, and asrtune's trainer takes
# the model's own CTC loss for a family whose decoding is "ctc" (no label shift either way).
LOSS_SHIFTS_LABELS = False
GPU_INFERENCE_DTYPE = "bfloat16"  # transformers' CTC loss runs in float32 whatever the dtype
TRAINING_MIX: dict[str, Any] = {}  # none measured: plain windows of transcripts
# Seconds of audio per training item and per decoded piece. The FastConformer's attention
# is global (cost quadratic in frames): NeMo trains Parakeet on utterances up to 20-30 s.
MAX_AUDIO_SECONDS = 30.0
# The self-attention and feed-forward linear layers of every conformer block.
ATTENTION_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
FEED_FORWARD_TARGETS = ("linear1", "linear2")


def core_model(model: torch.nn.Module) -> Any:
    """The ParakeetForCTC inside a PeftModel (or the model itself)."""
    from peft import PeftModel

    return model.get_base_model() if isinstance(model, PeftModel) else model


def load_processor(path: str, fallback: str | None = None) -> Any:
    """ParakeetProcessor: the feature extractor + the tokenizer (CTC decoding)."""
    from transformers import ParakeetProcessor

    what = "Parakeet processor (tokenizer + feature extractor)"
    return processor_from_first(ParakeetProcessor.from_pretrained, path, fallback, what)


def load(
    name_or_path: str,
    *,
    dtype: torch.dtype | None = None,
    device: str | None = None,
    allow_pickle: bool = False,
    quantization: str | None = None,
) -> LoadedModel:
    """Load a ParakeetForCTC checkpoint (Hub id or folder). Only safetensors unless
    ``allow_pickle``; no quantized base (``quantization`` must be None)."""
    if quantization is not None:
        raise AsrtuneError("--quantization is not supported for parakeet_ctc models")
    from transformers import ParakeetForCTC

    kwargs: dict[str, Any] = {"dtype": dtype, "use_safetensors": None if allow_pickle else True}
    try:
        model = ParakeetForCTC.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError, TypeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        message = f"cannot load Parakeet CTC model {name_or_path!r}: {first_line}"
        raise AsrtuneError(message) from exc
    if device is not None:
        model.to(device)
    return LoadedModel(model, load_processor(name_or_path), FAMILY, name_or_path)


def frames_per_second(loaded: LoadedModel) -> float:
    """Encoder frames (CTC outputs) per second of audio: 12.5 for the real models."""
    extractor = loaded.processor.feature_extractor
    factor = core_model(loaded.model).config.encoder_config.subsampling_factor
    return extractor.sampling_rate / extractor.hop_length / factor


def limits(loaded: LoadedModel) -> Limits:
    """:data:`MAX_AUDIO_SECONDS` of audio, and no more label tokens than encoder frames in
    that much audio (CTC emits at most one token per frame; an utterance whose own frames
    are too few gets a zero loss, ``ctc_zero_infinity``)."""
    return Limits(
        max_seconds=MAX_AUDIO_SECONDS,
        max_label_tokens=int(MAX_AUDIO_SECONDS * frames_per_second(loaded)),
    )


def sole_language(loaded: LoadedModel) -> str | None:
    """nvidia/parakeet-ctc-0.6b and -1.1b are English-only (their tokenizer too)."""
    return "en"


def _check_task(task: str) -> None:
    if task != "transcribe":
        raise AsrtuneError(f"Parakeet CTC models cannot {task}; use --task transcribe")


def _check_no_timestamps(timestamps: bool) -> None:
    if timestamps:
        raise AsrtuneError("parakeet_ctc models are trained without timestamps")


def encode_labels(
    loaded: LoadedModel,
    texts: Sequence[str],
    language: str | None,
    task: str,
    spans: Sequence[tuple[float, float]] | None = None,
) -> list[int]:
    """CTC targets: the token ids of the texts joined by spaces; no blank, no special
    tokens. ``language`` is not part of the targets; no ``spans`` (no timestamps)."""
    _check_task(task)
    _check_no_timestamps(spans is not None)
    tokenizer = loaded.processor.tokenizer
    text = " ".join(t.strip() for t in texts if t.strip())
    ids = tokenizer.encode(text, add_special_tokens=False) if text else []
    blank = core_model(loaded.model).config.pad_token_id
    return [i for i in ids if i != blank]


def features(loaded: LoadedModel, audios: Sequence[np.ndarray]) -> Any:
    """The feature extractor's ``input_features`` (B, frames, 80) float32 and
    ``attention_mask`` (B, frames) for (n_samples,) 16-kHz arrays."""
    return loaded.processor.feature_extractor(
        [np.asarray(a, dtype=np.float32) for a in audios],
        sampling_rate=SAMPLE_RATE,
        return_attention_mask=True,
        return_tensors="pt",
    )


def window_item(
    loaded: LoadedModel, window: Sequence[Example], task: str, plan: WindowPlan = PLAIN_WINDOW
) -> dict[str, Any]:
    """One training item from a window laid out by ``plan`` (see
    :func:`asrtune.data.windows.window_audio`; never with timestamps).

    Returns ``{"input_features": (frames, 80) float32, "labels": list[int]}``: the
    features of the window's audio and the CTC targets of its texts.
    """
    _check_no_timestamps(plan.timestamps)
    audio, _ = window_audio(window, plan)
    inputs = features(loaded, [audio])
    texts = [ex.row.text for ex in window if ex.row.text]
    return {
        "input_features": inputs["input_features"][0],
        "labels": encode_labels(loaded, texts, window[0].language, task),
    }


def pack_item(
    loaded: LoadedModel, example: Example, task: str, timestamps: bool = False
) -> PackItem:
    """Packing size of an example: its seconds and its label tokens (no timestamps).
    Capabilities.packing is off for this family: nothing packs unless that changes."""
    _check_no_timestamps(timestamps)
    duration = example.row.duration or MAX_AUDIO_SECONDS
    return PackItem(duration, example.num_tokens, example.language or "")


def packer(loaded: LoadedModel, task: str, language: str | None) -> WindowPacker:
    """A packer for the training window (:data:`MAX_AUDIO_SECONDS`) and its label budget."""
    _check_task(task)
    budget = limits(loaded)
    return WindowPacker(budget.max_seconds, budget.max_label_tokens)


def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Right-pad a batch of training items.

    Returns ``input_features`` (B, F, 80) float32 (zeros on padding, as the feature
    extractor pads), ``attention_mask`` (B, F) int64 (0 on padding) and ``labels`` (B, U)
    int64, -100 after each row's targets (``ForCTCLoss`` masks -100 out).
    """
    batch = len(features)
    frames = max(f["input_features"].shape[0] for f in features)
    bins = features[0]["input_features"].shape[1]
    longest = max(1, max(len(f["labels"]) for f in features))
    input_features = torch.zeros((batch, frames, bins), dtype=torch.float32)
    attention_mask = torch.zeros((batch, frames), dtype=torch.long)
    labels = torch.full((batch, longest), -100, dtype=torch.long)
    for i, f in enumerate(features):
        n = f["input_features"].shape[0]
        input_features[i, :n] = torch.as_tensor(f["input_features"], dtype=torch.float32)
        attention_mask[i, :n] = 1
        labels[i, : len(f["labels"])] = torch.tensor(f["labels"], dtype=torch.long)
    return {"input_features": input_features, "attention_mask": attention_mask, "labels": labels}


def _pieces(audio: np.ndarray, seconds: float) -> list[np.ndarray]:
    """Consecutive pieces of at most ``seconds`` (one when it fits)."""
    size = int(seconds * SAMPLE_RATE)
    if len(audio) <= size:
        return [audio]
    return [audio[start : start + size] for start in range(0, len(audio), size)]


def ctc_collapse(ids: Sequence[int], blank: int) -> list[int]:
    """Greedy CTC: repeats collapsed, then blanks dropped."""
    return [token for token, _ in itertools.groupby(ids) if token != blank]


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
    """Transcribe a batch of (n_samples,) 16-kHz arrays of any length: greedy CTC decoding.

    ``num_beams`` is ignored (greedy only), and so is ``language`` (the model has no
    language input). ``max_new_tokens`` caps the tokens of each transcript (a capped one
    says so). Audio longer than :data:`MAX_AUDIO_SECONDS` is decoded in pieces.
    """
    _check_task(task)
    model = loaded.model
    core = core_model(model)
    blank = core.config.pad_token_id
    pieces = [_pieces(np.asarray(a, dtype=np.float32), MAX_AUDIO_SECONDS) for a in audios]
    flat = [piece for row in pieces for piece in row]
    inputs = features(loaded, flat)
    param = next(model.parameters())
    with inference_precision(model, precision):
        sequences = core.generate(
            input_features=inputs["input_features"].to(param.device, param.dtype),
            attention_mask=inputs["attention_mask"].to(param.device),
        )
    decoded = [ctc_collapse(row, blank) for row in sequences.tolist()]
    tokenizer = loaded.processor.tokenizer
    out: list[Transcript] = []
    position = 0
    for row in pieces:
        ids = [token for piece in decoded[position : position + len(row)] for token in piece]
        position += len(row)
        capped = max_new_tokens is not None and len(ids) > max_new_tokens
        if capped:
            ids = ids[:max_new_tokens]
        # already collapsed: decode without grouping again (a real double letter stays)
        text = tokenizer.decode(ids, skip_special_tokens=True, group_tokens=False)
        out.append(Transcript(text.strip(), capped))
    return out


def default_lora_targets(freeze_encoder: bool) -> list[str] | str:
    """The attention (q/k/v/o) and feed-forward (linear1/2) projections of every conformer
    block (a regex). With a frozen encoder only the CTC head could train, and LoRA has
    nothing to adapt there: the head itself (a 1x1 convolution) is named instead."""
    if freeze_encoder:
        return ["ctc_head"]
    attention = "|".join(ATTENTION_TARGETS)
    feed_forward = "|".join(FEED_FORWARD_TARGETS)
    return rf".*encoder\.layers\.\d+\.(self_attn\.({attention})|feed_forward[12]\.({feed_forward}))"


def freeze_encoder(model: torch.nn.Module) -> None:
    """Freeze the whole conformer encoder (subsampling included): only the CTC head trains
    (--freeze_encoder). Useful for a new vocabulary on a pretrained encoder. (Training
    then keeps the running statistics of its frozen batch norms too, see
    ``asrtune.training.keep_frozen_batch_norm_statistics``.)"""
    core_model(model).encoder.requires_grad_(False)


def allow_empty_transcripts(loaded: LoadedModel) -> None:
    """Nothing to do: a CTC model says nothing when every frame is blank."""


def save(loaded: LoadedModel, out_dir: str | Path) -> None:
    """Write the model (safetensors) and its processor (tokenizer + feature extractor)."""
    loaded.model.save_pretrained(out_dir)
    loaded.processor.save_pretrained(out_dir)
