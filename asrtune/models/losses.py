"""The losses a family's ``summed_loss`` is written with (see
:class:`asrtune.models.family.FamilyAdapter`): every family returns its batch's loss summed
over utterances (or label tokens) with the batch's :func:`target_units`, and the trainer
divides by the units of the whole global batch, so the loss and its gradients do not
depend on how a batch is split.

Token-level cross-entropy (:func:`summed_token_loss`, :func:`summed_generative_loss`) is the
encoder-decoder and audio-LLM kinds'; the CTC and transducer kinds use their model's own
loss (``asrtune/models/kinds/ctc.py``, ``transducer.py``) with :func:`summed_rows`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from asrtune.data.sharding import LOSS_WEIGHT


def target_units(
    labels: torch.Tensor, loss_weight: torch.Tensor | None, shift: bool = False
) -> torch.Tensor:
    """Each row's share of the loss's divisor, (B,) int64: its label tokens (those not
    -100, from the second on with ``shift``), and 1 for a row without any (an empty target:
    the end of the transcript is what it must predict; Whisper's and the audio-LLMs' labels
    already hold that token, CTC and TDT targets are then empty); 0 for a placeholder
    (``loss_weight`` 0). Without ``loss_weight`` every row is a target."""
    tokens = (labels[:, 1:] if shift else labels).ne(-100).sum(-1)
    if loss_weight is None:
        return tokens.clamp(min=1)
    return torch.where(loss_weight.to(tokens.device) > 0, tokens.clamp(min=1), 0)


def model_inputs(batch: dict[str, Any], *dropped: str) -> dict[str, Any]:
    """The batch without its loss weights (and ``dropped``): what the model's forward takes."""
    return {k: v for k, v in batch.items() if k != LOSS_WEIGHT and k not in dropped}


def summed_token_loss(
    logits: torch.Tensor, labels: torch.Tensor, shift: bool, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy summed over the label tokens that are not -100, and their count.

    ``logits`` (B, L, V), ``labels`` (B, L); with ``shift`` the logits at position i
    predict ``labels[:, i + 1]`` (causal LMs), else ``labels[:, i]`` (encoder-decoders whose
    decoder input is the labels shifted right). Computed in float32.
    """
    if shift:
        logits, labels = logits[:, :-1], labels[:, 1:]
    summed = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        labels.reshape(-1).to(logits.device),
        ignore_index=-100,
        reduction="sum",
        label_smoothing=label_smoothing,
    )
    return summed, labels.ne(-100).sum()


def summed_rows(per_row: torch.Tensor, loss_weight: torch.Tensor | None) -> torch.Tensor:
    """The sum of the per-utterance losses, each times its loss weight (placeholders, 0,
    left out whatever their loss), in float32."""
    per_row = per_row.float()
    if loss_weight is None:
        return per_row.sum()
    weights = loss_weight.to(per_row.device).float()
    return torch.where(weights > 0, per_row * weights, torch.zeros_like(per_row)).sum()


def generative_loss(shift: bool) -> Any:
    """The ``summed_loss`` of a family whose model predicts tokens (encoder-decoder, audio
    LLM): the model runs without labels (it computes no loss of its own, and keeps no second
    (B, L, V) log-softmax alive), and :func:`summed_token_loss` of its logits against the
    batch's labels, shifted when ``shift`` (a causal LM: logits at i predict labels[i + 1]).
    """

    def summed_loss(
        model: torch.nn.Module,
        unwrapped: torch.nn.Module,
        batch: dict[str, Any],
        label_smoothing: float = 0.0,
    ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        outputs = model(**model_inputs(batch, "labels"))
        summed, _ = summed_token_loss(outputs["logits"], batch["labels"], shift, label_smoothing)
        units = target_units(batch["labels"], batch.get(LOSS_WEIGHT), shift).sum()
        return summed, units, outputs

    return summed_loss
