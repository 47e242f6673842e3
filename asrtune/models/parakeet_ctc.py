"""Parakeet CTC (NVIDIA's FastConformer encoder + CTC head, e.g. nvidia/parakeet-ctc-0.6b):
loading, training items, greedy CTC decoding. Same functions as ``asrtune/models/whisper.py``
(the contract is :class:`asrtune.models.family.FamilyAdapter`).

The model is ``model.encoder`` (8x convolutional subsampling of 80-bin log-mel features,
10-ms hop, then conformer blocks: feed-forward, relative-position self-attention,
convolution, feed-forward) + ``model.ctc_head`` (a 1x1 convolution to the vocabulary).
Every encoder frame (80 ms in the real models) gets a distribution over the tokens and the
blank, which is the tokenizer's pad token (``config.pad_token_id``, the last id). What this
family shares with Parakeet TDT (loading, training items, decoding in pieces) is in
``asrtune/models/parakeet_common.py``.

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

from typing import Any

import torch

from asrtune.models import Limits, LoadedModel
from asrtune.models import parakeet_common as common
from asrtune.models.kinds.ctc import (  # noqa: F401 (the CTC kind's: the model's own loss)
    KIND,
    LORA_TASK_TYPE,
    LOSS_SHIFTS_LABELS,
    ctc_collapse,
    summed_loss,
)
from asrtune.models.parakeet_common import (  # noqa: F401 (the contract's, shared)
    ATTENTION_TARGETS,
    FEED_FORWARD_TARGETS,
    allow_empty_transcripts,
    core_model,
    encode_labels,
    generate,
    load_processor,
    pack_item,
    packer,
    save,
    window_item,
)

FAMILY = "parakeet_ctc"
# The learning rate LoRA trains with unless told otherwise: NOT measured (no pretrained
# Parakeet offline); the usual rate for LoRA on a 0.6-1.1B encoder.
LORA_LEARNING_RATE = 1e-4
GPU_INFERENCE_DTYPE = "bfloat16"  # transformers' CTC loss runs in float32 whatever the dtype
TRAINING_MIX: dict[str, Any] = {}  # none measured: plain windows of transcripts
# Seconds of audio per training item and per decoded piece. The FastConformer's attention
# is global (cost quadratic in frames): NeMo trains Parakeet on utterances up to 20-30 s.
MAX_AUDIO_SECONDS = 30.0

# The contract's functions shared with Parakeet TDT (see parakeet_common and the imports
# above): items of features + CTC targets (the token ids of the texts, no blank), greedy
# decoding in pieces (with decode_pieces below), freeze_encoder (only the CTC head trains),
# and allow_empty_transcripts (nothing to do: a CTC model says nothing when every frame is
# blank). features and freeze_encoder are assigned, not imported: parameters of the same
# names below would shadow an import.
load = common.loader("ParakeetForCTC", FAMILY)
features = common.features
freeze_encoder = common.freeze_encoder


def limits(loaded: LoadedModel) -> Limits:
    """:data:`MAX_AUDIO_SECONDS` of audio, and no more label tokens than encoder frames in
    that much audio (CTC emits at most one token per frame; an utterance whose own frames
    are too few gets a zero loss, ``ctc_zero_infinity``)."""
    return common.window_limits(loaded, MAX_AUDIO_SECONDS)


def sole_language(loaded: LoadedModel) -> str | None:
    """None: a checkpoint's config says nothing of its languages (nvidia/parakeet-ctc-0.6b
    and -1.1b are English-only, a fine-tune of one need not be), as for Parakeet TDT; rows
    without a language are scored as every family scores them (the multilingual
    normalizer): give them one (``--language en``) for English's."""
    return None


def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Right-pad a batch of training items.

    Returns ``input_features`` (B, F, 80) float32 (zeros on padding, as the feature
    extractor pads), ``attention_mask`` (B, F) int64 (0 on padding) and ``labels`` (B, U)
    int64, -100 after each row's targets (``ForCTCLoss`` masks -100 out).
    """
    return common.collate_audio_and_labels(features)


def decode_pieces(
    core: Any, input_features: torch.Tensor, attention_mask: torch.Tensor
) -> list[tuple[list[int], bool]]:
    """The model's own greedy CTC (frame-wise argmax, padding frames set to the blank),
    collapsed: each piece's token ids, and True (a CTC decoding always reaches the end of
    its audio)."""
    sequences = core.generate(input_features=input_features, attention_mask=attention_mask)
    blank = core.config.pad_token_id
    return [(ctc_collapse(row, blank), True) for row in sequences.tolist()]


def default_lora_targets(freeze_encoder: bool) -> list[str] | str:
    """The attention (q/k/v/o) and feed-forward (linear1/2) projections of every conformer
    block (a regex). With a frozen encoder only the CTC head could train, and LoRA has
    nothing to adapt there: the head itself (a 1x1 convolution) is named instead."""
    if freeze_encoder:
        return ["ctc_head"]
    return common.encoder_lora_pattern()
