"""The audio-LLM kind: an audio encoder and projector whose embeddings fill the audio
placeholders of a chat prompt that the processor's ``apply_transcription_request`` builds,
and a causal language model that continues the prompt with the transcript.

A training item is that prompt + the transcript's tokens + the end token; the labels are
-100 over the prompt, then the transcript and the end token (the model learns to stop);
the loss is the causal LM's, shifted (logits at i predict labels[i + 1]). LoRA goes on the
language model's projections; freezing freezes the audio tower and the projector.

A family of this kind imports the shared functions from here and writes the hooks its
module must have (read through ``loaded.adapter``):

- ``transcription_inputs(loaded, audios, languages)``: the processor's request for
  (n_samples,) 16-kHz arrays: ``input_ids`` (B, P) and the audio tensors;
- ``audio_item(inputs)``: a training item's audio tensors from a one-row request;
- ``training_language(language)``: checks a row's language (raises an AsrtuneError);
- ``window_seconds(loaded)``: the seconds of one training window;
- ``limits``, ``generate``, ``collate`` (with :func:`collate_prompts`), ``load``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from asrtune.data.batching import PackItem, WindowPacker
from asrtune.data.windows import PLAIN_WINDOW, Example, WindowPlan, window_audio
from asrtune.models import (
    LoadedModel,
    core_model,
    refuse_timestamps,
    require_transcribe,
    text_tokens,
)
from asrtune.models.kinds.common import allow_empty_transcripts, save
from asrtune.models.losses import generative_loss
from asrtune.transcripts import join_texts

__all__ = [
    "KIND",
    "LM_LORA_TARGETS",
    "LORA_TASK_TYPE",
    "LOSS_SHIFTS_LABELS",
    "allow_empty_transcripts",
    "collate_prompts",
    "default_lora_targets",
    "encode_labels",
    "freeze_encoder",
    "pack_item",
    "packer",
    "save",
    "summed_loss",
    "window_item",
]

KIND = "audio_llm"
LORA_TASK_TYPE = "CAUSAL_LM"
LOSS_SHIFTS_LABELS = True  # logits at position i predict labels[i + 1] (a causal LM)
LM_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

#: The family's ``summed_loss``: token-level cross-entropy, shifted.
summed_loss = generative_loss(shift=True)


def encode_labels(
    loaded: LoadedModel,
    texts: Sequence[str],
    language: str | None,
    task: str,
    spans: Sequence[tuple[float, float]] | None = None,
) -> list[int]:
    """The supervised part of a row: the texts' tokens (joined by single spaces) and the
    end token. The language goes into the prompt, not the labels; the family's
    ``training_language`` checks it here, so that a bad code fails before training. No
    ``spans``: the kind has no timestamps."""
    label = loaded.spec.label
    require_transcribe(task, label)
    refuse_timestamps(spans is not None, label)
    loaded.adapter.training_language(language)
    ids = text_tokens(loaded, join_texts(texts))
    return [*ids, loaded.processor.tokenizer.eos_token_id]


def window_item(
    loaded: LoadedModel, window: Sequence[Example], task: str, plan: WindowPlan = PLAIN_WINDOW
) -> dict[str, Any]:
    """One training item from a window laid out by ``plan`` (see
    :func:`asrtune.data.windows.window_audio`; never with timestamps). Utterances without
    text add audio only.

    Returns ``{"input_ids": list[int], "labels": list[int], **audio}``: the transcription
    prompt (the row's language forced when known) + text + the end token, labels -100 over
    the prompt; ``audio`` is the family's ``audio_item`` of the request.
    """
    adapter = loaded.adapter
    refuse_timestamps(plan.timestamps, loaded.spec.label)
    audio, _ = window_audio(window, plan)
    language = window[0].language
    target = adapter.encode_labels(
        loaded, [ex.row.text for ex in window if ex.row.text], language, task
    )
    inputs = adapter.transcription_inputs(loaded, [audio], [language])
    prompt = inputs["input_ids"][0].tolist()
    return {
        "input_ids": prompt + target,
        "labels": [-100] * len(prompt) + target,
        **adapter.audio_item(inputs),
    }


def pack_item(
    loaded: LoadedModel, example: Example, task: str, timestamps: bool = False
) -> PackItem:
    """Packing size of an example: its seconds and its text tokens (the end token
    excluded). No ``timestamps``."""
    refuse_timestamps(timestamps, loaded.spec.label)
    duration = example.row.duration or loaded.adapter.window_seconds(loaded)
    return PackItem(duration, example.num_tokens - 1, example.language or "")


def packer(loaded: LoadedModel, task: str, language: str | None) -> WindowPacker:
    """A packer for the family's training window and its label budget (end token
    reserved)."""
    require_transcribe(task, loaded.spec.label)
    adapter = loaded.adapter
    return WindowPacker(adapter.window_seconds(loaded), adapter.limits(loaded).max_label_tokens - 1)


def collate_prompts(features: list[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad the text part of a batch of training items.

    Returns ``input_ids`` (B, L) int64 (padded with ``pad_token_id``), ``attention_mask``
    (B, L) int64 (0 on padding) and ``labels`` (B, L) int64 (-100 on the prompt and
    padding). The family's ``collate`` adds its audio tensors.
    """
    longest = max(len(f["input_ids"]) for f in features)
    batch = len(features)
    input_ids = torch.full((batch, longest), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((batch, longest), dtype=torch.long)
    labels = torch.full((batch, longest), -100, dtype=torch.long)
    for i, f in enumerate(features):
        n = len(f["input_ids"])
        input_ids[i, :n] = torch.tensor(f["input_ids"], dtype=torch.long)
        attention_mask[i, :n] = 1
        labels[i, :n] = torch.tensor(f["labels"], dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def default_lora_targets(freeze_encoder: bool) -> str:
    """The language model's attention and MLP projections only (a regex): the audio
    encoder and projector stay frozen unless --lora_target_modules names them."""
    return rf".*language_model\..*\.({'|'.join(LM_LORA_TARGETS)})"


def freeze_encoder(model: torch.nn.Module) -> None:
    """Freeze the audio tower and the projector (--freeze_encoder / --freeze_audio_tower):
    only the language model trains."""
    inner = core_model(model).model
    inner.audio_tower.requires_grad_(False)
    inner.multi_modal_projector.requires_grad_(False)
