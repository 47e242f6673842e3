"""Parakeet TDT (NVIDIA's FastConformer encoder + a Token-and-Duration Transducer, e.g.
nvidia/parakeet-tdt-0.6b-v3): loading, training items, greedy TDT decoding. Same functions as
``asrtune/models/whisper.py`` (the contract is :class:`asrtune.models.family.FamilyAdapter`);
what it shares with Parakeet CTC (loading, features, long audio in pieces, the encoder's
LoRA targets) is in ``asrtune/models/parakeet_common.py``.

The model is ``model.encoder`` (the FastConformer: 8x subsampling of 128-bin log-mel
features in v3, 80 ms a frame), ``model.encoder_projector`` (to the joint's width),
``model.decoder`` (the prediction network: token embedding, LSTM, ``decoder_projector``) and
``model.joint`` (ReLU of the sum of both, then ``head``, a linear layer to the vocabulary +
the blank and to the durations). For every encoder frame t and every u tokens of the
transcript so far, the joint gives logits over the next token or the blank, and over how
many frames (0-4) to advance: (B, T, U+1, V + 5) float32 in training, ~1.24 GB for one 30-s
utterance of 100 tokens in v3 (375 × 101 × 8198 × 4 bytes), and as much again for the
loss's log-softmax and for their gradients.

Ids: the blank (``config.blank_token_id``, ``<blank>``, the last id: 8192 of 8193 in v3) is
not the pad token (``config.pad_token_id``, ``<pad>``: id 2 in v3, a special token inside
the vocabulary, never text).

Training: an item is the window's log-mel features, the token ids of its text (the
targets: no blank, no pad, no special tokens) and ``decoder_input_ids``, the blank followed
by the targets (the prediction network's input, as ``ParakeetProcessor`` makes it). A batch
pads the features with zeros (with an ``attention_mask``), the labels with -100 (what the
Trainer counts label tokens by, as for every family) and the decoder inputs with the blank
(the LSTM is causal: what follows a row's targets changes nothing the loss reads).
transformers' ``ParakeetForTDT`` counts a row's label tokens as its labels that are not the
pad id; asrtune's trainer instead calls the model's TDT loss (``ParakeetForTDTLoss``) with
the lengths counted from -100, the pads replaced by the pad id, so a target equal to the
pad id could not shorten a row (and the targets hold none). It takes the loss per
utterance and divides by the label tokens of the global batch (see ``asrtune/trainer.py``).

Decoding: greedy, the model's own ``generate`` (transformers' TDT greedy search: from the
blank, every step emits a token or the blank and advances by its predicted duration, a
blank by at least one frame, until the frames are used up), then the blanks, and the pad
ids that fill a row finished before the others, are dropped. At most
``max_symbols_per_step`` (10) steps per encoder frame: a piece whose steps ran out before
the end of its audio (a token repeated without advancing) makes its transcript ``capped``.
Audio longer than :data:`MAX_AUDIO_SECONDS` is cut into consecutive pieces that are decoded
separately and joined (a word on a cut may be split).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from asrtune.data.windows import PLAIN_WINDOW, Example, WindowPlan
from asrtune.models import Limits, LoadedModel
from asrtune.models import parakeet_common as common
from asrtune.models.kinds.transducer import (  # noqa: F401 (the transducer kind's)
    KIND,
    LORA_TASK_TYPE,
    LOSS_SHIFTS_LABELS,
    tdt_loss,
)
from asrtune.models.parakeet_common import (  # noqa: F401 (the contract's, shared)
    allow_empty_transcripts,
    core_model,
    encode_labels,
    generate,
    load_processor,
    pack_item,
    packer,
    save,
)

FAMILY = "parakeet_tdt"
# The learning rate LoRA trains with unless told otherwise: NOT measured (no pretrained
# Parakeet offline); the usual rate for LoRA on a 0.6B encoder, as for Parakeet CTC.
LORA_LEARNING_RATE = 1e-4
GPU_INFERENCE_DTYPE = "bfloat16"  # transformers' TDT loss runs in float32 whatever the dtype
TRAINING_MIX: dict[str, Any] = {}  # none measured: plain windows of transcripts
# Seconds of audio per training item and per decoded piece: the encoder's attention is
# global (cost quadratic in frames) and the joint's logits grow with frames × tokens.
MAX_AUDIO_SECONDS = 30.0
# The joint network's linear layers (NeMo's joint.enc, joint.pred and joint_net): the
# encoder's and the prediction network's projections and the output layer.
JOINT_TARGETS = ("encoder_projector", "decoder.decoder_projector", "joint.head")

# The contract's functions shared with Parakeet CTC (see parakeet_common and the imports
# above): targets (the token ids of the texts, no blank, no pad), greedy decoding in
# pieces (with decode_pieces below), freeze_encoder (the prediction and joint networks
# still train), and allow_empty_transcripts (nothing to do: a transducer says nothing when
# it emits only blanks). features and freeze_encoder are assigned, not imported:
# parameters of the same names below would shadow an import.
load = common.loader("ParakeetForTDT", FAMILY)
features = common.features
freeze_encoder = common.freeze_encoder
# The model's own TDT loss, per utterance: the encoder frames come from Parakeet's
# subsampling, the durations from its config (config.durations).
summed_loss = tdt_loss(common.encoder_frames)


def limits(loaded: LoadedModel) -> Limits:
    """:data:`MAX_AUDIO_SECONDS` of audio, and no more label tokens than encoder frames in
    that much audio (375 in 30 s: a transducer may emit several tokens a frame, but that is
    several times any speech, and the joint's logits grow with the tokens)."""
    return common.window_limits(loaded, MAX_AUDIO_SECONDS)


def sole_language(loaded: LoadedModel) -> str | None:
    """None: nvidia/parakeet-tdt-0.6b-v3 speaks 25 European languages (and tells them
    apart itself: it has no language input), and a checkpoint's config says nothing of its
    languages, so no language is implied even for an English-only conversion (e.g. of
    -0.6b-v2): rows without a language are scored without language-specific rules."""
    return None


def window_item(
    loaded: LoadedModel, window: Sequence[Example], task: str, plan: WindowPlan = PLAIN_WINDOW
) -> dict[str, Any]:
    """One training item from a window laid out by ``plan`` (never with timestamps): the
    shared item (``input_features`` (frames, mel bins) float32 and the targets as
    ``labels``, see :func:`asrtune.models.parakeet_common.window_item`) and
    ``decoder_input_ids``, the prediction network's input: the blank, then the targets."""
    item = common.window_item(loaded, window, task, plan)
    blank = core_model(loaded.model).config.blank_token_id
    return {**item, "decoder_input_ids": [blank, *item["labels"]]}


def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Right-pad a batch of training items.

    Returns ``input_features`` (B, F, mel bins) float32 (zeros on padding),
    ``attention_mask`` (B, F) int64 (0 on padding), ``labels`` (B, U) int64, -100 after each
    row's targets, and ``decoder_input_ids`` (B, U + 1) int64: the blank, the row's targets,
    then the blank again on padding (the blank is each item's first decoder input).
    """
    batch = common.collate_audio_and_labels(features)
    width = batch["labels"].shape[1] + 1
    rows = [f["decoder_input_ids"] for f in features]
    padded = [row + [row[0]] * (width - len(row)) for row in rows]
    return {**batch, "decoder_input_ids": torch.tensor(padded, dtype=torch.long)}


def decode_pieces(
    core: Any, input_features: torch.Tensor, attention_mask: torch.Tensor
) -> list[tuple[list[int], bool]]:
    """The model's own greedy TDT search, at most ``max_symbols_per_step`` steps per encoder
    frame (the bound transformers gives itself): each piece's token ids without blanks and
    pads, and whether its steps reached the end of its frames."""
    frames = common.encoder_frames(core, attention_mask)
    # the length generate gives itself when not told (said here, so it does not warn)
    steps = core.config.max_symbols_per_step * int(frames.max())
    output = core.generate(
        input_features=input_features, attention_mask=attention_mask, max_length=steps
    )
    config = core.config
    dropped = {config.blank_token_id, config.pad_token_id}
    reached = (output.durations.sum(-1) >= frames.to(output.durations.device)).tolist()
    rows = output.sequences.tolist()
    return [
        ([t for t in row if t not in dropped], bool(done))
        for row, done in zip(rows, reached, strict=True)
    ]


def default_lora_targets(freeze_encoder: bool) -> list[str] | str:
    """A regex: the attention (q/k/v/o) and feed-forward (linear1/2) projections of every
    conformer block, and the joint network's linear layers (:data:`JOINT_TARGETS`: the
    encoder's and the prediction network's projections into the joint, and its output
    layer), so LoRA adapts what the prediction network contributes too (peft has no LoRA
    for its LSTM; its embedding is left as it is). With a frozen encoder: the joint
    network's layers only."""
    joint = "|".join(target.replace(".", r"\.") for target in JOINT_TARGETS)
    if freeze_encoder:
        return joint
    return f"{common.encoder_lora_pattern()}|{joint}"
