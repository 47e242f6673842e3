"""What the Parakeet families (``parakeet_ctc.py``, ``parakeet_tdt.py``) share: NVIDIA's
FastConformer encoder and its feature extractor, the ``ParakeetProcessor``, training items of
log-mel features + text token ids, greedy decoding of long audio in pieces, and the encoder's
LoRA targets.

The encoder is ``model.encoder`` (8x convolutional subsampling of log-mel features, 10-ms
hop, then conformer blocks: feed-forward, relative-position self-attention, convolution,
feed-forward); the CTC head or the transducer's prediction and joint networks sit on it.

Not a family: the adapters take from here the contract's functions that are the same for
both (``load`` made by :func:`loader`; ``load_processor``, ``encode_labels``,
``window_item``, ``pack_item``, ``packer``, ``generate``, ``freeze_encoder``,
``allow_empty_transcripts`` and ``save`` as they are). What differs comes from the adapter
module (``MAX_AUDIO_SECONDS``, ``limits``, ``decode_pieces``), the registration (the
family's label in messages) and the model's config (the blank and pad ids).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asrtune.data.audio import SAMPLE_RATE, consecutive_pieces
from asrtune.data.batching import PackItem, WindowPacker
from asrtune.data.windows import PLAIN_WINDOW, Example, WindowPlan, window_audio
from asrtune.models import (
    Limits,
    LoadedModel,
    Transcript,
    core_model,
    inference_precision,
    processor_from_first,
    refuse_timestamps,
    require_transcribe,
    text_tokens,
)
from asrtune.models.kinds import common as kinds_common
from asrtune.transcripts import join_texts

# The self-attention and feed-forward linear layers of every conformer block.
ATTENTION_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
FEED_FORWARD_TARGETS = ("linear1", "linear2")


def load_processor(path: str, fallback: str | None = None) -> Any:
    """ParakeetProcessor: the feature extractor + the tokenizer."""
    from transformers import ParakeetProcessor

    what = "Parakeet processor (tokenizer + feature extractor)"
    return processor_from_first(ParakeetProcessor.from_pretrained, path, fallback, what)


def loader(model_class: str, family: str) -> Callable[..., LoadedModel]:
    """The contract's ``load`` of ``family``: a checkpoint as transformers' ``model_class``
    with :func:`load_processor` (the kinds' loader)."""
    return kinds_common.loader(model_class, family, load_processor)


def frames_per_second(loaded: LoadedModel) -> float:
    """Encoder frames per second of audio: 12.5 for the real models (80 ms a frame)."""
    extractor = loaded.processor.feature_extractor
    factor = core_model(loaded.model).config.encoder_config.subsampling_factor
    return extractor.sampling_rate / extractor.hop_length / factor


def encoder_frames(core: Any, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B,) the encoder frames of each row of a feature ``attention_mask`` (B, F): what the
    model's own subsampling makes of them (transformers' ``_get_subsampling_output_length``,
    which its loss and generation use too)."""
    return core._get_subsampling_output_length(attention_mask.sum(-1)).long()


def window_limits(loaded: LoadedModel, max_seconds: float) -> Limits:
    """``max_seconds`` of audio, and no more label tokens than encoder frames in that much
    audio (12.5 tokens a second for the real models: several times any speech)."""
    return Limits(
        max_seconds=max_seconds, max_label_tokens=int(max_seconds * frames_per_second(loaded))
    )


def not_text(loaded: LoadedModel) -> set[int]:
    """The blank and the pad id (the same id in a CTC model): never targets."""
    config = core_model(loaded.model).config
    return {config.pad_token_id, getattr(config, "blank_token_id", config.pad_token_id)}


def encode_labels(
    loaded: LoadedModel,
    texts: Sequence[str],
    language: str | None,
    task: str,
    spans: Sequence[tuple[float, float]] | None = None,
) -> list[int]:
    """The targets of a frame-level model: the token ids of the texts joined by spaces; no
    blank, no pad, no special tokens (a transcript that writes them out loses them).
    ``language`` is not part of the targets (no language input); no ``spans`` (no
    timestamps)."""
    require_transcribe(task, loaded.spec.label)
    refuse_timestamps(spans is not None, loaded.spec.label)
    text = join_texts(texts)
    ids = text_tokens(loaded, text) if text else []
    dropped = not_text(loaded)
    return [i for i in ids if i not in dropped]


def features(loaded: LoadedModel, audios: Sequence[np.ndarray]) -> Any:
    """The feature extractor's ``input_features`` (B, frames, mel bins) float32 and
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

    Returns ``{"input_features": (frames, mel bins) float32, "labels": list[int]}``: the
    features of the window's audio, only the frames the feature extractor's attention mask
    keeps (it computes one more, zeroed, so a batch masks what the processor's own batch
    masks, as in decoding), and the targets of its texts (:func:`encode_labels`).
    """
    refuse_timestamps(plan.timestamps, loaded.spec.label)
    audio, _ = window_audio(window, plan)
    texts = [ex.row.text for ex in window if ex.row.text]
    inputs = features(loaded, [audio])
    frames = int(inputs["attention_mask"][0].sum())
    return {
        "input_features": inputs["input_features"][0, :frames],
        "labels": encode_labels(loaded, texts, window[0].language, task),
    }


def pack_item(
    loaded: LoadedModel, example: Example, task: str, timestamps: bool = False
) -> PackItem:
    """Packing size of an example: its seconds and its label tokens (no timestamps).
    Capabilities.packing is off for these families: nothing packs unless that changes."""
    refuse_timestamps(timestamps, loaded.spec.label)
    duration = example.row.duration or loaded.adapter.MAX_AUDIO_SECONDS
    return PackItem(duration, example.num_tokens, example.language or "")


def packer(loaded: LoadedModel, task: str, language: str | None) -> WindowPacker:
    """A packer for the training window and its label budget (the family's ``limits``)."""
    require_transcribe(task, loaded.spec.label)
    budget = loaded.adapter.limits(loaded)
    return WindowPacker(budget.max_seconds, budget.max_label_tokens)


def collate_audio_and_labels(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Right-pad the items' features and labels.

    Returns ``input_features`` (B, F, mel bins) float32 (zeros on padding, as the feature
    extractor pads), ``attention_mask`` (B, F) int64 (0 on padding) and ``labels`` (B, U)
    int64, -100 after each row's targets (what the Trainer counts label tokens by).
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
    """Transcribe a batch of (n_samples,) 16-kHz arrays of any length: greedy decoding.

    Each array is cut into consecutive pieces of at most the family's ``MAX_AUDIO_SECONDS``;
    all pieces are decoded in one batch by its ``decode_pieces`` (under the inference
    precision) and each array's pieces are joined (a word on a cut may be split).
    ``num_beams`` is ignored (greedy only), and so is ``language`` (the models have no
    language input). ``max_new_tokens`` caps the tokens of each transcript; a transcript
    that hit the cap, or one of whose pieces stopped before the end of its audio, is
    ``capped``.
    """
    require_transcribe(task, loaded.spec.label)
    model, adapter = loaded.model, loaded.adapter
    cut = [consecutive_pieces(a, adapter.MAX_AUDIO_SECONDS) for a in audios]
    inputs = features(loaded, [piece for row in cut for piece in row])
    param = next(model.parameters())
    with inference_precision(model, precision):
        decoded: list[tuple[list[int], bool]] = adapter.decode_pieces(
            core_model(model),
            inputs["input_features"].to(param.device, param.dtype),
            inputs["attention_mask"].to(param.device),
        )
    tokenizer = loaded.processor.tokenizer
    out: list[Transcript] = []
    position = 0
    for row in cut:
        mine = decoded[position : position + len(row)]
        position += len(row)
        ids = [token for piece, _ in mine for token in piece]
        capped = not all(complete for _, complete in mine)
        if max_new_tokens is not None and len(ids) > max_new_tokens:
            ids, capped = ids[:max_new_tokens], True
        # decoded token by token: no CTC grouping here (a real double letter stays)
        text = tokenizer.decode(ids, skip_special_tokens=True, group_tokens=False)
        out.append(Transcript(text.strip(), capped))
    return out


def encoder_lora_pattern() -> str:
    """A regex of the attention (q/k/v/o) and feed-forward (linear1/2) projections of every
    conformer block."""
    attention = "|".join(ATTENTION_TARGETS)
    feed_forward = "|".join(FEED_FORWARD_TARGETS)
    return rf".*encoder\.layers\.\d+\.(self_attn\.({attention})|feed_forward[12]\.({feed_forward}))"


def freeze_encoder(model: torch.nn.Module) -> None:
    """Freeze the whole conformer encoder (subsampling included); what sits on it trains
    (--freeze_encoder). Its batch norms then normalize with their running statistics in
    training too, as at inference (see ``asrtune.training.freeze_frozen_batch_norms``)."""
    core_model(model).encoder.requires_grad_(False)


def allow_empty_transcripts(loaded: LoadedModel) -> None:
    """Nothing to do: a frame-level decoder says nothing when every frame is blank."""


def save(loaded: LoadedModel, out_dir: str | Path) -> None:
    """Write the model (safetensors) and its processor (tokenizer + feature extractor)."""
    loaded.model.save_pretrained(out_dir)
    loaded.processor.save_pretrained(out_dir)
