"""The transducer kind: an encoder, a prediction network and a joint that scores a token
(or the blank) and, for a token-and-duration transducer (TDT), how many frames to advance;
trained with the model's own transducer loss (transformers' ``loss_function``), decoded
greedily by the model's ``generate``.

A transducer family imports what it shares from here (``LOSS_SHIFTS_LABELS``,
``LORA_TASK_TYPE``) and builds its ``summed_loss`` with :func:`tdt_loss`, naming the two
things only it knows: how its encoder subsamples the features, and its durations. See
``parakeet_tdt.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from asrtune.data.sharding import LOSS_WEIGHT
from asrtune.models import core_model
from asrtune.models.losses import model_inputs, summed_rows, target_units

KIND = "transducer"
LOSS_SHIFTS_LABELS = False  # the joint scores every (frame, label position): no shift
LORA_TASK_TYPE = None  # a plain LoRA wrapper: generation is the model's own

Frames = Callable[[Any, torch.Tensor], torch.Tensor]


def _config_durations(config: Any) -> Any:
    return config.durations


def tdt_loss(frames: Frames, durations: Callable[[Any], Any] = _config_durations) -> Any:
    """The ``summed_loss`` (see :class:`asrtune.models.family.FamilyAdapter`) of a
    token-and-duration transducer family."""

    def summed_loss(
        model: torch.nn.Module,
        unwrapped: torch.nn.Module,
        batch: dict[str, Any],
        label_smoothing: float = 0.0,
    ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """A token-and-duration transducer's own loss (transformers' ``ParakeetForTDTLoss``,
        the model's ``loss_function``), summed over the batch's utterances, and the batch's
        :func:`target_units`.

        The model runs without labels (its logits (B, T, U+1, V + durations) from the features
        and ``decoder_input_ids``); the loss is then called as the model's forward calls it,
        but with ``reduction="none"`` (each utterance's negative log-likelihood, all alignments,
        not divided by its length: the model's default ``mean`` divides each by its label
        tokens, then averages) and with each row's label tokens counted from -100, where the
        model would count the labels that are not its pad id (a target equal to the pad id
        would shorten the row). The -100s become the pad id, which the loss reads past the
        row's length only. An empty transcript (a non-speech window) trains towards the blank
        at every frame; a placeholder adds nothing, as in the CTC kind's loss. Label
        smoothing does not apply. ``unwrapped`` is the model without its data-parallel wrapper.

        ``frames(core, attention_mask) -> (B,)``: the family's encoder frames of each row of a
        feature mask (B, F) (its subsampling); ``durations(config)``: the durations its joint
        predicts (a TDT's ``config.durations``).
        """
        labels, weights = batch["labels"], batch.get(LOSS_WEIGHT)
        outputs = model(**model_inputs(batch, "labels"))
        core = core_model(unwrapped)
        config = core.config
        logits = outputs["logits"]
        lengths = frames(core, batch["attention_mask"])
        per_row = core.loss_function(
            token_logits=logits[..., : config.vocab_size],
            duration_logits=logits[..., config.vocab_size :],
            labels=labels.masked_fill(labels.eq(-100), config.pad_token_id),
            logit_lengths=lengths,
            label_lengths=labels.ne(-100).sum(-1),
            blank_token_id=config.blank_token_id,
            durations=durations(config),
            reduction="none",
        )
        return summed_rows(per_row, weights), target_units(labels, weights).sum(), outputs

    return summed_loss
