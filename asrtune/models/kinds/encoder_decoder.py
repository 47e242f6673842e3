"""The encoder-decoder kind: ``AutoModelForSpeechSeq2Seq`` + its processor. The encoder reads
the features of one window of audio; the decoder writes the family's decoder prompt
(language, task, ...), then the transcript, then the end token.

A training item is the window's features, labels = decoder prompt + text + eos, and the
decoder's input = the labels shifted right behind the decoder start token (given, so the
model needs no labels and computes no loss of its own); the loss is token-level
cross-entropy, not shifted (logits at i predict labels[i]). Decoding is ``model.generate``
from the start token + decoder prompt, capped at 32 + 25 tokens per second of audio.

A new family of this kind needs only its module: ``KIND``, the constants of the contract,
``load`` / ``load_processor`` (:func:`~asrtune.models.kinds.common.loader` with
:data:`MODEL_CLASS` / :data:`PROCESSOR_CLASS` or its own classes), and the hook

- ``decoder_prompt(loaded, language, task) -> list[int]``: the tokens between the decoder
  start token and the text (raises an AsrtuneError for a language or task it lacks);

the rest it may import from here. Whisper (``asrtune/models/whisper.py``) shares the
collate, loss, freezing and LoRA targets and writes its own features, timestamps and
long-form decoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from asrtune.data.audio import SAMPLE_RATE
from asrtune.data.batching import PackItem, WindowPacker
from asrtune.data.windows import PLAIN_WINDOW, Example, WindowPlan, window_audio
from asrtune.models import (
    Limits,
    LoadedModel,
    Transcript,
    core_model,
    inference_precision,
    refuse_timestamps,
    text_tokens,
    token_budget,
)
from asrtune.models.kinds.common import allow_empty_transcripts, save
from asrtune.models.losses import generative_loss
from asrtune.transcripts import join_texts

__all__ = [
    "KIND",
    "LORA_TARGETS",
    "LORA_TASK_TYPE",
    "LOSS_SHIFTS_LABELS",
    "MODEL_CLASS",
    "PROCESSOR_CLASS",
    "allow_empty_transcripts",
    "collate",
    "default_lora_targets",
    "encode_labels",
    "freeze_encoder",
    "generate",
    "limits",
    "pack_item",
    "packer",
    "save",
    "sole_language",
    "summed_loss",
    "window_item",
]

KIND = "encoder_decoder"
MODEL_CLASS = "AutoModelForSpeechSeq2Seq"
PROCESSOR_CLASS = "AutoProcessor"
# peft's SEQ_2_SEQ_LM wrapper passes input_ids, which speech encoders lack: a plain wrapper
LORA_TASK_TYPE = None
LOSS_SHIFTS_LABELS = False  # the decoder input is the labels shifted right: logits align
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
# Audio per training window when the feature extractor names no window (n_samples).
DEFAULT_WINDOW_SECONDS = 30.0

#: The family's ``summed_loss``: token-level cross-entropy, not shifted.
summed_loss = generative_loss(shift=False)


def window_seconds(loaded: LoadedModel) -> float:
    """Seconds of one window: the feature extractor's (``n_samples``), else 30."""
    extractor = loaded.processor.feature_extractor
    samples = getattr(extractor, "n_samples", None)
    return samples / extractor.sampling_rate if samples else DEFAULT_WINDOW_SECONDS


def limits(loaded: LoadedModel) -> Limits:
    """One window of audio, and the decoder's positions (``max_target_positions``, else
    ``max_position_embeddings`` of the decoder's config) for the labels."""
    config = core_model(loaded.model).config
    decoder = getattr(config, "decoder", None) or config
    positions = getattr(decoder, "max_target_positions", None) or getattr(
        decoder, "max_position_embeddings", 448
    )
    return Limits(max_seconds=window_seconds(loaded), max_label_tokens=int(positions))


def sole_language(loaded: LoadedModel) -> str | None:
    """No language is implied unless the family says so."""
    return None


def encode_labels(
    loaded: LoadedModel,
    texts: Sequence[str],
    language: str | None,
    task: str,
    spans: Sequence[tuple[float, float]] | None = None,
) -> list[int]:
    """The family's ``decoder_prompt`` + the texts' tokens (joined by single spaces) + the
    end token. No ``spans``: a family with timestamps writes its own."""
    refuse_timestamps(spans is not None, loaded.spec.label)
    prompt = loaded.adapter.decoder_prompt(loaded, language, task)
    text = join_texts(texts)
    ids = text_tokens(loaded, text) if text else []
    return [*prompt, *ids, loaded.processor.tokenizer.eos_token_id]


def features(
    loaded: LoadedModel, audios: Sequence[np.ndarray]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The feature extractor's features (B, n_mels, frames) float32 of (n_samples,) 16-kHz
    arrays, padded to the longest (or the extractor's fixed window), and their frame mask
    (B, frames) when the extractor gives one."""
    extractor = loaded.processor.feature_extractor
    out = extractor(
        [np.asarray(a, dtype=np.float32) for a in audios],
        sampling_rate=SAMPLE_RATE,
        return_tensors="pt",
        return_attention_mask=True,
    )
    name = extractor.model_input_names[0]
    return out[name].float(), out.get("attention_mask")


def decoder_start(loaded: LoadedModel) -> int:
    """The decoder's start token."""
    return int(core_model(loaded.model).config.decoder_start_token_id)


def window_item(
    loaded: LoadedModel, window: Sequence[Example], task: str, plan: WindowPlan = PLAIN_WINDOW
) -> dict[str, Any]:
    """One training item from a window laid out by ``plan`` (no timestamps).

    Returns ``{"input_features": (n_mels, frames) float32, "labels": list[int],
    "decoder_input_ids": list[int]}`` (+ ``"attention_mask": (frames,)`` when the
    extractor gives one): the labels are :func:`encode_labels`'s, the decoder's input the
    labels shifted right behind the start token.
    """
    refuse_timestamps(plan.timestamps, loaded.spec.label)
    audio, _ = window_audio(window, plan)
    audio = audio[: int(window_seconds(loaded) * SAMPLE_RATE)]
    feats, mask = features(loaded, [audio])
    texts = [ex.row.text for ex in window]
    labels = loaded.adapter.encode_labels(loaded, texts, window[0].language, task)
    item = {
        "input_features": feats[0],
        "labels": labels,
        "decoder_input_ids": [decoder_start(loaded), *labels[:-1]],
    }
    if mask is not None:
        item["attention_mask"] = mask[0]
    return item


def _overhead(loaded: LoadedModel, language: str | None, task: str) -> int:
    """Label tokens that are not text: the decoder prompt and the end token."""
    return len(loaded.adapter.decoder_prompt(loaded, language, task)) + 1


def pack_item(
    loaded: LoadedModel, example: Example, task: str, timestamps: bool = False
) -> PackItem:
    """Packing size of an example: its seconds and its text tokens (prompt and end token
    off). No ``timestamps``."""
    refuse_timestamps(timestamps, loaded.spec.label)
    prompt = _overhead(loaded, example.language, task)
    duration = example.row.duration or window_seconds(loaded)
    return PackItem(duration, example.num_tokens - prompt, example.language or "")


def packer(loaded: LoadedModel, task: str, language: str | None) -> WindowPacker:
    """A packer for one window and the label budget (prompt and end token reserved)."""
    lim = loaded.adapter.limits(loaded)
    return WindowPacker(lim.max_seconds, lim.max_label_tokens - _overhead(loaded, language, task))


def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Pad features along time and right-pad labels and decoder inputs.

    Returns ``input_features`` (B, n_mels, frames) float32 (zeros after a row's frames),
    ``labels`` (B, L) int64 padded with -100 (ignored by the loss), ``decoder_input_ids``
    (B, L) int64 padded with 0 (the decoder is causal: no label position sees the padding)
    and, when the items have one, the features' ``attention_mask`` (B, frames) int64.
    """
    longest = max(len(f["labels"]) for f in features)
    batch = len(features)
    labels = torch.full((batch, longest), -100, dtype=torch.long)
    decoder_ids = torch.zeros((batch, longest), dtype=torch.long)
    for i, f in enumerate(features):
        labels[i, : len(f["labels"])] = torch.tensor(f["labels"], dtype=torch.long)
        decoder_ids[i, : len(f["decoder_input_ids"])] = torch.tensor(f["decoder_input_ids"])
    frames = [f["input_features"].shape[-1] for f in features]
    if len(set(frames)) == 1:  # one fixed window (Whisper): stacked as they are
        input_features = torch.stack([f["input_features"] for f in features])
    else:
        shape = (batch, *features[0]["input_features"].shape[:-1], max(frames))
        input_features = torch.zeros(shape, dtype=torch.float32)
        for i, f in enumerate(features):
            input_features[i, ..., : frames[i]] = f["input_features"]
    out = {"input_features": input_features, "labels": labels, "decoder_input_ids": decoder_ids}
    if "attention_mask" in features[0]:
        mask = torch.zeros((batch, max(frames)), dtype=torch.long)
        for i, f in enumerate(features):
            mask[i, : frames[i]] = torch.as_tensor(f["attention_mask"], dtype=torch.long)
        out["attention_mask"] = mask
    return out


def default_lora_targets(freeze_encoder: bool) -> list[str] | str:
    """Attention and MLP projections (:data:`LORA_TARGETS`); the decoder's only when the
    encoder is frozen."""
    if freeze_encoder:
        return rf"model\.decoder\..*\.({'|'.join(LORA_TARGETS)})"
    return list(LORA_TARGETS)


def freeze_encoder(model: torch.nn.Module) -> None:
    """Freeze the encoder (``model.get_encoder()``): the decoder trains."""
    model.get_encoder().requires_grad_(False)


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
    """Transcribe a batch of (n_samples,) 16-kHz arrays of one window each (longer audio is
    cut to the window): ``model.generate`` from the start token + the family's decoder
    prompt, at most ``max_new_tokens`` (default 32 + 25 per second) new tokens; a capped
    transcript says so."""
    model = loaded.model
    tokenizer = loaded.processor.tokenizer
    window = int(window_seconds(loaded) * SAMPLE_RATE)
    audios = [a[:window] for a in audios]
    feats, mask = features(loaded, audios)
    param = next(model.parameters())
    prompt = [decoder_start(loaded), *loaded.adapter.decoder_prompt(loaded, language, task)]
    decoder_input_ids = torch.tensor([prompt] * len(audios), device=param.device)
    budget = token_budget(max(len(a) for a in audios) / SAMPLE_RATE, max_new_tokens)
    room = loaded.adapter.limits(loaded).max_label_tokens - len(prompt)
    budget = max(1, min(budget, room))
    kwargs = {} if mask is None else {"attention_mask": mask.to(param.device)}
    with inference_precision(model, precision):
        ids = model.generate(
            input_features=feats.to(param.device, param.dtype),
            decoder_input_ids=decoder_input_ids,
            max_new_tokens=budget,
            num_beams=num_beams,
            do_sample=False,
            **kwargs,
        )
    if not isinstance(ids, torch.Tensor):
        ids = ids["sequences"]
    new = [_after_prompt(row, prompt) for row in ids.tolist()]
    texts = tokenizer.batch_decode(new, skip_special_tokens=True)
    ended = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    capped = [len(row) >= budget and row[-1] not in ended for row in new]
    return [Transcript(t.strip(), cap) for t, cap in zip(texts, capped, strict=True)]


def _after_prompt(row: list[int], prompt: list[int]) -> list[int]:
    """The new tokens of a generated ``row``: after the longest end of ``prompt`` it starts
    with (``generate`` returns the whole decoder input before the new tokens; some models'
    own ``generate`` leaves the start token or the whole prompt out)."""
    for k in range(len(prompt), 0, -1):
        if row[:k] == prompt[-k:]:
            return row[k:]
    return row
